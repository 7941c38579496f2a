#pragma once
// Per-worker view of one upstream: its hosts, the load balancer, and a pool of HTTP/1.1
// keep-alive connections (never shared across loops). Limits max_connections / max_pending /
// max_requests apply per worker.

#include <chrono>
#include <list>
#include <random>
#include <memory>
#include <string>
#include <vector>

#include "config/policy.h"
#include "proxy/common/hash.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/tcp_socket.h"
#include "proxy/http/http1/codec.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/host.h"
#include "proxy/upstream/host_health.h"
#include "proxy/upstream/upstream_shared.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/priority_set.h"
#include "proxy/upstream/random_lb.h"

namespace levee::upstream {

class UpstreamConnection;
class WorkerCluster;

enum class PoolFailure { Overflow, ConnectFailure, ConnectTimeout, NoHealthyUpstream };

// Response-side events of one exchange on an upstream connection (implemented by the router).
class UpstreamStreamCallbacks {
public:
  virtual ~UpstreamStreamCallbacks() = default;
  virtual void onUpstreamInformational(http::ResponseHead& head) = 0;
  virtual void onUpstreamHeaders(http::ResponseHead& head, bool end_stream) = 0;
  virtual void onUpstreamData(const char* data, size_t len, bool end_stream) = 0;
  // The connection failed. `response_started`: some response bytes were already delivered.
  virtual void onUpstreamReset(std::string_view detail, bool response_started) = 0;
  // The upstream write queue drained below the low watermark.
  virtual void onUpstreamWriteDrained() = 0;
  // Tunnel mode (after 101): raw bytes and EOF from the upstream.
  virtual void onUpstreamTunnelEof() = 0;
};

class PoolCallbacks {
public:
  virtual ~PoolCallbacks() = default;
  virtual void onPoolReady(UpstreamConnection& conn) = 0;
  virtual void onPoolFailure(PoolFailure reason, std::string_view detail) = 0;
};

// Returned by newStream() when the request waits; the caller MUST cancel() it if it goes away
// first. Never call cancel() from inside the callbacks.
class Cancellable {
public:
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

class UpstreamConnection final : public event::TcpSocketCallbacks, public http::http1::ClientCodecCallbacks {
public:
  UpstreamConnection(WorkerCluster& cluster, HostConstSharedPtr host);
  ~UpstreamConnection() override;

  const Host& host() const { return *host_; }
  // Binds the next response to `cb` (nullptr detaches).
  void attach(UpstreamStreamCallbacks* cb, bool head_request);
  void write(const char* data, size_t len) { socket_->write(data, len); }
  void writev(const event::Slice* s, size_t n) { socket_->writev(s, n); }
  bool aboveHighWatermark() const { return socket_->aboveHighWatermark(); }
  void readDisable(bool disable);
  void switchToTunnel();
  void shutdownWrite() { socket_->shutdownWrite(); }
  // Exchange finished. `reusable`: response complete and request fully sent -> back to idle.
  void release(bool reusable);
  // How many requests this connection carried before the current one.
  uint32_t reuseCount() const { return uses_ - 1; }

  // TcpSocketCallbacks
  void onData(const char* data, size_t len) override;
  void onEof() override;
  void onError(int err) override;
  void onWriteDrained() override;
  void onConnected() override;
  // ClientCodecCallbacks
  void onInformational(http::ResponseHead& head) override;
  void onResponseHead(http::ResponseHead& head, bool end_stream) override;
  void onResponseBody(const char* data, size_t len) override;
  void onResponseBodyEnd() override;
  void onCodecError(const http::http1::CodecError& error) override;

private:
  friend class WorkerCluster;
  enum class State { Connecting, Idle, Busy, Closed };
  void connect();
  void fail(std::string detail);

