#include "proxy/server/worker.h"

#include <unistd.h>

#include <list>

#include "proxy/common/logger.h"
#include "proxy/event/tcp_socket.h"
#include "proxy/http/conn_manager.h"
#include "filters/degradation/degradation_filter.h"
#include "filters/fault/fault_filter.h"
#include "filters/rate_limit/rate_limit_filter.h"
#include "proxy/router/router_filter.h"
#include "proxy/tcp/tcp_proxy.h"

namespace levee::server {
namespace {

constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};

uint32_t methodIndex(std::string_view m) {
  for (uint32_t i = 0; i < std::size(kMethods); ++i) {
    if (kMethods[i] == m) {
      return i;
    }
  }
  return std::size(kMethods);
}

std::string_view methodLabel(uint32_t idx) { return idx < std::size(kMethods) ? kMethods[idx] : "OTHER"; }

// Request counters and the latency histogram of one (listener, route) on one worker.
struct RouteStats {
  std::string listener, route, upstream;
  stats::Histogram* latency{nullptr};
  stats::SlaSeries* sla{nullptr};  // routed requests only
  std::unordered_map<uint32_t, stats::Counter*> requests;  // (method index << 16) | status

  void record(stats::Store& store, std::string_view method, int status, double seconds) {
    uint32_t mi = methodIndex(method);
    uint32_t key = (mi << 16) | static_cast<uint32_t>(status & 0xffff);
    auto it = requests.find(key);
    if (it == requests.end()) {
      stats::Counter& c = store.counter(
          "levee_http_requests_total", "HTTP requests by listener, route, upstream, method and status.",
          {{"listener", listener}, {"route", route}, {"upstream", upstream},
           {"method", std::string(methodLabel(mi))}, {"code", std::to_string(status)}});
      it = requests.emplace(key, &c).first;
    }
    it->second->inc();
    latency->record(seconds);
  }
};

}  // namespace

std::string listenerKey(const config::Listener& l) {
  return l.name + "|" + l.address.toString() + "|" + (l.protocol == config::ListenerProtocol::Http ? "http" : "tcp");
}

