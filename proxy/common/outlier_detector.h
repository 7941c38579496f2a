#pragma once
// Passive outlier detection for the endpoints of one upstream (issue "upstream resilience"):
// ejects an endpoint after consecutive 5xx, consecutive local-origin failures (connect failure,
// reset, timeout), or a failure percentage over an interval. Pure: no I/O, time is injected.
// Shared by all worker threads; one mutex, held only for a few field updates.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "proxy/common/spin_lock.h"
#include "proxy/common/time_source.h"

namespace levee::common {

// Mirrors config::OutlierDetectionConfig (proxy/common stays below config). 0 disables a trigger.
struct OutlierParams {
  uint32_t consecutive_5xx{5};
  uint32_t consecutive_local{5};
  std::chrono::milliseconds interval{10000};     // 0: evaluate the percentage on every tick()
  uint32_t failure_percentage{0};                // eject at >= this % of failures in an interval
  uint32_t minimum_requests{20};                 // per endpoint per interval, for the percentage
  std::chrono::milliseconds base_ejection{30000};
  std::chrono::milliseconds max_ejection{300000};  // below base_ejection: base_ejection
  uint32_t max_ejection_percent{50};             // > 100 is treated as 100
};

class OutlierDetector {
public:
  enum class Result { Success, Status5xx, LocalFailure };

  struct Stats {
    uint64_t ejections_total{0};
    uint64_t ejections_consecutive_5xx{0};
    uint64_t ejections_consecutive_local{0};
    uint64_t ejections_failure_percentage{0};
    uint64_t ejections_overflow{0};  // ejections refused by max_ejection_percent
  };

  // `time` must outlive the detector.
  OutlierDetector(OutlierParams params, const TimeSource& time, size_t endpoint_count = 0);

  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  // Endpoints are indexed 0..n-1. Existing indexes keep their state; indexes >= n are dropped.
  void setEndpointCount(size_t n);
  size_t endpointCount() const;

  // Reports one request's outcome. 5xx and local-origin failures have separate consecutive
  // counters; a success resets both. Out-of-range indexes and currently ejected endpoints are
  // ignored (in-flight requests finishing after the ejection teach nothing new).
  void onResult(size_t endpoint, Result result);

  // Periodic: un-ejects endpoints whose ejection time passed and, once per `interval`,
  // ejects endpoints whose failure percentage reached the threshold with enough volume.
  void tick();

  // Un-ejection by time is also applied lazily here, so a late tick() never extends an ejection.
  bool isEjected(size_t endpoint);
  std::vector<bool> ejected();

  // An active health check passed: un-eject early (the ejection count is kept).
  void onHealthCheckPassed(size_t endpoint);

  uint64_t ejectionsTotal() const;
  uint64_t ejectionCount(size_t endpoint) const;  // times this endpoint was ejected
  Stats stats() const;

private:
  enum class Cause { Consecutive5xx, ConsecutiveLocal, FailurePercentage };

  struct EndpointState {
    uint32_t consecutive_5xx{0};
    uint32_t consecutive_local{0};
    uint64_t interval_total{0};
    uint64_t interval_failures{0};
    bool ejected{false};
    MonotonicTime ejected_until{};
    uint64_t ejection_count{0};
  };

  void expireLocked(MonotonicTime now);
  bool tryEjectLocked(size_t endpoint, Cause cause, MonotonicTime now);
  void unejectLocked(EndpointState& e);
  size_t maxEjectedLocked() const;

  const OutlierParams params_;
  const TimeSource& time_;

  mutable SpinLock mu_;
  std::vector<EndpointState> endpoints_;
  size_t ejected_count_{0};
  MonotonicTime interval_start_;
  Stats stats_;
};

}  // namespace levee::common
