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

void SlidingWindow::record(MonotonicTime now, bool failure, bool slow) {
  const int64_t epoch = std::max(epochOf(now), newest_epoch_);
  newest_epoch_ = epoch;
  const auto n = static_cast<int64_t>(buckets_.size());
  Bucket& b = buckets_[static_cast<size_t>(((epoch % n) + n) % n)];
  if (b.epoch != epoch) {
    // The slot holds a bucket at least one full window old: reuse it.
    b = Bucket{epoch, {}};
  }
  ++b.counts.total;
  b.counts.failures += failure ? 1 : 0;
  b.counts.slow += slow ? 1 : 0;
}

WindowTotals SlidingWindow::totals(MonotonicTime now) const {
  const int64_t current = std::max(epochOf(now), newest_epoch_);
  const auto n = static_cast<int64_t>(buckets_.size());
  WindowTotals sum;
  for (const Bucket& b : buckets_) {
    if (b.epoch == kEmpty || b.epoch <= current - n) {
      continue;
    }
    sum.total += b.counts.total;
    sum.failures += b.counts.failures;
    sum.slow += b.counts.slow;
  }
  return sum;
}

void SlidingWindow::reset() {
  std::fill(buckets_.begin(), buckets_.end(), Bucket{kEmpty, {}});
  newest_epoch_ = kEmpty;
}

}  // namespace levee::common
