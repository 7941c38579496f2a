#pragma once
// Wiring only: the main loop (probes, admin, signals, reload, DNS), the workers, the metrics
// store and the access log. See DESIGN section 1 for the process model.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "companion/failover/failover_manager.h"
#include "config/policy.h"
#include "filters/fault/fault_config.h"
#include "proxy/admin/admin_handlers.h"
#include "proxy/admin/admin_server.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/dns.h"
#include "proxy/http/access_log.h"
#include "proxy/server/options.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker.h"
#include "proxy/stats/sla_registry.h"
#include "proxy/stats/store.h"
#include "filters/degradation/degradation_controller.h"
#include "proxy/common/time_source.h"
#include "proxy/upstream/health_checker.h"

namespace levee::server {

class Server final : public admin::AdminContext {
public:
  Server(Options options, config::Policy policy);
  ~Server() override;
  // Binds everything, starts workers, runs the main loop until shutdown. Returns the exit code.
  int run();

  // AdminContext
  bool ready(std::string& components_json) override;
  bool started() override { return started_; }
  std::string metricsText() override;
  std::string configJson() override;
  std::string clustersJson() override;
  bool reload(std::string& body_json) override;
  void startDrain() override;
  std::string adminToken() override { return admin_token_; }
  void audit(const admin::AdminRequest& req, int status) override;
  std::string circuitBreakersJson() override;
  int circuitBreakerAction(const std::string& upstream, const std::string& action, std::string& body) override;
  std::string degradationJson() override;
  int setDegradation(std::string_view body, std::string& body_json) override;
  int clearDegradation(std::string& body_json) override;
  std::string slaJson() override;
  std::string faultsJson() override { return faults_.toJson(); }
  int createFault(const std::string& body, std::string& body_json) override;
  int deleteFault(const std::string& id, std::string& body_json) override;
  int failoverStatus(std::string& body) override;
  int failoverPromote(const std::string& request_body, std::string& body) override;
  int failoverRoleHealth(std::string_view role, std::string_view query, std::string& body) override;

private:
  Status bindListeners(const config::Policy& policy, const std::vector<std::string>& keys,
                       std::vector<std::vector<ListenerFd>>& per_worker);
  void registerMetrics();
  void configureSla();
  std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> makeUpstreams(const config::Policy& policy);
  void restartHealthChecks();
  router::RouteRetryStateSharedPtr retryStateFor(const config::Listener& l, const config::Route& r);
  router::RouteFallbackStateSharedPtr fallbackStateFor(const config::Listener& l, const config::Route& r);
  std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> makeRateLimits(
      const config::Policy& policy);
  void loadToken();
  void rebuildHostSets();
  void resolveDns();
  void onDrainTick();
  double openBreakerPercent() const;
  void syncFailover();
  void shutdown();

  Options options_;
  RealTimeSource time_;
  event::Dispatcher main_;
  uint32_t concurrency_;
  stats::Store store_;
  stats::SlaRegistry sla_;  // before workers_: they record into it
  // The degradation level workers read (before workers_, like sla_).
  std::unique_ptr<filters::degradation::DegradationState> degradation_state_;
  filters::fault::FaultRegistry faults_{time_};  // run-time experiments, read by every worker
  std::unique_ptr<http::AccessLog> access_log_;
  SnapshotConstSharedPtr snapshot_;
  HostSetsConstSharedPtr hosts_;
  std::map<std::string, std::vector<sockaddr_storage>> dns_cache_;  // "host:port" -> answers
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<admin::AdminServer> probe_server_;
  std::unique_ptr<admin::AdminServer> admin_server_;
  std::unique_ptr<event::DnsResolver> dns_;
  std::vector<event::SignalWatcherPtr> signals_;
  event::TimerPtr dns_timer_;
  event::TimerPtr tick_timer_;
  std::map<std::string, std::unique_ptr<upstream::HealthChecker>> checkers_;
  std::unique_ptr<companion::failover::FailoverManager> failover_;  // companion.failover.postgres
  // Replaced by a reload, destroyed once their threads are idle (never joined on the loop).
  std::vector<std::unique_ptr<companion::failover::FailoverManager>> retired_failover_;
  // Per-route retry budgets and counters, keyed "listener|route", with the retry block they
  // were built for (reused across reloads while it is unchanged).
  std::map<std::string, std::pair<config::RetryConfig, router::RouteRetryStateSharedPtr>> retry_states_;
  // Per route ("listener|route"): kept while the route's fallback block is unchanged.
  std::map<std::string, router::RouteFallbackStateSharedPtr> fallback_states_;
  // Degradation level: its owner on the main loop and its 1 s tick (the state is above).
  std::unique_ptr<filters::degradation::DegradationController> degradation_;
  event::TimerPtr degradation_timer_;
  event::TimerPtr drain_timer_;
  event::TimerPtr drain_delay_timer_;
  std::string admin_token_;
  std::string last_reload_error_;
  std::string last_reload_result_{"success"};
  std::chrono::steady_clock::time_point drain_started_;
  uint64_t generation_{0};
  stats::Counter* reloads_ok_{nullptr};
  stats::Counter* reloads_failed_{nullptr};
  bool started_{false};
  bool listeners_bound_{false};
  std::atomic<bool> draining_{false};
  bool stopping_{false};
};

}  // namespace levee::server
