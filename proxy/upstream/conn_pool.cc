#include "proxy/upstream/conn_pool.h"

#include <uv.h>  // uv_err_name only

#include <algorithm>
#include <cmath>
#include <random>

#include "proxy/common/logger.h"
#include "proxy/network/address.h"

namespace levee::upstream {

struct WorkerCluster::Pending final : public Cancellable {
  WorkerCluster* cluster{nullptr};
  PoolCallbacks* cb{nullptr};
  UpstreamConnection* bound{nullptr};  // connection being opened for this request
  std::list<std::unique_ptr<Pending>>::iterator self;
  void cancel() override {
    // The bound connection keeps connecting and goes idle (or serves another pending).
    cluster->pending_.erase(self);  // destroys *this
  }
};

// === impl UpstreamConnection ===

UpstreamConnection::UpstreamConnection(WorkerCluster& cluster, HostConstSharedPtr host)
    : cluster_(cluster), host_(std::move(host)),
      socket_(std::make_unique<event::TcpSocket>(cluster.dispatcher())),
      codec_(*this, 64 * 1024) {
  socket_->setCallbacks(this);
  timer_ = cluster.dispatcher().createTimer([this] {
    if (state_ == State::Connecting) {
      fail(connect_error_ != 0 ? std::string("connect: ") + uv_err_name(connect_error_) : "connect timeout");
    } else if (state_ == State::Idle) {
      cluster_.retire(this);
    }
  });
}

UpstreamConnection::~UpstreamConnection() = default;

void UpstreamConnection::connect() {
  ++uses_;
  timer_->enable(cluster_.config().connect_timeout);
  int rc = socket_->connect(reinterpret_cast<const sockaddr*>(&host_->addr));
  if (rc != 0) {
    // Report from the loop, not from inside newStream().
    connect_error_ = rc;
    timer_->enable(std::chrono::milliseconds(0));
  }
}

void UpstreamConnection::onConnected() {
  timer_->disable();
  state_ = State::Idle;
  socket_->readStart();
  cluster_.onConnectionReady(this);
}

void UpstreamConnection::attach(UpstreamStreamCallbacks* cb, bool head_request) {
  cb_ = cb;
  if (cb != nullptr) {
    state_ = State::Busy;
    timer_->disable();
    response_started_ = false;
    response_keep_alive_ = true;
    codec_.expectResponse(head_request);
  }
}

void UpstreamConnection::readDisable(bool disable) {
  if (disable) {
    if (read_disable_count_++ == 0) {
      socket_->readStop();
    }
  } else if (read_disable_count_ > 0 && --read_disable_count_ == 0) {
    socket_->readStart();
  }
}

void UpstreamConnection::switchToTunnel() {
  tunnel_ = true;
  socket_->readStart();
}

void UpstreamConnection::release(bool reusable) {
  cb_ = nullptr;
  if (read_disable_count_ > 0) {
    read_disable_count_ = 0;
    socket_->readStart();
  }
  if (!reusable || !response_keep_alive_ || tunnel_ || cluster_.draining_ || codec_.inMessage()) {
    cluster_.retire(this);
    return;
  }
  ++uses_;
  state_ = State::Idle;
  timer_->enable(cluster_.config().idle_timeout);
  cluster_.onConnectionReady(this);
}

void UpstreamConnection::fail(std::string detail) {
  State was = state_;
  state_ = State::Closed;
  timer_->disable();
  socket_->close();
  if (was == State::Connecting) {
    cluster_.onConnectionFailed(this, detail == "connect timeout" ? PoolFailure::ConnectTimeout
                                                                  : PoolFailure::ConnectFailure,
                                std::move(detail));
    return;
  }
  UpstreamStreamCallbacks* cb = cb_;
  cb_ = nullptr;
  bool started = response_started_;
  cluster_.retire(this);
  if (cb != nullptr) {
    cb->onUpstreamReset(detail, started);
  }
}

void UpstreamConnection::onData(const char* data, size_t len) {
  if (tunnel_) {
    if (cb_ != nullptr) {
      cb_->onUpstreamData(data, len, false);
    }
    return;
  }
  if (state_ != State::Busy) {
    fail("unexpected data from idle upstream connection");
    return;
  }
  size_t consumed = codec_.dispatch(data, len);
  if (consumed < len && state_ == State::Busy && codec_.upgraded()) {
    // Bytes after the 101 response are tunnel data.
    if (cb_ != nullptr) {
      cb_->onUpstreamData(data + consumed, len - consumed, false);
    }
  }
}

void UpstreamConnection::onEof() {
  if (tunnel_) {
    if (cb_ != nullptr) {
      cb_->onUpstreamTunnelEof();
    }
    return;
  }
  if (state_ == State::Busy && codec_.inMessage()) {
    // A close-delimited body ends here; anything else is a truncated response.
    if (codec_.onEof()) {
      return;
    }
  }
  if (state_ == State::Busy) {
    fail("upstream closed the connection");
    return;
  }
  if (state_ == State::Idle) {
    cluster_.retire(this);
  } else if (state_ == State::Connecting) {
    fail("connection closed while connecting");
  }
}

void UpstreamConnection::onError(int err) {
  fail(std::string(state_ == State::Connecting ? "connect: " : "") + uv_err_name(err));
}

void UpstreamConnection::onWriteDrained() {
  if (cb_ != nullptr) {
    cb_->onUpstreamWriteDrained();
  }
}

void UpstreamConnection::onInformational(http::ResponseHead& head) {
  if (cb_ != nullptr) {
    cb_->onUpstreamInformational(head);
  }
}

void UpstreamConnection::onResponseHead(http::ResponseHead& head, bool end_stream) {
  response_started_ = true;
  response_keep_alive_ = head.keep_alive;
  if (cb_ != nullptr) {
    cb_->onUpstreamHeaders(head, end_stream);
  }
}

void UpstreamConnection::onResponseBody(const char* data, size_t len) {
  if (cb_ != nullptr) {
    cb_->onUpstreamData(data, len, false);
  }
}

void UpstreamConnection::onResponseBodyEnd() {
  if (cb_ != nullptr) {
    cb_->onUpstreamData(nullptr, 0, true);
  }
}

void UpstreamConnection::onCodecError(const http::http1::CodecError& error) {
  codec_.stop();
  fail("protocol error: " + error.detail);
}

// === impl WorkerCluster ===

WorkerCluster::WorkerCluster(event::Dispatcher& dispatcher, const config::Upstream& config,
                             HostHealthSharedPtr health, UpstreamSharedPtr shared, ClusterStats stats)
    : dispatcher_(dispatcher), config_(config), shared_(std::move(shared)), stats_(stats),
      lr_(std::random_device{}()), random_(std::random_device{}()), rng_(std::random_device{}()) {
  updateHosts(std::move(health));
}

WorkerCluster::~WorkerCluster() {
  pending_.clear();
  for (auto& c : connections_) {
    c->cb_ = nullptr;
  }
  if (stats_.connections != nullptr) {
    stats_.connections->sub(static_cast<int64_t>(total_connections_));
  }
}

void WorkerCluster::updateHosts(HostHealthSharedPtr health) {
  health_ = health ? std::move(health) : std::make_shared<HostHealth>(std::make_shared<const HostSet>());
  std::vector<HostState> next;
  for (const auto& h : health_->hosts()->hosts) {
    HostState st;
    st.host = h;
    for (auto& old : states_) {
      if (old.host->address == h->address) {
        st.idle = std::move(old.idle);
        st.active = old.active;
        old.idle.clear();
      }
    }
    next.push_back(std::move(st));
  }
  // Idle connections to hosts that went away are closed.
  for (auto& old : states_) {
    for (auto* c : old.idle) {
      c->state_ = UpstreamConnection::State::Closed;
      retire(c);
    }
  }
  states_ = std::move(next);
  lb_hosts_.assign(states_.size(), LbHost{});
}

WorkerCluster::HostState* WorkerCluster::stateFor(const Host& host) {
  for (auto& s : states_) {
    if (s.host.get() == &host || s.host->address == host.address) {
      return &s;
    }
  }
  return nullptr;
}

int WorkerCluster::indexOf(const Host& host) const {
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].host.get() == &host || states_[i].host->address == host.address) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

