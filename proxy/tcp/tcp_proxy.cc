#include "proxy/tcp/tcp_proxy.h"

#include <uv.h>  // uv_err_name only

#include "proxy/common/logger.h"

namespace levee::tcp {

TcpProxySession::TcpProxySession(event::Dispatcher& dispatcher, event::TcpSocketPtr downstream,
                                 upstream::WorkerClusterSharedPtr cluster, TcpProxyStats stats,
                                 DoneCb done)
    : dispatcher_(dispatcher), downstream_(std::move(downstream)), cluster_(std::move(cluster)),
      stats_(stats), done_(std::move(done)) {}

TcpProxySession::~TcpProxySession() {
  timer_.reset();
  if (upstream_) {
    upstream_->close();
  }
  if (downstream_) {
    downstream_->close();
  }
}

void TcpProxySession::start() {
  if (stats_.connections != nullptr) {
    stats_.connections->add(1);
  }
  timer_ = dispatcher_.createTimer([this] {
    if (!connected_) {
      onConnectTimeout();
      return;
    }
    // Idle check: re-arm for the remaining time if there was activity meanwhile.
    uint64_t idle = static_cast<uint64_t>(cluster_->config().idle_timeout.count());
    uint64_t since = dispatcher_.nowMs() - last_activity_ms_;
    if (since >= idle) {
      LEVEE_LOG(Tcp, debug, "tcp session idle for {} ms: closing", since);
      close();
    } else {
      timer_->enable(std::chrono::milliseconds(idle - since));
    }
  });
  downstream_->setCallbacks(&down_side_);
  upstream::HostConstSharedPtr host = cluster_->chooseHost();
  host_ = host;
  if (!host) {
    LEVEE_LOG(Tcp, debug, "tcp upstream {}: no endpoint", cluster_->name());
    close();
    return;
  }
  upstream_ = std::make_unique<event::TcpSocket>(dispatcher_);
  upstream_->setCallbacks(&up_side_);
  int rc = upstream_->connect(reinterpret_cast<const sockaddr*>(&host->addr));
  if (rc != 0) {
    close();
    return;
  }
  timer_->enable(cluster_->config().connect_timeout);
}

void TcpProxySession::onConnectTimeout() {
  if (stats_.connect_failures != nullptr) {
    stats_.connect_failures->inc();
  }
  LEVEE_LOG(Tcp, debug, "tcp upstream {}: connect timeout", cluster_->name());
  close();
}

void TcpProxySession::touch() { last_activity_ms_ = dispatcher_.nowMs(); }

void TcpProxySession::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (timer_) {
    timer_->disable();
  }
  // Flush what the peer already sent us before closing each side.
  if (downstream_) {
    downstream_->closeAfterFlush();
  }
  if (upstream_) {
    upstream_->closeAfterFlush();
  }
  if (stats_.connections != nullptr) {
    stats_.connections->sub(1);
  }
  done_(*this);
}

void TcpProxySession::Side::onConnected() {
  TcpProxySession& s = session_;
  s.connected_ = true;
  s.touch();
  uint64_t idle = static_cast<uint64_t>(s.cluster_->config().idle_timeout.count());
  if (idle > 0) {
    s.timer_->enable(std::chrono::milliseconds(idle));
  } else {
    s.timer_->disable();
  }
  s.upstream_->readStart();
  s.downstream_->readStart();
}

void TcpProxySession::Side::onData(const char* data, size_t len) {
  TcpProxySession& s = session_;
  if (s.closed_) {
    return;
  }
  s.touch();
  event::TcpSocket& to = s.peerOf(downstream_);
  event::TcpSocket& from = downstream_ ? *s.downstream_ : *s.upstream_;
  stats::Counter* c = downstream_ ? s.stats_.rx : s.stats_.tx;
  if (c != nullptr) {
    c->inc(len);
  }
  to.write(data, len);
  if (to.aboveHighWatermark()) {
    from.readStop();  // resumed by the peer's onWriteDrained
  }
}

void TcpProxySession::Side::onWriteDrained() {
  TcpProxySession& s = session_;
  if (s.closed_) {
    return;
  }
  // Our write queue drained: resume reading the other side.
  event::TcpSocket& other = downstream_ ? *s.upstream_ : *s.downstream_;
  bool other_eof = downstream_ ? s.up_eof_ : s.down_eof_;
  if (!other_eof) {
    other.readStart();
  }
}

void TcpProxySession::Side::onEof() {
  TcpProxySession& s = session_;
  if (downstream_) {
    s.down_eof_ = true;
  } else {
    s.up_eof_ = true;
  }
  // Half-close passes through: FIN to the peer after its queued bytes.
  s.peerOf(downstream_).shutdownWrite();
  if (s.down_eof_ && s.up_eof_) {
    s.close();
  }
}

void TcpProxySession::Side::onError(int err) {
  TcpProxySession& s = session_;
  if (!downstream_ && !s.connected_ && s.stats_.connect_failures != nullptr) {
    s.stats_.connect_failures->inc();
  }
  LEVEE_LOG(Tcp, debug, "tcp {} side error: {}", downstream_ ? "downstream" : "upstream", uv_err_name(err));
  s.close();
}

}  // namespace levee::tcp
