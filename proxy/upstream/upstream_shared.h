#pragma once
// Per-upstream resilience state shared by every worker and the main loop: the circuit breaker,
// the outlier detector, and the health of the current host set. Created on the main thread
// per policy snapshot; kept across reloads while the upstream's resilience settings are
// unchanged (so breaker state and ejections survive a reload).

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "config/policy.h"
#include "proxy/common/circuit_breaker.h"
#include "proxy/common/outlier_detector.h"
#include "proxy/common/time_source.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/host_health.h"

namespace levee::upstream {

// How one attempt ended, as far as resilience is concerned.
enum class AttemptOutcome { Response, ConnectFailure, Reset, Timeout };

class UpstreamShared {
public:
  UpstreamShared(const config::Upstream& config, const TimeSource& time, stats::Store& store);
  const std::string& name() const { return config_.name; }
  const config::Upstream& config() const { return config_; }
  // True if `other` would build the same breaker/outlier (state may be kept across a reload).
  bool sameResilience(const config::Upstream& other) const;

  common::CircuitBreaker* breaker() { return breaker_.get(); }
  common::OutlierDetector* outlier() { return outlier_.get(); }
  // Current host health (swapped by the main loop when DNS answers change).
  HostHealthSharedPtr health() const { return std::atomic_load(&health_); }
  void setHealth(HostHealthSharedPtr h);

  // Is this outcome a failure per `failure_on`?
  bool isBreakerFailure(AttemptOutcome outcome, int status) const;
  // Feeds the outlier detector for host `index` of `health` and mirrors ejections into it.
  void recordHostResult(const HostHealth& health, size_t index, AttemptOutcome outcome, int status);
  // Main loop, periodically: breaker probe deadlines, outlier intervals and un-ejections.
  void tick();
  void countRejected(bool shadow);
  void onHealthCheckPassed(size_t index);

private:
  void syncEjections(const HostHealth& health);
  void onTransition(common::CircuitBreaker::State from, common::CircuitBreaker::State to,
                    std::string_view cause);

  config::Upstream config_;
  stats::Store& store_;
  std::unique_ptr<common::CircuitBreaker> breaker_;
  std::unique_ptr<common::OutlierDetector> outlier_;
  HostHealthSharedPtr health_;
  stats::Counter* rejected_{nullptr};
  stats::Counter* shadow_rejected_{nullptr};
  stats::Counter* ejections_{nullptr};
  std::atomic<uint64_t> ejections_reported_{0};
};
using UpstreamSharedPtr = std::shared_ptr<UpstreamShared>;

}  // namespace levee::upstream