int WorkerCluster::pickHost(const Host* avoid, uint64_t hash_key) {
  const size_t n = states_.size();
  if (n == 0) {
    return -1;
  }
  // Priority levels (failover groups) after Envoy's priority-load model (priority_set.h):
  // level 0 keeps as much traffic as its healthy share scaled by 100 / min_healthy_percent,
  // the rest spills to level 1 and so on; a level below the panic threshold (when the levels
  // together cannot take all the load) is balanced across all its hosts regardless of health.
  std::vector<PriorityHost> ph(n);
  for (size_t i = 0; i < n; ++i) {
    ph[i] = PriorityHost{states_[i].host->priority, health_->usable(i), states_[i].host->weight};
  }
  PrioritySelection sel =
      computePriorityLoad(ph, config_.failover.min_healthy_percent, config_.failover.panic_threshold_percent);
  int chosen = choosePriority(sel, rng_() % 100);
  if (chosen < 0) {
    return -1;
  }
  uint32_t level = static_cast<uint32_t>(chosen);
  bool panic = sel.panic || (level < sel.panic_by_priority.size() && sel.panic_by_priority[level]);
  std::vector<LbHost> eligible;
  std::vector<int> index;
  eligible.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const Host& h = *states_[i].host;
    if (h.priority != level || (!panic && !health_->usable(i))) {
      continue;
    }
    if (avoid != nullptr && h.address == avoid->address) {
      continue;
    }
    eligible.push_back(LbHost{h.weight, states_[i].active});
    index.push_back(static_cast<int>(i));
  }
  if (eligible.empty() && avoid != nullptr) {
    return pickHost(nullptr, hash_key);  // only the failed host is left: use it
  }
  if (eligible.empty()) {
    return -1;
  }
  int p = -1;
  switch (config_.load_balancer) {
    case config::LoadBalancerKind::LeastRequest:
      p = lr_.pick(eligible);
      break;
    case config::LoadBalancerKind::Random:
      p = random_.pick(eligible);
      break;
    case config::LoadBalancerKind::Hash:
      p = pickHash(index, hash_key);
      break;
    case config::LoadBalancerKind::RoundRobin:
      p = rr_.pick(eligible);
      break;
  }
  return p < 0 ? -1 : index[static_cast<size_t>(p)];
}

