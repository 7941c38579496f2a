#pragma once
// The downstream HTTP/1.1 session: owns the client socket and the codec, runs one stream (a
// filter chain) per request, in order, and encodes responses back. Pipelined requests wait
// (unparsed) until the stream before them has finished. See proxy/http/README.md.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "proxy/api/http/filter.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/tcp_socket.h"
#include "proxy/http/http1/codec.h"
#include "proxy/http/http1/codec_pool.h"
#include "proxy/http/stream_info.h"

namespace levee::http {

// What a connection manager needs from its listener on this worker.
class ConnectionManagerConfig {
public:
  virtual ~ConnectionManagerConfig() = default;
  virtual std::string_view listenerName() const = 0;
  virtual const http1::CodecLimits& codecLimits() const = 0;
  virtual std::chrono::milliseconds headerTimeout() const = 0;
  virtual std::chrono::milliseconds idleTimeout() const = 0;
  virtual bool trustForwarded() const = 0;
  virtual FilterChainFactory& filterChainFactory() = 0;
  // Draining: responses carry Connection: close and idle connections are closed.
  virtual bool draining() const = 0;
  // Called once per finished stream (metrics + access log).
  virtual void onStreamComplete(const StreamInfo& info, const RequestHead& head) = 0;
  // Counted by reason (levee_local_replies_total).
  virtual void onLocalReply(std::string_view reason) = 0;
  virtual void onConnectionClosed(class ConnectionManager& cm) = 0;
  // The worker's codec pool (codecs are held only while a request is in progress).
  virtual http1::ServerCodecPool& codecPool() = 0;
};

class ActiveStream;

class ConnectionManager final : public event::TcpSocketCallbacks,
                                public http1::ServerCodecCallbacks,
                                public event::DeferredDeletable {
public:
  ConnectionManager(event::Dispatcher& dispatcher, ConnectionManagerConfig& config,
                    event::TcpSocketPtr socket);
  ~ConnectionManager() override;

  void start();
  // Drain: close now if idle, else after the current response.
  void closeIfIdle();
  // Immediate close (shutdown deadline).
  void closeNow();
  bool closed() const { return closed_; }

  // TcpSocketCallbacks
  void onData(const char* data, size_t len) override;
  void onEof() override;
  void onError(int err) override;
  void onWriteDrained() override;

  // ServerCodecCallbacks
  void onRequestHead(RequestHead& head, bool end_stream) override;
  void onRequestBody(const char* data, size_t len) override;
  void onRequestBodyEnd() override;
  void onCodecError(const http1::CodecError& error) override;

private:
  friend class ActiveStream;
  void processInput(const char* data, size_t len);
  void onStreamDone(bool close_connection);
  void onTimer();
  void onHeaderTimeout();
  void onIdleTimeout();
  void onResumeInput();
  enum class TimerMode { None, Header, Idle, Resume };
  void arm(TimerMode mode);
  http1::ServerCodec& codec();
  bool inMessage() const { return codec_ != nullptr && codec_->inMessage(); }
  void releaseCodecIfIdle();
  void close();
  // Writes a complete local response when no stream owns the connection (codec errors).
  void writeLocalReply(int status, std::string_view reason, std::string_view request_id, bool close);

  event::Dispatcher& dispatcher_;
  ConnectionManagerConfig& config_;
  event::TcpSocketPtr socket_;
  std::unique_ptr<http1::ServerCodec> codec_;  // from the pool while a request is active
  std::unique_ptr<ActiveStream> stream_;
  std::string pending_input_;   // unparsed bytes (pipelined requests) while a stream is active
  std::string peer_ip_;
  event::TimerPtr timer_;  // one timer: header timeout, idle timeout or deferred resume
  TimerMode timer_mode_{TimerMode::None};
  uint32_t read_disable_count_{0};
  bool closed_{false};
  bool close_after_stream_{false};
  bool tunnel_{false};
  bool saw_request_bytes_{false};
};

}  // namespace levee::http
