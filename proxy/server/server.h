#pragma once
// Wiring only: the main loop (probes, admin, signals, reload, DNS), the workers, the metrics
// store and the access log. See DESIGN section 1 for the process model.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "companion/failover/failover_manager.h"
#include "companion/backup/backup_manager.h"
#include "companion/operation_lock.h"
#include "config/policy.h"
#include "filters/fault/fault_config.h"
#include "proxy/admin/admin_handlers.h"
#include "proxy/admin/admin_server.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/dns.h"
#include "proxy/event/fs_watch.h"
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
  bool started() override { return started_ && listenersBound(); }
  std::string metricsText() override;
  std::string configJson() override;
  std::string clustersJson() override;
  void reload(std::function<void(bool ok, std::string body_json)> done) override;
  int drain(const admin::DrainRequest& request, std::string& body_json) override;
  std::string adminToken() override { return admin_token_; }
  void audit(const admin::AdminRequest& req, int status, std::string_view detail) override;
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
  admin::AdminResponse companionApi(const admin::AdminRequest& req) override;

private:
  Status bindListeners(const config::Policy& policy, const std::vector<std::string>& keys,
                       std::vector<std::vector<ListenerFd>>& per_worker);
  // Every worker listens on every listener of the first policy.
  bool listenersBound() const;
  void registerMetrics();
  void configureSla();
  std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> makeUpstreams(const config::Policy& policy);
  void restartHealthChecks();
  router::RouteRetryStateSharedPtr retryStateFor(const config::Listener& l, const config::Route& r);
  router::RouteFallbackStateSharedPtr fallbackStateFor(const config::Listener& l, const config::Route& r);
  std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> makeRateLimits(
      const config::Policy& policy);
  using ReloadDone = std::function<void(bool ok, std::string body_json)>;
  struct ReloadJob;
  // Reload pipeline (main loop): the file (and the admin token file) is read and validated on
  // the thread pool, then the snapshot is built and swapped here. One reload runs at a time;
  // requests arriving meanwhile are served by one more run afterwards.
  void requestReload(std::string trigger, ReloadDone done);
  void startReload();
  void finishReload(ReloadJob& job, std::vector<ReloadDone> waiters);
  bool applyPolicy(config::PolicyConstSharedPtr policy, std::string token, std::string& error);
  void recordReloadFailure(const std::string& trigger, std::vector<std::string> errors);
  void startWatching();
  void onWatchEvent(const std::string& name);
  void loadToken();
  void rebuildHostSets();
  void resolveDns();
  // Lifecycle (DESIGN section 10; README "Lifecycle"): readiness off and Connection: close on
  // inbound responses at once, inbound listeners closed after `delay`, exit (when asked) once
  // no connection is left or at `grace` after the start.
  void beginDrain(bool exit, std::optional<std::chrono::milliseconds> delay,
                  std::optional<std::chrono::milliseconds> grace, const char* why);
  void onDrainTick();
  double openBreakerPercent() const;
  void syncFailover();
  void shutdown();
  void applyCompanion(const config::Policy& policy);

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
  // The companion (DESIGN section 8): one lock shared by restore and failover (declared before
  // both, so that it outlives the guards they hold).
  companion::OperationLock companion_lock_;
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
  std::unique_ptr<companion::backup::BackupManager> backup_;
  std::string admin_token_;
  // Last reload attempt, for GET /admin/config.
  std::string last_reload_result_{"none"};
  std::string last_reload_trigger_;
  std::vector<std::string> last_reload_errors_;  // FILE:LINE:COL: path: message
  std::chrono::system_clock::time_point last_reload_at_{};
  bool reload_running_{false};
  bool reload_again_{false};
  std::string next_trigger_;
  std::vector<ReloadDone> next_waiters_;
  event::DirWatcherPtr watcher_;
  event::TimerPtr debounce_timer_;
  std::chrono::steady_clock::time_point first_event_at_{};
  // Completions of off-loop work hold a weak_ptr to this: they do nothing once run() returns.
  std::shared_ptr<int> alive_{std::make_shared<int>(0)};
  std::chrono::steady_clock::time_point drain_started_;
  std::chrono::milliseconds drain_grace_{0};
  bool exit_requested_{false};
  uint64_t generation_{0};
  stats::Counter* reloads_ok_{nullptr};
  stats::Counter* reloads_failed_{nullptr};
  bool started_{false};
  std::atomic<bool> draining_{false};
  bool stopping_{false};
};

}  // namespace levee::server
