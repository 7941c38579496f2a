#pragma once
// Active HTTP health checks of one upstream's hosts, on the main loop (DESIGN section 1).
// Each host is probed every `interval` (with jitter) by a fresh connection: GET `path`,
// `Connection: close`; a status in `expected_statuses` (default 200-399) within `timeout`
// passes. `unhealthy_threshold` failures in a row mark the host unhealthy,
// `healthy_threshold` passes in a row mark it healthy again.

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/policy.h"
#include "proxy/event/dispatcher.h"
#include "proxy/upstream/host_health.h"

namespace levee::upstream {

class HealthChecker {
public:
  // Called on every state change of a host (main loop).
  using ChangeCb = std::function<void(size_t host_index, bool healthy, const std::string& detail)>;
  // Called after every check (for metrics and early un-ejection).
  using ResultCb = std::function<void(size_t host_index, bool passed)>;

  HealthChecker(event::Dispatcher& dispatcher, std::string upstream, config::HealthCheckConfig config,
                HostHealthSharedPtr health, ChangeCb on_change, ResultCb on_result);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;
  void start();
  const HostHealthSharedPtr& health() const { return health_; }
  const config::HealthCheckConfig& config() const { return config_; }

private:
  class Session;
  struct HostState {
    event::TimerPtr timer;
    std::unique_ptr<Session> session;
    uint32_t passes{0};
    uint32_t failures{0};
  };
  void schedule(size_t i, bool first);
  void runCheck(size_t i);
  void onCheckDone(size_t i, bool passed, std::string detail);

  event::Dispatcher& dispatcher_;
  std::string upstream_;
  config::HealthCheckConfig config_;
  HostHealthSharedPtr health_;
  ChangeCb on_change_;
  ResultCb on_result_;
  std::vector<HostState> states_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace levee::upstream