int WorkerCluster::pickHash(const std::vector<int>& index, uint64_t hash_key) {
  // Weighted rendezvous hashing: each host scores -weight / ln(u) with u uniform from
  // hash(key, host); the best score wins. A host leaving moves only its own keys.
  int best = -1;
  double best_score = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    const Host& h = *states_[static_cast<size_t>(index[i])].host;
    uint64_t x = hashCombine(hash_key, fnv1a64(h.address));
    double u = (static_cast<double>(x >> 11) + 0.5) / 9007199254740992.0;  // (0,1)
    double score = -static_cast<double>(h.weight) / std::log(u);
    if (best < 0 || score > best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

void WorkerCluster::recordResult(const Host& host, AttemptOutcome outcome, int status) {
  int idx = indexOf(host);
  if (idx >= 0) {
    shared_->recordHostResult(*health_, static_cast<size_t>(idx), outcome, status);
  }
}

Cancellable* WorkerCluster::newStream(PoolCallbacks& cb, const Host* avoid, uint64_t hash_key) {
  if (active_requests_ >= config_.limits.max_requests) {
    if (stats_.overflow != nullptr) {
      stats_.overflow->inc();
    }
    cb.onPoolFailure(PoolFailure::Overflow, "max_requests reached");
    return nullptr;
  }
  int idx = pickHost(avoid, hash_key);
  if (idx < 0) {
    cb.onPoolFailure(PoolFailure::NoHealthyUpstream, "no resolved endpoint");
    return nullptr;
  }
  HostState& st = states_[static_cast<size_t>(idx)];
  if (!st.idle.empty()) {
    UpstreamConnection* conn = st.idle.back();
    st.idle.pop_back();
    assign(conn, cb);
    return nullptr;
  }
  if (total_connections_ < config_.limits.max_connections) {
    auto conn = std::make_unique<UpstreamConnection>(*this, st.host);
    UpstreamConnection* raw = conn.get();
    connections_.push_back(std::move(conn));
    ++total_connections_;
    if (stats_.connections != nullptr) {
      stats_.connections->add(1);
    }
    auto pending = std::make_unique<Pending>();
    pending->cluster = this;
    pending->cb = &cb;
    pending->bound = raw;
    Pending* p = pending.get();
    pending_.push_back(std::move(pending));
    p->self = std::prev(pending_.end());
    raw->connect();
    return p;
  }
  if (pending_.size() < config_.limits.max_pending) {
    auto pending = std::make_unique<Pending>();
    pending->cluster = this;
    pending->cb = &cb;
    Pending* p = pending.get();
    pending_.push_back(std::move(pending));
    p->self = std::prev(pending_.end());
    return p;
  }
  if (stats_.overflow != nullptr) {
    stats_.overflow->inc();
  }
  cb.onPoolFailure(PoolFailure::Overflow, "max_connections and max_pending reached");
  return nullptr;
}

void WorkerCluster::assign(UpstreamConnection* conn, PoolCallbacks& cb) {
  ++active_requests_;
  if (HostState* st = stateFor(conn->host())) {
    ++st->active;
  }
  conn->state_ = UpstreamConnection::State::Busy;
  conn->timer_->disable();
  cb.onPoolReady(*conn);
}

void WorkerCluster::onConnectionReady(UpstreamConnection* conn) {
  // Oldest waiter first: one bound to this connection, or any unbound one.
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    Pending& p = **it;
    if (p.bound == conn || p.bound == nullptr || draining_) {
      if (p.bound != nullptr && p.bound != conn) {
        continue;
      }
      PoolCallbacks* cb = p.cb;
      pending_.erase(it);
      assign(conn, *cb);
      return;
    }
  }
  // Unbound waiters may also take a connection opened for someone who cancelled; bound
  // waiters of other (slow) connections take this one and free theirs.
  if (!pending_.empty()) {
    auto it = pending_.begin();
    PoolCallbacks* cb = (*it)->cb;
    pending_.erase(it);
    assign(conn, *cb);
    return;
  }
  if (draining_) {
    retire(conn);
    return;
  }
  if (HostState* st = stateFor(conn->host())) {
    st->idle.push_back(conn);
    conn->timer_->enable(config_.idle_timeout);
  } else {
    retire(conn);
  }
}

void WorkerCluster::onConnectionFailed(UpstreamConnection* conn, PoolFailure reason, std::string detail) {
  if (stats_.connect_failures != nullptr) {
    stats_.connect_failures->inc();
  }
  LEVEE_LOG(Upstream, debug, "upstream {}: host {}: {}", config_.name, conn->host().address, detail);
  PoolCallbacks* waiter = nullptr;
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if ((*it)->bound == conn) {
      waiter = (*it)->cb;
      pending_.erase(it);
      break;
    }
  }
  std::string full = "host " + conn->host().address + ": " + detail;
  recordResult(conn->host(), reason == PoolFailure::ConnectTimeout ? AttemptOutcome::Timeout
                                                                    : AttemptOutcome::ConnectFailure, 0);
  retire(conn);
  if (waiter != nullptr) {
    waiter->onPoolFailure(reason, full);
  }
}