// One listener on one worker: accepts, and serves as the connection manager config, the
// filter-chain factory and the router context of its HTTP connections (or runs TCP sessions).
class WorkerListener final : public http::ConnectionManagerConfig,
                             public http::FilterChainFactory,
                             public router::RouterContext {
public:
  WorkerListener(Worker& w, std::string key) : worker_(w), key_(std::move(key)) {}

  ~WorkerListener() override {
    listener_.reset();
    // Detach the maps first: closing calls back into onConnectionClosed.
    auto conns = std::move(http_conns_);
    http_conns_.clear();
    for (auto& [ptr, cm] : conns) {
      cm->closeNow();
    }
    auto sessions = std::move(tcp_sessions_);
    tcp_sessions_.clear();
    for (auto& [ptr, s] : sessions) {
      s->close();
    }
  }

  bool listen(int fd) {
    std::string error;
    listener_ = event::TcpListener::create(
        worker_.dispatcher(), fd, [this](event::TcpSocketPtr s) { onAccept(std::move(s)); }, &error);
    if (!listener_) {
      LEVEE_LOG(Main, err, "listener {}: {}", name_, error);
      ::close(fd);
      return false;
    }
    return true;
  }

  void configure(const SnapshotConstSharedPtr& snap, size_t index) {
    const config::Listener& l = snap->policy->listeners[index];
    name_ = l.name;
    is_http_ = l.protocol == config::ListenerProtocol::Http;
    limits_.max_header_bytes = l.limits.max_header_bytes;
    limits_.max_headers = l.limits.max_headers;
    limits_.max_body_bytes = l.limits.max_body_bytes;
    header_timeout_ = l.limits.header_timeout;
    idle_timeout_ = l.limits.idle_timeout;
    trust_forwarded_ = l.trust_forwarded;
    inbound_ = l.direction == config::ListenerDirection::Inbound;
    table_ = snap->route_tables[index];
    tcp_upstream_ = l.upstream;
    route_stats_.clear();
    stats_table_ = table_.get();
    // Per-route shared state, looked up once per configuration rather than per request.
    rate_limits_.assign(l.routes.size(), nullptr);
    for (size_t ri = 0; ri < l.routes.size(); ++ri) {
      auto it = snap->rate_limits.find(l.name + "|" + l.routes[ri].name);
      if (it != snap->rate_limits.end()) {
        rate_limits_[ri] = it->second;
      }
    }
    // levee_degradation_shed_total{route,level}, levels 1..4.
    shed_.assign(l.routes.size(), {});
    for (size_t ri = 0; ri < l.routes.size(); ++ri) {
      for (uint32_t level = 1; level <= filters::degradation::kMaxLevel; ++level) {
        shed_[ri][level] = &worker_.store().counter(
            "levee_degradation_shed_total", "Requests a degradation level refused or answered itself.",
            {{"route", l.routes[ri].name}, {"level", std::to_string(level)}});
      }
    }
    if (!downstream_gauge_) {
      downstream_gauge_ = &worker_.store().gauge("levee_downstream_connections",
                                                 "Open downstream connections per listener.",
                                                 {{"listener", name_}});
    }
    if (!is_http_ && tcp_stats_.rx == nullptr) {
      auto& st = worker_.store();
      tcp_stats_.rx = &st.counter("levee_tcp_bytes_total", "Bytes proxied by TCP listeners.",
                                  {{"listener", name_}, {"direction", "rx"}});
      tcp_stats_.tx = &st.counter("levee_tcp_bytes_total", "Bytes proxied by TCP listeners.",
                                  {{"listener", name_}, {"direction", "tx"}});
      tcp_stats_.connect_failures = &st.counter("levee_tcp_connect_failures_total",
                                                "TCP proxy upstream connect failures.", {{"listener", name_}});
    }
  }

  // endpoints_from (failover): sessions to a host that left the upstream's host set (a fenced
  // or demoted member) are closed, so clients reconnect to the current member.
  void closeSessionsToRemovedHosts() {
    upstream::WorkerClusterSharedPtr cl = is_http_ ? nullptr : worker_.cluster(tcp_upstream_);
    if (!cl || cl->config().endpoints_from.role == config::EndpointsFrom::Role::None) {
      return;
    }
    std::vector<tcp::TcpProxySession*> stale;
    for (auto& [raw, s] : tcp_sessions_) {
      const upstream::Host* h = raw->host();
      if (h == nullptr) {
        continue;
      }
      bool present = false;
      for (const auto& cur : cl->hosts()->hosts) {
        present = present || cur->address == h->address;
      }
      if (!present) {
        stale.push_back(raw);
      }
    }
    if (!stale.empty()) {
      LEVEE_LOG(Tcp, warn, "listener {}: closing {} session(s) to a member no longer routed", name_,
                stale.size());
    }
    for (tcp::TcpProxySession* s : stale) {
      s->close();  // erases itself from tcp_sessions_ (deferred delete)
    }
  }

  bool inbound() const { return inbound_; }

  // Stops accepting and lets the connections finish: idle ones close now, busy ones after
  // their current response (which carries Connection: close).
  void drain() {
    listener_.reset();
    std::vector<http::ConnectionManager*> conns;
    for (auto& [ptr, cm] : http_conns_) {
      conns.push_back(ptr);
    }
    for (auto* cm : conns) {
      cm->closeIfIdle();
    }
  }

  bool hasConnections() const { return !http_conns_.empty() || !tcp_sessions_.empty(); }

  // Removed from the policy by a reload.
  void retire() {
    retired_ = true;
    drain();
  }

  // ConnectionManagerConfig
  std::string_view listenerName() const override { return name_; }
  const http::http1::CodecLimits& codecLimits() const override { return limits_; }
  std::chrono::milliseconds headerTimeout() const override { return header_timeout_; }
  std::chrono::milliseconds idleTimeout() const override { return idle_timeout_; }
  bool trustForwarded() const override { return trust_forwarded_; }
  http::FilterChainFactory& filterChainFactory() override { return *this; }
  // Connection: close on the next response: the listener left the policy, or the process
  // drains and this listener is inbound (outbound ones serve normally until exit).
  bool draining() const override {
    return retired_ || (inbound_ && worker_.drainPhase() != Worker::DrainPhase::None);
  }
  void onLocalReply(std::string_view reason) override { worker_.countLocalReply(reason); }
  http::http1::ServerCodecPool& codecPool() override { return worker_.codecPool(); }

  void onStreamComplete(const http::StreamInfo& info, const http::RequestHead& head) override {
    auto end = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(end - info.start).count();
    auto* rs = static_cast<RouteStats*>(info.route_stats);
    if (rs == nullptr) {
      rs = noRouteStats();
    }
    rs->record(worker_.store(), head.method, info.status, secs);
    if (filters::degradation::DegradationState* deg = worker_.degradation();
        deg != nullptr && deg->recording() && info.reason != "degraded") {
      deg->recordResponse(info.status);
    }
    if (rs->sla != nullptr) {
      rs->sla->record(end, info.status, secs);
    }
    http::AccessLog* log = worker_.accessLog();
    if (log != nullptr && log->enabled()) {
      http::AccessLogEntry e;
      e.start = info.start_system;
      e.request_id = info.request_id;
      e.listener = name_;
      e.route = info.route_name;
      e.method = head.method;
      e.path = head.target;
      e.authority = head.headers.get("host");
      e.upstream = info.upstream_name;
      e.endpoint = info.endpoint;
      e.reason = info.reason;
      e.fallback = info.fallback;
      e.protocol = head.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
      e.downstream_peer = info.downstream_ip;
      e.status = info.status;
      e.duration_us = static_cast<uint64_t>(secs * 1e6);
      e.bytes_received = info.bytes_received;
      e.bytes_sent = info.bytes_sent;
      e.attempts = info.attempts;
      log->log(e);
    }
  }

  void onConnectionClosed(http::ConnectionManager& cm) override {
    auto it = http_conns_.find(&cm);
    if (it == http_conns_.end()) {
      return;
    }
    downstream_gauge_->sub(1);
    worker_.connectionClosed();
    worker_.dispatcher().deferredDelete(std::move(it->second));
    http_conns_.erase(it);
  }

  // FilterChainFactory
  void createFilterChain(http::FilterChainBuilder& out) override {
    // The route is matched once per stream, here; per-route filters come before the router.
    http::StreamInfo& info = out.streamInfo();
    const router::CompiledRoute* r = table_->match(out.requestHead());
    info.route_resolved = true;
    info.route = r;
    info.route_pin = table_;
    if (r != nullptr) {
      // Known before any filter runs, so local replies of per-route filters are attributed.
      info.route_name = r->route->name;
      info.upstream_name = r->route->upstream;
      info.route_stats = routeStats(*table_, *r);
      info.fallback_on = r->route->fallback.enabled ? r->route->fallback.on : 0;
    }
    // fault -> degradation -> rate_limit -> router (DESIGN section 2).
    if (r != nullptr) {
      if (auto fault = filters::fault::FaultFilter::create(*r->route, out.requestHead(), worker_.faults())) {
        out.addDecoderFilter(std::move(fault));
      }
    }
    // Degradation is only on the chain while a level is set.
    if (filters::degradation::DegradationState* deg = worker_.degradation()) {
      if (uint32_t level = deg->level(); level > 0) {
        out.addDecoderFilter(std::make_unique<filters::degradation::DegradationFilter>(
            level, table_->policy()->degradation, r != nullptr ? r->route : nullptr,
            r != nullptr && r->index < shed_.size() ? &shed_[r->index] : nullptr));
      }
    }
    if (r != nullptr && r->index < rate_limits_.size() && rate_limits_[r->index]) {
      out.addDecoderFilter(std::make_unique<filters::rate_limit::RateLimitFilter>(rate_limits_[r->index]));
    }
    out.addDecoderFilter(std::make_unique<router::RouterFilter>(*this));
  }

  // RouterContext
  router::RouteTableConstSharedPtr routeTable() override { return table_; }
  upstream::WorkerClusterSharedPtr cluster(const std::string& name) override { return worker_.cluster(name); }
  uint64_t random() override { return worker_.random(); }
  void* routeStats(const router::RouteTable& table, const router::CompiledRoute& route) override {
    if (&table == stats_table_ && route.index < route_stats_.size() && route_stats_[route.index] != nullptr) {
      return route_stats_[route.index];
    }
    std::string key = route.route->name + "|" + route.route->upstream;
    auto& slot = all_route_stats_[key];
    if (!slot) {
      slot = std::make_unique<RouteStats>();
      slot->listener = name_;
      slot->route = route.route->name;
      slot->upstream = route.route->upstream;
      slot->latency = &worker_.store().histogram(
          "levee_http_request_duration_seconds", "Request duration from first byte to last byte.",
          table.policy()->metrics.latency_buckets,
          {{"listener", name_}, {"route", slot->route}, {"upstream", slot->upstream}});
      if (worker_.sla() != nullptr) {
        slot->sla = &worker_.sla()->series(name_, slot->route, slot->upstream);
      }
    }
    if (&table == stats_table_) {
      if (route_stats_.size() <= route.index) {
        route_stats_.resize(route.index + 1, nullptr);
      }
      route_stats_[route.index] = slot.get();
    }
    return slot.get();
  }

private:
  RouteStats* noRouteStats() {
    auto& slot = all_route_stats_["|"];
    if (!slot) {
      slot = std::make_unique<RouteStats>();
      slot->listener = name_;
      slot->route = "none";
      slot->upstream = "none";
      const auto& buckets = worker_.snapshot()->policy->metrics.latency_buckets;
      slot->latency = &worker_.store().histogram(
          "levee_http_request_duration_seconds", "Request duration from first byte to last byte.", buckets,
          {{"listener", name_}, {"route", "none"}, {"upstream", "none"}});
    }
    return slot.get();
  }

  void onAccept(event::TcpSocketPtr socket) {
    if (retired_ || (inbound_ && worker_.drainPhase() == Worker::DrainPhase::StopAccepting)) {
      socket->close();
      return;
    }
    worker_.connectionOpened();
    downstream_gauge_->add(1);
    if (is_http_) {
      auto cm = std::make_unique<http::ConnectionManager>(worker_.dispatcher(), *this, std::move(socket));
      http::ConnectionManager* raw = cm.get();
      http_conns_.emplace(raw, std::move(cm));
      raw->start();
      return;
    }
    upstream::WorkerClusterSharedPtr cl = worker_.cluster(tcp_upstream_);
    if (!cl) {
      downstream_gauge_->sub(1);
      worker_.connectionClosed();
      socket->close();
      return;
    }
    auto session = std::make_unique<tcp::TcpProxySession>(
        worker_.dispatcher(), std::move(socket), cl, tcp_stats_, [this](tcp::TcpProxySession& s) {
          auto it = tcp_sessions_.find(&s);
          if (it == tcp_sessions_.end()) {
            return;
          }
          downstream_gauge_->sub(1);
          worker_.connectionClosed();
          worker_.dispatcher().deferredDelete(std::move(it->second));
          tcp_sessions_.erase(it);
        });
    tcp::TcpProxySession* raw = session.get();
    tcp_sessions_.emplace(raw, std::move(session));
    raw->start();
  }

  Worker& worker_;
  std::string key_;
  std::string name_;
  bool is_http_{true};
  bool inbound_{true};
  bool retired_{false};
  http::http1::CodecLimits limits_;
  std::chrono::milliseconds header_timeout_{10000};
  std::chrono::milliseconds idle_timeout_{300000};
  bool trust_forwarded_{false};
  router::RouteTableConstSharedPtr table_;
  std::string tcp_upstream_;
  event::TcpListenerPtr listener_;
  stats::Gauge* downstream_gauge_{nullptr};
  tcp::TcpProxyStats tcp_stats_;
  const router::RouteTable* stats_table_{nullptr};
  std::vector<RouteStats*> route_stats_;
  std::vector<filters::rate_limit::RateLimitStateSharedPtr> rate_limits_;  // by route index
  std::vector<filters::degradation::ShedCounters> shed_;                    // by route index
  std::unordered_map<std::string, std::unique_ptr<RouteStats>> all_route_stats_;
  std::unordered_map<http::ConnectionManager*, std::unique_ptr<http::ConnectionManager>> http_conns_;
  std::unordered_map<tcp::TcpProxySession*, std::unique_ptr<tcp::TcpProxySession>> tcp_sessions_;
};

