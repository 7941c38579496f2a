#pragma once
// One worker thread: its own loop, its own copies of every listener (SO_REUSEPORT sockets),
// per-upstream connection pools, and the connections it accepted. Everything here runs on the
// worker thread; the main thread talks to it only through post() (the public methods marked
// "thread-safe").

#include <atomic>
#include <random>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "filters/degradation/degradation_state.h"
#include "filters/fault/fault_filter.h"
#include "proxy/event/dispatcher.h"
#include "proxy/http/access_log.h"
#include "proxy/http/http1/codec_pool.h"
#include "proxy/server/snapshot.h"
#include "proxy/stats/sla_registry.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/conn_pool.h"

namespace levee::server {

// A bound listening socket for one worker, keyed by listener identity.
struct ListenerFd {
  std::string key;  // name|address|protocol
  int fd{-1};
};

std::string listenerKey(const config::Listener& l);

class WorkerListener;

class Worker {
public:
  // `sla`: where completed requests are recorded for the SLA report (null: not recorded);
  // `degradation`: the level to apply (null: none).
  Worker(uint32_t index, stats::Store& store, http::AccessLog* access_log, stats::SlaRegistry* sla = nullptr,
         filters::degradation::DegradationState* degradation = nullptr);
  ~Worker();

  // Before start(): the run-time fault experiments this worker reads (owned by the server).
  void setFaultRegistry(const filters::fault::FaultRegistry* registry) {
    faults_ = std::make_unique<filters::fault::WorkerFaults>(registry, store_, [this] { return rng_(); });
  }
  // Starts the thread with the first snapshot and its listening sockets.
  void start(SnapshotConstSharedPtr snapshot, HostSetsConstSharedPtr hosts, std::vector<ListenerFd> fds);
  // Thread-safe. New snapshot: listeners whose key is unchanged keep their sockets and
  // connections; `fds` holds sockets for the new ones; removed ones are closed.
  void applySnapshot(SnapshotConstSharedPtr snapshot, std::vector<ListenerFd> fds);
  // Thread-safe. DNS answers changed.
  void updateHosts(HostSetsConstSharedPtr hosts);
  // Lifecycle phases (DESIGN section 10). Only inbound listeners drain; outbound ones keep
  // serving normally until the process exits.
  enum class DrainPhase {
    None,
    CloseAfterResponse,  // inbound responses carry Connection: close; still accepting
    StopAccepting,       // inbound listeners closed, idle inbound connections closed
  };
  // Thread-safe. Moves to `phase` (never back).
  void drain(DrainPhase phase);
  // Thread-safe. True once the first snapshot's listeners all accept on this worker.
  bool listening() const { return listening_.load(std::memory_order_acquire); }
  // Thread-safe. Close everything and leave the loop; join() afterwards.
  void stop();
  void join();
  // Thread-safe reads for the main thread.
  uint64_t activeConnections() const { return active_connections_.load(std::memory_order_relaxed); }

  // Worker-thread API used by the listeners.
  event::Dispatcher& dispatcher() { return dispatcher_; }
  stats::Store& store() { return store_; }
  stats::SlaRegistry* sla() { return sla_; }
  http::AccessLog* accessLog() { return access_log_; }
  filters::degradation::DegradationState* degradation() { return degradation_; }
  const SnapshotConstSharedPtr& snapshot() const { return snapshot_; }
  upstream::WorkerClusterSharedPtr cluster(const std::string& name);
  DrainPhase drainPhase() const { return drain_phase_; }
  void countLocalReply(std::string_view reason);
  http::http1::ServerCodecPool& codecPool() { return codec_pool_; }
  uint64_t random() { return rng_(); }
  filters::fault::WorkerFaults& faults() { return *faults_; }
  void connectionOpened() { active_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connectionClosed() { active_connections_.fetch_sub(1, std::memory_order_relaxed); }

private:
  void run();
  void applyOnThread(SnapshotConstSharedPtr snapshot, std::vector<ListenerFd> fds);
  void rebuildClusters();

  uint32_t index_;
  stats::Store& store_;
  http::AccessLog* access_log_;
  stats::SlaRegistry* sla_;
  filters::degradation::DegradationState* degradation_;
  event::Dispatcher dispatcher_;
  std::thread thread_;
  SnapshotConstSharedPtr snapshot_;
  HostSetsConstSharedPtr hosts_;
  std::map<std::string, upstream::WorkerClusterSharedPtr, std::less<>> clusters_;
  std::map<std::string, std::unique_ptr<WorkerListener>> listeners_;
  std::vector<std::unique_ptr<WorkerListener>> retired_listeners_;  // draining after a reload
  std::unordered_map<std::string_view, stats::Counter*> local_replies_;
  std::atomic<uint64_t> active_connections_{0};
  http::http1::ServerCodecPool codec_pool_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::unique_ptr<filters::fault::WorkerFaults> faults_ =
      std::make_unique<filters::fault::WorkerFaults>(nullptr, store_, [this] { return rng_(); });
  DrainPhase drain_phase_{DrainPhase::None};
  std::atomic<bool> listening_{false};
  bool first_apply_{true};
};

}  // namespace levee::server
