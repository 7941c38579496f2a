#pragma once
// SLA windows (GET /admin/sla, levee_sla_* gauges): the pure part. A Ring is a fixed-memory ring
// of time buckets; each bucket counts requests, errors, requests slower than the latency
// objective, and a latency histogram on a fixed log-scale layout. Windows are read by summing
// the newest buckets of a ring into plain Counts, from which summarize() derives availability,
// error rate, latency quantiles and error budgets. Time is always passed in (injected).
//
// Thread model of a Ring: ONE writer (the worker thread that owns it) and any number of readers
// (the main thread merging rings for a report). Every cell is an atomic written with
// single-writer release stores (a load and a store, no read-modify-write; a plain store on x86),
// so recording is lock-free and touches only the writer's own memory. A bucket that is being
// recycled for a newer time slot is guarded like a seqlock: its epoch reads kRecycling while it
// is zeroed, and a reader (acquire loads) keeps a bucket only if its epoch was the same before
// and after reading the counts. A reader may see a
// bucket mid-update (requests already counted, the error not yet): reports are off by at most
// the requests recorded while the report runs.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "proxy/common/time_source.h"

namespace levee::stats::sla {

// Latency layout: finite bounds 1 ms * 2^(i/4) for i = 0 .. kLatencyBounds-1 (1 ms .. 92.7 s),
// then +Inf. Neighbouring bounds differ by 2^(1/4) = 1.19, so a quantile interpolated inside its
// bucket is within 19% of the true value (see quantile()).
inline constexpr size_t kLatencyBounds = 67;
inline constexpr size_t kLatencyBuckets = kLatencyBounds + 1;  // with +Inf

// Upper bound of bucket `i` in seconds (+Inf for i >= kLatencyBounds).
double latencyBound(size_t i);
// The first bucket whose bound is >= `seconds` (Prometheus `le` semantics); NaN and negative
// values count in bucket 0.
size_t latencyBucketOf(double seconds);

// What counts against availability: a final status >= 500, whether the upstream sent it or levee
// generated it (breaker open, no healthy upstream, timeout, connect failure, overflow, degraded).
// 4xx, including levee's own (429 rate limited, 404 no route, 400/408/413/431 bad requests), are
// the client's share and never errors. This is exactly `code=~"5.."` of
// levee_http_requests_total, so counter-based alert rules agree with the report.
constexpr bool isError(int status) { return status >= 500; }

// A merged window: plain numbers.
struct Counts {
  uint64_t requests{0};
  uint64_t errors{0};
  uint64_t slow{0};  // requests slower than the latency objective's threshold
  std::array<uint64_t, kLatencyBuckets> latency{};

  void add(const Counts& o);
  bool operator==(const Counts&) const = default;
};

// The q-quantile (0 < q <= 1) of the latency histogram, as Prometheus' histogram_quantile():
// the bucket holding rank q * requests is found, and the value interpolated linearly between the
// bucket's lower and upper bound (0 for the first bucket). A rank in the +Inf bucket reports the
// last finite bound. NaN when there are no requests.
double quantile(const Counts& c, double q);

// The configured objectives (metrics.slo); a zero field means "no such objective".
struct Objectives {
  double availability_percent{0};  // e.g. 99.9
  double latency_threshold_s{0};   // e.g. 0.5
  double latency_percent{0};       // share of requests that must be within the threshold, e.g. 99
  bool hasAvailability() const { return availability_percent > 0; }
  bool hasLatency() const { return latency_threshold_s > 0 && latency_percent > 0; }
  bool operator==(const Objectives&) const = default;
};

// The error budget of one objective over one window.
//   allowed   = 1 - objective / 100           (the share of requests allowed to be bad)
//   burn_rate = observed bad share / allowed  (1 = spending exactly the budget)
//   remaining = 1 - burn_rate                 (1 untouched, 0 spent, negative = overspent;
//                                              never clamped, so -2 means three budgets used)
// With no requests nothing is spent: burn_rate 0, remaining 1.
struct Budget {
  double allowed{0};
  double burn_rate{0};
  double remaining{1};
};
Budget budget(uint64_t bad, uint64_t requests, double objective_percent);

struct Summary {
  uint64_t requests{0};
  uint64_t errors{0};
  uint64_t slow{0};
  double availability{0};  // 1 - errors / requests; NaN without requests
  double error_rate{0};    // errors / requests; NaN without requests
  double p50{0}, p95{0}, p99{0};  // seconds; NaN without requests
  // Share of requests within the latency threshold; NaN without requests or latency objective.
  double latency_within_threshold{0};
  Budget availability_budget;  // meaningful only when the objective is set
  Budget latency_budget;       // idem
};
Summary summarize(const Counts& c, const Objectives& o);

// A ring of `buckets` time buckets of `width` each. Memory is allocated once here and never
// grows. A window of n buckets ending at `now` covers the current (partial) bucket and the n-1
// before it, i.e. between (n-1) * width and n * width of history.
class Ring {
public:
  Ring(std::chrono::nanoseconds width, uint32_t buckets);
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Writer thread only. A `now` older than the newest recorded bucket counts in the newest one.
  void record(MonotonicTime now, bool error, bool slow, size_t latency_bucket) noexcept;

  // Any thread. Adds the newest `buckets` buckets (at most the ring size) ending at `now`.
  void addTo(MonotonicTime now, uint32_t buckets, Counts& out) const;

  uint32_t bucketCount() const { return size_; }
  std::chrono::nanoseconds bucketWidth() const { return width_; }

private:
  struct Cell {
    std::atomic<int64_t> epoch;
    std::atomic<uint32_t> requests;
    std::atomic<uint32_t> errors;
    std::atomic<uint32_t> slow;
    std::array<std::atomic<uint32_t>, kLatencyBuckets> latency;
  };

  int64_t epochOf(MonotonicTime t) const;
  Cell& cellOf(int64_t epoch) const;
  static void recycle(Cell& c, int64_t epoch) noexcept;

  std::chrono::nanoseconds width_;
  uint32_t size_;
  std::unique_ptr<Cell[]> cells_;
  int64_t newest_;  // writer-only
};

}  // namespace levee::stats::sla
