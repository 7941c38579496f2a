#include "proxy/common/sliding_window.h"

#include <algorithm>
#include <limits>

namespace levee::common {
namespace {

constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();

// Bucket width: window / buckets, with a zero window treated as 1ms and a zero bucket count as 1.
std::chrono::nanoseconds widthOf(std::chrono::milliseconds window, uint32_t buckets) {
  const std::chrono::nanoseconds w = std::max(window, std::chrono::milliseconds(1));
  return std::max(w / std::max<uint32_t>(buckets, 1), std::chrono::nanoseconds(1));
}

}  // namespace

SlidingWindow::SlidingWindow(std::chrono::milliseconds window, uint32_t buckets)
    : width_(widthOf(window, buckets)),
      buckets_(std::max<uint32_t>(buckets, 1), Bucket{kEmpty, {}}),
      newest_epoch_(kEmpty) {}

int64_t SlidingWindow::epochOf(MonotonicTime t) const {
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const int64_t w = width_.count();
  // Floor division, so a clock before its epoch still maps to increasing bucket numbers.
  int64_t q = ns / w;
  if ((ns % w != 0) && (ns < 0)) {
    --q;
  }
  return q;
}

size_t SlidingWindow::slotOf(int64_t epoch) const {
  const auto n = static_cast<int64_t>(buckets_.size());
  return static_cast<size_t>(((epoch % n) + n) % n);
}

void SlidingWindow::advanceTo(int64_t epoch) {
  if (newest_epoch_ != kEmpty && epoch > newest_epoch_) {
    // The slots of epochs newest+1 .. epoch hold buckets that leave the window now.
    const auto n = static_cast<int64_t>(buckets_.size());
    const int64_t steps = std::min(epoch - newest_epoch_, n);
    for (int64_t i = 1; i <= steps; ++i) {
      Bucket& b = buckets_[slotOf(newest_epoch_ + i)];
      if (b.epoch != kEmpty) {
        sum_.total -= b.counts.total;
        sum_.failures -= b.counts.failures;
        sum_.slow -= b.counts.slow;
      }
      b = Bucket{kEmpty, {}};
    }
  }
  newest_epoch_ = std::max(epoch, newest_epoch_);
}

void SlidingWindow::record(MonotonicTime now, bool failure, bool slow) {
  const int64_t epoch = std::max(epochOf(now), newest_epoch_);
  advanceTo(epoch);
  Bucket& b = buckets_[slotOf(epoch)];
  b.epoch = epoch;
  ++b.counts.total;
  b.counts.failures += failure ? 1 : 0;
  b.counts.slow += slow ? 1 : 0;
  ++sum_.total;
  sum_.failures += failure ? 1 : 0;
  sum_.slow += slow ? 1 : 0;
}

WindowTotals SlidingWindow::totals(MonotonicTime now) const {
  const int64_t current = epochOf(now);
  if (newest_epoch_ == kEmpty || current <= newest_epoch_) {
    return sum_;  // the running sum is exactly the window ending in the newest bucket
  }
  // `now` is past the newest bucket: leave out the buckets that have left the window by then.
  const auto n = static_cast<int64_t>(buckets_.size());
  WindowTotals sum = sum_;
  const int64_t steps = std::min(current - newest_epoch_, n);
  for (int64_t i = 1; i <= steps; ++i) {
    const Bucket& b = buckets_[slotOf(newest_epoch_ + i)];
    if (b.epoch != kEmpty) {
      sum.total -= b.counts.total;
      sum.failures -= b.counts.failures;
      sum.slow -= b.counts.slow;
    }
  }
  return sum;
}

void SlidingWindow::reset() {
  std::fill(buckets_.begin(), buckets_.end(), Bucket{kEmpty, {}});
  newest_epoch_ = kEmpty;
  sum_ = {};
}

}  // namespace levee::common