// === impl Worker ===

Worker::Worker(uint32_t index, stats::Store& store, http::AccessLog* access_log, stats::SlaRegistry* sla,
               filters::degradation::DegradationState* degradation)
    : index_(index), store_(store), access_log_(access_log), sla_(sla), degradation_(degradation) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    stop();
    join();
  }
}

void Worker::start(SnapshotConstSharedPtr snapshot, HostSetsConstSharedPtr hosts, std::vector<ListenerFd> fds) {
  hosts_ = std::move(hosts);
  thread_ = std::thread([this, snapshot = std::move(snapshot), fds = std::move(fds)]() mutable {
    stats::setThreadSlot(index_);
    dispatcher_.bindToCurrentThread();
    applyOnThread(std::move(snapshot), std::move(fds));
    run();
  });
}

void Worker::run() {
  dispatcher_.run();
  // Leaving: close every connection and pool on this thread, then the loop.
  listeners_.clear();
  retired_listeners_.clear();
  clusters_.clear();
  dispatcher_.shutdown();
}

void Worker::applySnapshot(SnapshotConstSharedPtr snapshot, std::vector<ListenerFd> fds) {
  dispatcher_.post([this, snapshot = std::move(snapshot), fds = std::move(fds)]() mutable {
    applyOnThread(std::move(snapshot), std::move(fds));
  });
}