  WorkerCluster& cluster_;
  HostConstSharedPtr host_;
  event::TcpSocketPtr socket_;
  http::http1::ClientCodec codec_;
  event::TimerPtr timer_;  // connect timeout, then idle timeout
  UpstreamStreamCallbacks* cb_{nullptr};
  State state_{State::Connecting};
  uint32_t uses_{0};
  bool response_started_{false};
  bool response_keep_alive_{true};
  bool tunnel_{false};
  uint32_t read_disable_count_{0};
  int connect_error_{0};  // a synchronous connect() error, reported from the loop
};

struct ClusterStats {
  stats::Gauge* connections{nullptr};     // levee_upstream_connections{upstream}
  stats::Counter* overflow{nullptr};      // levee_upstream_overflow_total{upstream}
  stats::Counter* connect_failures{nullptr};
};

class WorkerCluster {
public:
  WorkerCluster(event::Dispatcher& dispatcher, const config::Upstream& config,
                HostHealthSharedPtr health, UpstreamSharedPtr shared, ClusterStats stats);
  ~WorkerCluster();
  WorkerCluster(const WorkerCluster&) = delete;
  WorkerCluster& operator=(const WorkerCluster&) = delete;

  const std::string& name() const { return config_.name; }
  // Either calls `cb` before returning and returns nullptr, or returns a handle to cancel.
  // `avoid`: prefer another host than this one (a retry after a failed attempt).
  // `hash_key`: for load_balancer: hash (0 when none).
  [[nodiscard]] Cancellable* newStream(PoolCallbacks& cb, const Host* avoid = nullptr, uint64_t hash_key = 0);
  void updateHosts(HostHealthSharedPtr health);
  UpstreamShared& shared() { return *shared_; }
  // Resilience bookkeeping for one finished attempt on `host` (outlier detection).
  void recordResult(const Host& host, AttemptOutcome outcome, int status);
  // Load-balancer pick without a pooled connection (L4 proxy). nullptr when no host.
  HostConstSharedPtr chooseHost();
  // Close idle connections; busy ones close when their exchange ends.
  void drain();
  size_t connectionCount() const { return total_connections_; }
  uint32_t activeRequests() const { return active_requests_; }
  // The exchange assigned by onPoolReady finished (success or not).
  void onRequestDoneFor(const Host& host);
  const HostSetConstSharedPtr& hosts() const { return health_->hosts(); }
  const HostHealthSharedPtr& health() const { return health_; }
  event::Dispatcher& dispatcher() { return dispatcher_; }
  const config::Upstream& config() const { return config_; }

private:
  friend class UpstreamConnection;
  struct Pending;
  struct HostState {
    HostConstSharedPtr host;
    std::vector<UpstreamConnection*> idle;
    uint32_t active{0};
  };
  HostState* stateFor(const Host& host);
  int indexOf(const Host& host) const;
  int pickHost(const Host* avoid, uint64_t hash_key = 0);
  int pickHash(const std::vector<int>& index, uint64_t hash_key);
  void onConnectionReady(UpstreamConnection* conn);   // connected or released idle
  void onConnectionFailed(UpstreamConnection* conn, PoolFailure reason, std::string detail);
  void onConnectionClosed(UpstreamConnection* conn);
  void removeIdle(UpstreamConnection* conn);
  void assign(UpstreamConnection* conn, PoolCallbacks& cb);
  void retire(UpstreamConnection* conn);
  void serveFromPending();

  event::Dispatcher& dispatcher_;
  config::Upstream config_;
  HostHealthSharedPtr health_;
  UpstreamSharedPtr shared_;
  ClusterStats stats_;
  std::vector<HostState> states_;
  std::vector<LbHost> lb_hosts_;
  RoundRobinLb rr_;
  LeastRequestLb lr_;
  RandomLb random_;
  std::mt19937_64 rng_;
  std::list<std::unique_ptr<UpstreamConnection>> connections_;
  std::list<std::unique_ptr<Pending>> pending_;
  size_t total_connections_{0};
  uint32_t active_requests_{0};
  bool draining_{false};
};
using WorkerClusterSharedPtr = std::shared_ptr<WorkerCluster>;

}  // namespace levee::upstream