void WorkerCluster::removeIdle(UpstreamConnection* conn) {
  for (auto& s : states_) {
    auto it = std::find(s.idle.begin(), s.idle.end(), conn);
    if (it != s.idle.end()) {
      s.idle.erase(it);
      return;
    }
  }
}

void WorkerCluster::retire(UpstreamConnection* conn) {
  removeIdle(conn);
  for (auto& p : pending_) {
    if (p->bound == conn) {
      p->bound = nullptr;
    }
  }
  conn->state_ = UpstreamConnection::State::Closed;
  conn->cb_ = nullptr;
  conn->timer_->disable();
  conn->socket_->close();
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->get() == conn) {
      // The connection may be on the call stack: free it on the next loop iteration.
      std::unique_ptr<UpstreamConnection> owned = std::move(*it);
      connections_.erase(it);
      dispatcher_.deferredDeleteAny(std::move(owned));
      --total_connections_;
      if (stats_.connections != nullptr) {
        stats_.connections->sub(1);
      }
      break;
    }
  }
  serveFromPending();
}

void WorkerCluster::serveFromPending() {
  // A waiter with no connection in progress gets a new one now that there is room.
  if (draining_) {
    return;
  }
  for (auto& p : pending_) {
    if (p->bound == nullptr && total_connections_ < config_.limits.max_connections) {
      int idx = pickHost(nullptr);
      if (idx < 0) {
        return;
      }
      auto conn = std::make_unique<UpstreamConnection>(*this, states_[static_cast<size_t>(idx)].host);
      UpstreamConnection* raw = conn.get();
      connections_.push_back(std::move(conn));
      ++total_connections_;
      if (stats_.connections != nullptr) {
        stats_.connections->add(1);
      }
      p->bound = raw;
      raw->connect();
    }
  }
}

void WorkerCluster::onRequestDoneFor(const Host& host) {
  if (active_requests_ > 0) {
    --active_requests_;
  }
  if (HostState* st = stateFor(host)) {
    if (st->active > 0) {
      --st->active;
    }
  }
}

HostConstSharedPtr WorkerCluster::chooseHost() {
  int idx = pickHost(nullptr);
  return idx < 0 ? nullptr : states_[static_cast<size_t>(idx)].host;
}

void WorkerCluster::drain() {
  draining_ = true;
  for (auto& s : states_) {
    std::vector<UpstreamConnection*> idle = std::move(s.idle);
    s.idle.clear();
    for (auto* c : idle) {
      retire(c);
    }
  }
}

}  // namespace levee::upstream
