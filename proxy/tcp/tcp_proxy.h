#pragma once
// L4 proxy session: one downstream connection piped to one upstream connection, both ways,
// with backpressure, half-close passed through, connect and idle timeouts, byte counters.

#include <memory>

#include "proxy/event/dispatcher.h"
#include "proxy/event/tcp_socket.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/conn_pool.h"

namespace levee::tcp {

struct TcpProxyStats {
  stats::Counter* rx{nullptr};  // bytes from downstream
  stats::Counter* tx{nullptr};  // bytes to downstream
  stats::Gauge* connections{nullptr};
  stats::Counter* connect_failures{nullptr};
};

class TcpProxySession final : public event::DeferredDeletable {
public:
  using DoneCb = std::function<void(TcpProxySession&)>;
  TcpProxySession(event::Dispatcher& dispatcher, event::TcpSocketPtr downstream,
                  upstream::WorkerClusterSharedPtr cluster, TcpProxyStats stats, DoneCb done);
  ~TcpProxySession() override;
  void start();
  void close();
  bool closed() const { return closed_; }
  // The upstream host this session connects to (nullptr before start() chose one).
  const upstream::Host* host() const { return host_.get(); }

private:
  // One direction of the pipe: reads from `from`, writes to `to`.
  class Side final : public event::TcpSocketCallbacks {
  public:
    Side(TcpProxySession& s, bool downstream) : session_(s), downstream_(downstream) {}
    void onData(const char* data, size_t len) override;
    void onEof() override;
    void onError(int err) override;
    void onWriteDrained() override;
    void onConnected() override;

  private:
    TcpProxySession& session_;
    bool downstream_;
  };
  event::TcpSocket& peerOf(bool downstream) { return downstream ? *upstream_ : *downstream_; }
  void onConnectTimeout();
  void touch();

  event::Dispatcher& dispatcher_;
  event::TcpSocketPtr downstream_;
  event::TcpSocketPtr upstream_;
  upstream::WorkerClusterSharedPtr cluster_;
  upstream::HostConstSharedPtr host_;
  TcpProxyStats stats_;
  DoneCb done_;
  Side down_side_{*this, true};
  Side up_side_{*this, false};
  event::TimerPtr timer_;  // connect timeout, then idle timeout
  bool connected_{false};
  bool down_eof_{false};
  bool up_eof_{false};
  bool closed_{false};
  uint64_t last_activity_ms_{0};
};

}  // namespace levee::tcp