void Worker::applyOnThread(SnapshotConstSharedPtr snapshot, std::vector<ListenerFd> fds) {
  snapshot_ = std::move(snapshot);
  rebuildClusters();
  std::map<std::string, std::unique_ptr<WorkerListener>> next;
  const auto& ls = snapshot_->policy->listeners;
  for (size_t i = 0; i < ls.size(); ++i) {
    std::string key = listenerKey(ls[i]);
    auto it = listeners_.find(key);
    std::unique_ptr<WorkerListener> wl;
    if (it != listeners_.end()) {
      wl = std::move(it->second);
      listeners_.erase(it);
    } else {
      int fd = -1;
      for (auto& f : fds) {
        if (f.key == key) {
          fd = f.fd;
          f.fd = -1;
        }
      }
      if (fd < 0) {
        LEVEE_LOG(Main, err, "worker {}: no socket for listener {}", index_, ls[i].name);
        continue;
      }
      wl = std::make_unique<WorkerListener>(*this, key);
      wl->configure(snapshot_, i);
      if (!wl->listen(fd)) {
        continue;
      }
    }
    wl->configure(snapshot_, i);
    if (wl->inbound() && drain_phase_ == DrainPhase::StopAccepting) {
      wl->drain();  // added (or turned inbound) by a reload while draining
    }
    next.emplace(key, std::move(wl));
  }
  if (first_apply_) {
    first_apply_ = false;
    // Readiness needs every listener of the first policy accepting on every worker.
    listening_.store(next.size() == ls.size(), std::memory_order_release);
  }
  for (auto& f : fds) {
    if (f.fd >= 0) {
      ::close(f.fd);
    }
  }
  // Listeners retired by earlier reloads whose connections are all gone are freed (deferred:
  // a connection closed in this loop iteration may still be waiting for its own deletion).
  std::erase_if(retired_listeners_, [this](std::unique_ptr<WorkerListener>& wl) {
    if (wl->hasConnections()) {
      return false;
    }
    dispatcher_.deferredDeleteAny(std::move(wl));
    return true;
  });
  // Listeners gone from the policy: stop accepting, let their connections finish.
  for (auto& [key, wl] : listeners_) {
    LEVEE_LOG(Main, debug, "worker {}: listener {} closed by reload", index_, key);
    wl->retire();
    retired_listeners_.push_back(std::move(wl));
  }
  listeners_ = std::move(next);
}

