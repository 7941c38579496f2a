#include "proxy/stats/sla_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace levee::stats::sla {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
constexpr int64_t kRecycling = kEmpty + 1;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Bounds computed once: 1 ms * 2^(i/4).
const std::array<double, kLatencyBounds>& bounds() {
  static const std::array<double, kLatencyBounds> table = [] {
    std::array<double, kLatencyBounds> t{};
    for (size_t i = 0; i < kLatencyBounds; ++i) {
      t[i] = 0.001 * std::exp2(static_cast<double>(i) / 4.0);
    }
    return t;
  }();
  return table;
}

constexpr auto kRelease = std::memory_order_release;
constexpr auto kAcquire = std::memory_order_acquire;

// Single writer: a load and a store, no read-modify-write. The store is a release (a plain
// store on x86) so that a reader that sees it also sees the epoch it was written under.
void bump(std::atomic<uint32_t>& a) noexcept { a.store(a.load(kRelaxed) + 1, kRelease); }

double ratio(uint64_t a, uint64_t b) {
  return b == 0 ? kNaN : static_cast<double>(a) / static_cast<double>(b);
}

}  // namespace

double latencyBound(size_t i) {
  return i < kLatencyBounds ? bounds()[i] : std::numeric_limits<double>::infinity();
}

size_t latencyBucketOf(double seconds) {
  if (!(seconds > 0)) {  // NaN, zero, negative
    return 0;
  }
  const auto& b = bounds();
  return static_cast<size_t>(std::lower_bound(b.begin(), b.end(), seconds) - b.begin());
}

void Counts::add(const Counts& o) {
  requests += o.requests;
  errors += o.errors;
  slow += o.slow;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    latency[i] += o.latency[i];
  }
}

double quantile(const Counts& c, double q) {
  uint64_t total = 0;
  for (uint64_t n : c.latency) {
    total += n;
  }
  if (total == 0) {
    return kNaN;
  }
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    const uint64_t n = c.latency[i];
    if (n == 0 || static_cast<double>(below + n) < rank) {
      below += n;
      continue;
    }
    if (i >= kLatencyBounds) {
      return latencyBound(kLatencyBounds - 1);  // +Inf bucket: the last finite bound
    }
    const double lo = i == 0 ? 0.0 : latencyBound(i - 1);
    const double hi = latencyBound(i);
    const double within = (rank - static_cast<double>(below)) / static_cast<double>(n);
    return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
  }
  return latencyBound(kLatencyBounds - 1);
}

Budget budget(uint64_t bad, uint64_t requests, double objective_percent) {
  Budget b;
  b.allowed = (100.0 - objective_percent) / 100.0;  // exact for 90, 95, 99 ...
  if (requests == 0 || !(b.allowed > 0)) {
    return b;  // nothing spent (the loader rejects objectives of 100%)
  }
  b.burn_rate = (static_cast<double>(bad) / static_cast<double>(requests)) / b.allowed;
  b.remaining = 1.0 - b.burn_rate;
  return b;
}

Summary summarize(const Counts& c, const Objectives& o) {
  Summary s;
  s.requests = c.requests;
  s.errors = c.errors;
  s.slow = c.slow;
  s.error_rate = ratio(c.errors, c.requests);
  s.availability = c.requests == 0 ? kNaN : 1.0 - s.error_rate;
  s.p50 = quantile(c, 0.5);
  s.p95 = quantile(c, 0.95);
  s.p99 = quantile(c, 0.99);
  s.latency_within_threshold =
      o.hasLatency() && c.requests > 0 ? 1.0 - ratio(c.slow, c.requests) : kNaN;
  if (o.hasAvailability()) {
    s.availability_budget = budget(c.errors, c.requests, o.availability_percent);
  }
  if (o.hasLatency()) {
    s.latency_budget = budget(c.slow, c.requests, o.latency_percent);
  }
  return s;
}

// === Ring ===

Ring::Ring(std::chrono::nanoseconds width, uint32_t buckets)
    : width_(width.count() > 0 ? width : std::chrono::nanoseconds(1)),
      size_(std::max<uint32_t>(buckets, 1)),
      cells_(std::make_unique<Cell[]>(size_)),
      newest_(kEmpty) {
  for (uint32_t i = 0; i < size_; ++i) {
    recycle(cells_[i], kEmpty);
  }
}

int64_t Ring::epochOf(MonotonicTime t) const {
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const int64_t w = width_.count();
  return ns >= 0 ? ns / w : -((-ns + w - 1) / w);  // floor
}

Ring::Cell& Ring::cellOf(int64_t epoch) const {
  const int64_t n = size_;
  return cells_[static_cast<size_t>(((epoch % n) + n) % n)];
}

void Ring::recycle(Cell& c, int64_t epoch) noexcept {
  // Seqlock write side without fences (GCC's TSan rejects atomic_thread_fence): mark, then
  // clear and count with release stores only. A reader that acquires any count written from
  // here on also sees kRecycling or the new epoch when it re-reads the epoch, and drops the cell.
  c.epoch.store(kRecycling, kRelaxed);
  c.requests.store(0, kRelease);
  c.errors.store(0, kRelease);
  c.slow.store(0, kRelease);
  for (auto& l : c.latency) {
    l.store(0, kRelease);
  }
  c.epoch.store(epoch, kRelease);
}

void Ring::record(MonotonicTime now, bool error, bool slow, size_t latency_bucket) noexcept {
  int64_t epoch = epochOf(now);
  if (newest_ != kEmpty && epoch < newest_) {
    epoch = newest_;
  }
  Cell& c = cellOf(epoch);
  if (c.epoch.load(kRelaxed) != epoch) {
    recycle(c, epoch);
  }
  newest_ = epoch;
  bump(c.requests);
  if (error) {
    bump(c.errors);
  }
  if (slow) {
    bump(c.slow);
  }
  bump(c.latency[std::min(latency_bucket, kLatencyBuckets - 1)]);
}

void Ring::addTo(MonotonicTime now, uint32_t buckets, Counts& out) const {
  const int64_t now_epoch = epochOf(now);
  const int64_t oldest = now_epoch - static_cast<int64_t>(std::min(buckets, size_)) + 1;
  for (uint32_t i = 0; i < size_; ++i) {
    const Cell& c = cells_[i];
    const int64_t before = c.epoch.load(kAcquire);
    if (before == kEmpty || before == kRecycling || before < oldest || before > now_epoch) {
      continue;
    }
    Counts tmp;
    tmp.requests = c.requests.load(kAcquire);
    tmp.errors = c.errors.load(kAcquire);
    tmp.slow = c.slow.load(kAcquire);
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      tmp.latency[b] = c.latency[b].load(kAcquire);
    }
    if (c.epoch.load(kRelaxed) != before) {
      continue;  // recycled while we read it: its counts belong to an older slot
    }
    out.add(tmp);
  }
}

}  // namespace levee::stats::sla
