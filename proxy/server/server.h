#pragma once
// Wiring only: the main loop (probes, admin, signals, reload, DNS), the workers, the metrics
// store and the access log. See DESIGN section 1 for the process model.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "companion/backup/backup_manager.h"
#include "companion/operation_lock.h"
#include "config/policy.h"
#include "proxy/admin/admin_handlers.h"
#include "proxy/admin/admin_server.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/dns.h"
#include "proxy/http/access_log.h"
#include "proxy/server/options.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker.h"
#include "proxy/stats/store.h"
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
  admin::AdminResponse companionApi(const admin::AdminRequest& req) override;

private:
  Status bindListeners(const config::Policy& policy, const std::vector<std::string>& keys,
                       std::vector<std::vector<ListenerFd>>& per_worker);
  void registerMetrics();
  std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> makeUpstreams(const config::Policy& policy);
  void restartHealthChecks();
  router::RouteRetryStateSharedPtr retryStateFor(const config::Listener& l, const config::Route& r);
  std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> makeRateLimits(
      const config::Policy& policy);
  void loadToken();
  void rebuildHostSets();
  void resolveDns();
  void onDrainTick();
  void shutdown();
  void applyCompanion(const config::Policy& policy);

  Options options_;
  RealTimeSource time_;
  event::Dispatcher main_;
  uint32_t concurrency_;
  stats::Store store_;
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
  // Per-route retry budgets and counters, keyed "listener|route", with the retry block they
  // were built for (reused across reloads while it is unchanged).
  std::map<std::string, std::pair<config::RetryConfig, router::RouteRetryStateSharedPtr>> retry_states_;
  event::TimerPtr drain_timer_;
  event::TimerPtr drain_delay_timer_;
  // The companion (DESIGN section 8): one lock shared by restore and failover.
  companion::OperationLock companion_lock_;
  std::unique_ptr<companion::backup::BackupManager> backup_;
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