void Worker::rebuildClusters() {
  std::map<std::string, upstream::WorkerClusterSharedPtr, std::less<>> next;
  for (const auto& [name, up] : snapshot_->policy->upstreams) {
    auto it = clusters_.find(name);
    auto sh = snapshot_->upstreams.find(name);
    upstream::UpstreamSharedPtr shared = sh == snapshot_->upstreams.end() ? nullptr : sh->second;
    if (it != clusters_.end() && it->second->config() == up && &it->second->shared() == shared.get()) {
      next.emplace(name, it->second);
      continue;
    }
    upstream::HostHealthSharedPtr hs;
    if (hosts_) {
      auto h = hosts_->find(name);
      if (h != hosts_->end()) {
        hs = h->second;
      }
    }
    upstream::ClusterStats cs;
    cs.connections = &store_.gauge("levee_upstream_connections", "Open upstream connections.", {{"upstream", name}});
    cs.overflow = &store_.counter("levee_upstream_overflow_total",
                                  "Requests refused because the upstream's pool limits were reached.",
                                  {{"upstream", name}});
    cs.connect_failures = &store_.counter("levee_upstream_connect_failures_total",
                                          "Failed upstream connection attempts.", {{"upstream", name}});
    next.emplace(name, std::make_shared<upstream::WorkerCluster>(dispatcher_, up, hs, shared, cs));
    if (it != clusters_.end()) {
      it->second->drain();  // replaced: in-flight requests keep their shared_ptr
    }
  }
  clusters_ = std::move(next);
}

