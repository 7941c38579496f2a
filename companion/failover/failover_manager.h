#pragma once
// PostgreSQL failover on the main loop (DESIGN section 8): checks every member each
// check_interval on its own worker thread (libpq blocks; the loop never does), feeds the results
// to ClusterState, fences, promotes, and tells the server when the routed members changed so
// that the `endpoints_from` upstreams are rebuilt and sessions to fenced members are closed.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "companion/failover/cluster_state.h"
#include "companion/failover/lease.h"
#include "companion/operation_lock.h"
#include "config/policy.h"
#include "proxy/event/dispatcher.h"
#include "proxy/stats/store.h"

namespace levee::companion::failover {

// One thread that runs blocking jobs in order. The destructor drops queued jobs and joins
// (waiting for the job in progress, which is bounded by its libpq timeouts): destroy it on a
// loop only when idle().
class MemberWorker {
public:
  MemberWorker();
  ~MemberWorker();
  MemberWorker(const MemberWorker&) = delete;
  MemberWorker& operator=(const MemberWorker&) = delete;
  void submit(std::function<void()> job);
  void dropQueued();
  bool idle();

private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool running_{false};  // a job is in progress
  bool stop_{false};
  std::thread thread_;
};

class FailoverManager {
public:
  using ChangeCb = std::function<void()>;
  // `lock` is the companion's OperationLock (shared with restores): a promotion holds it from
  // the lease confirmation until pg_promote finished; while somebody else holds it, automatic
  // promotion is deferred (retried at every check) and the API answers 409 "locked".
  FailoverManager(event::Dispatcher& main, const config::PostgresFailoverConfig& config,
                  stats::Store& store, OperationLock& lock, ChangeCb on_change);
  ~FailoverManager();
  FailoverManager(const FailoverManager&) = delete;
  FailoverManager& operator=(const FailoverManager&) = delete;

  void start();
  // Stops checking and drops queued work; results still in flight are ignored. Destroying the
  // manager joins its threads: on a loop, destroy it only once idle() (Server keeps retired
  // managers until then).
  void stop();
  bool idle() const;
  const config::PostgresFailoverConfig& config() const { return state_.config(); }

  // Main loop. Addresses the L4 route with this role may use now (primary: none or one).
  std::vector<config::SocketAddress> addressesFor(config::EndpointsFrom::Role role) const;
  // GET /api/v1/failover/status.
  std::string statusJson() const;
  // POST /api/v1/failover/promote with `body` ({} or {"member":"pg-1","force":true}).
  // Returns the HTTP status: 202 started, 400 bad body, 404 unknown member, 409 refused.
  int promote(std::string_view body, std::string& out_json);
  // Patroni-style probes: role "primary" or "replica", query "lag=16MB" (replica).
  int roleHealth(std::string_view role, std::string_view query, std::string& out_json) const;
  const LeaderLease& lease() const { return *lease_; }
  // Scrape-time gauges (levee_db_*), see registerFailoverMetrics.
  void collect(std::string_view family, std::vector<std::pair<stats::Labels, double>>& out) const;

private:
  void checkAll();
  void onObservation(size_t index, Observation obs);
  void decide();
  void startPromotion(const Decision& d, bool manual);
  void onLeaseConfirmed(size_t target, bool held, const std::string& error);
  void abortPromotion(size_t target, std::string_view result, const std::string& why);
  void onPromoted(size_t target, bool ok, const std::string& error);
  void publishIfChanged();
  void count(std::string_view result);

  event::Dispatcher& main_;
  ClusterState state_;
  std::unique_ptr<LeaderLease> lease_;
  stats::Store& store_;
  OperationLock& lock_;
  std::optional<OperationLock::Guard> op_guard_;  // held from lease confirmation to pg_promote's end
  bool lock_refusal_reported_{false};             // "deferred: <holder> runs" logged this episode
  ChangeCb on_change_;
  std::vector<std::unique_ptr<MemberWorker>> workers_;
  std::vector<bool> checking_;  // a check of member i is in flight
  event::TimerPtr timer_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted results check it
  std::string published_;       // routed view last published
  // The last failover (automatic or manual), for the status API.
  struct Last {
    std::string result;         // success | failed | ...
    std::string target;
    std::string from;
    std::string reason;
    std::string error;
    bool manual{false};
    uint64_t detected_ms{0};    // primary declared failed (fenced)
    uint64_t first_failure_ms{0};
    uint64_t finished_ms{0};
  };
  std::optional<Last> last_;
  uint64_t first_failure_ms_{0};  // first failed check of the routed primary in this episode
  uint64_t promote_started_ms_{0};
  std::string promote_from_;
  bool promote_manual_{false};
  std::string promote_reason_;
};

// Registers the levee_db_* gauges once; `get` returns the current manager (or nullptr).
void registerFailoverMetrics(stats::Store& store, std::function<const FailoverManager*()> get);

}  // namespace levee::companion::failover
