#pragma once
// A fixed-memory sliding window of call outcomes: a ring of time buckets, each counting
// {total, failures, slow}. Used by the circuit breaker's failure-rate and slow-call triggers.
// Not synchronized: the owner (e.g. CircuitBreaker) holds its own lock around every call.

#include <chrono>
#include <cstdint>
#include <vector>

#include "proxy/common/time_source.h"

namespace levee::common {

struct WindowTotals {
  uint64_t total{0};
  uint64_t failures{0};
  uint64_t slow{0};
  bool operator==(const WindowTotals&) const = default;
};

class SlidingWindow {
public:
  // `window` is split into `buckets` equal slots (0 is treated as 1; a zero window as 1ms).
  // Memory is allocated once here and never grows with traffic. Granularity is one bucket: a
  // call is forgotten between window - window/buckets and window after it was recorded.
  SlidingWindow(std::chrono::milliseconds window, uint32_t buckets);

  // Records one finished call at `now`. A `now` older than the newest recorded bucket (threads
  // that read the clock before taking the owner's lock) is counted in the newest bucket.
  void record(MonotonicTime now, bool failure, bool slow);

  // Sums the buckets still inside the window ending at `now`. O(1) while `now` falls in the
  // newest bucket (a running sum is kept); otherwise at most one pass over the ring.
  WindowTotals totals(MonotonicTime now) const;

  // Forgets everything.
  void reset();

  std::chrono::nanoseconds bucketWidth() const { return width_; }
  uint32_t bucketCount() const { return static_cast<uint32_t>(buckets_.size()); }

private:
  struct Bucket {
    int64_t epoch;  // absolute bucket number (time / width_); kEmpty when unused
    WindowTotals counts;
  };

  int64_t epochOf(MonotonicTime t) const;
  size_t slotOf(int64_t epoch) const;
  // Makes `epoch` the newest bucket, dropping the buckets that leave the window from sum_.
  void advanceTo(int64_t epoch);

  std::chrono::nanoseconds width_;
  std::vector<Bucket> buckets_;
  int64_t newest_epoch_;
  WindowTotals sum_;  // of every bucket in (newest_epoch_ - buckets, newest_epoch_]
};

}  // namespace levee::common