void Worker::updateHosts(HostSetsConstSharedPtr hosts) {
  dispatcher_.post([this, hosts = std::move(hosts)]() mutable {
    hosts_ = std::move(hosts);
    for (auto& [name, cl] : clusters_) {
      auto h = hosts_->find(name);
      if (h != hosts_->end() && h->second != cl->health()) {
        cl->updateHosts(h->second);
      }
    }
    for (auto& [key, wl] : listeners_) {
      wl->closeSessionsToRemovedHosts();
    }
  });
}

upstream::WorkerClusterSharedPtr Worker::cluster(const std::string& name) {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void Worker::countLocalReply(std::string_view reason) {
  auto it = local_replies_.find(reason);
  if (it == local_replies_.end()) {
    stats::Counter& c = store_.counter("levee_local_replies_total", "Responses generated by levee, by reason.",
                                       {{"reason", std::string(reason)}});
    it = local_replies_.emplace(reason, &c).first;
  }
  it->second->inc();
}

void Worker::drain(DrainPhase phase) {
  dispatcher_.post([this, phase] {
    if (phase <= drain_phase_) {
      return;
    }
    drain_phase_ = phase;
    if (phase != DrainPhase::StopAccepting) {
      return;
    }
    for (auto& [key, wl] : listeners_) {
      if (wl->inbound()) {
        wl->drain();
      }
    }
    // Upstream pools stay as they are: outbound listeners still use them, and inbound
    // requests in flight finish on them; everything closes at exit.
  });
}

void Worker::stop() { dispatcher_.exit(); }

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace levee::server
