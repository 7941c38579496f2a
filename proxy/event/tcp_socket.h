#pragma once
// A TCP stream on one loop: reads delivered as borrowed slices, writes that try the socket
// first (uv_try_write) and queue the rest, half-close, outbound connect, and a listener.
// The uv handle lives in a heap block freed by close_cb (STYLE B.4), so destroying a
// TcpSocket at any time is safe; after close() no callback fires.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/event/dispatcher.h"

namespace levee::event {

struct TcpHandle;

class TcpSocketCallbacks {
public:
  virtual ~TcpSocketCallbacks() = default;
  // `data` is valid only during the call (a per-loop read buffer).
  virtual void onData(const char* data, size_t len) = 0;
  // The peer shut down its write side (EOF). The socket stays open for writing.
  virtual void onEof() = 0;
  // Read/write/connect error (e.g. ECONNRESET). `err` is a libuv error code.
  virtual void onError(int err) = 0;
  // The write queue dropped to or below the low watermark after being above the high one.
  virtual void onWriteDrained() {}
  // Outbound connect finished successfully (errors go to onError).
  virtual void onConnected() {}
};

struct Slice {
  const char* data;
  size_t len;
};

class TcpSocket {
public:
  static constexpr size_t kHighWatermark = 1024 * 1024;
  static constexpr size_t kLowWatermark = 256 * 1024;
  static constexpr size_t kKeepBufferBytes = 64 * 1024;

  // Creates an unconnected socket (for connect()).
  explicit TcpSocket(Dispatcher& dispatcher);
  ~TcpSocket();
  TcpSocket(const TcpSocket&) = delete;
  TcpSocket& operator=(const TcpSocket&) = delete;

  void setCallbacks(TcpSocketCallbacks* cb) { callbacks_ = cb; }
  // Starts an outbound connect; result via onConnected/onError. Returns a libuv error code.
  int connect(const sockaddr* addr);
  void readStart();
  void readStop();
  bool reading() const { return reading_; }
  // Queues bytes; writes as much as possible right away. No-op once closed.
  void write(const char* data, size_t len) { Slice s{data, len}; writev(&s, 1); }
  void write(std::string_view s) { write(s.data(), s.size()); }
  void writev(const Slice* slices, size_t n);
  size_t writeQueueBytes() const;
  bool aboveHighWatermark() const { return writeQueueBytes() > kHighWatermark; }
  // Half-close: FIN after the queued bytes are written.
  void shutdownWrite();
  // Close now (queued bytes are dropped). With `reset`, send RST (SO_LINGER 0).
  void close(bool reset = false);
  // Close after queued bytes are flushed (graceful), then no more callbacks.
  void closeAfterFlush();
  // Hands queued bytes to the kernel (called by the dispatcher once per loop iteration).
  void flush();
  // Frees the write buffer if nothing is queued (a keep-alive connection going idle).
  void releaseIdleBuffers();
  bool isOpen() const { return handle_ != nullptr; }
  // "1.2.3.4" (no port); empty when unknown.
  std::string peerIp() const;
  void setNoDelay();

private:
  friend class TcpListener;
  friend class Dispatcher;
  friend struct TcpHandleOps;
  TcpSocket(Dispatcher& dispatcher, TcpHandle* accepted);
  void startWrite();
  void afterWriteProgress();
  void sendShutdown();
  void onWriteDone(int status);
  // Write errors found inside write() are reported from the loop, never on the caller's stack.
  void reportErrorLater(int err);

  Dispatcher& dispatcher_;
  TcpHandle* handle_;
  TcpSocketCallbacks* callbacks_{nullptr};
  std::string queued_;  // bytes not yet handed to the kernel
  size_t inflight_bytes_{0};  // bytes of the uv_write in flight
  bool reading_{false};
  bool writing_{false};
  bool shutdown_requested_{false};
  bool shutdown_sent_{false};
  bool close_after_flush_{false};
  bool was_above_high_{false};
  bool error_reported_{false};
  bool in_flush_list_{false};  // owned by the Dispatcher: set while on its flush list
  bool release_when_flushed_{false};
  std::shared_ptr<char> alive_;  // created on first deferred error; weak refs see destruction
};
using TcpSocketPtr = std::unique_ptr<TcpSocket>;

// Accepts connections on an already bound and listening fd (see network::createListenFd).
class TcpListener {
public:
  using AcceptCb = std::function<void(TcpSocketPtr)>;
  // Takes ownership of `fd`. Returns nullptr and logs on failure.
  static std::unique_ptr<TcpListener> create(Dispatcher& dispatcher, int fd, AcceptCb cb,
                                             std::string* error);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

private:
  TcpListener(Dispatcher& dispatcher, AcceptCb cb);
  struct Impl;
  Dispatcher& dispatcher_;
  AcceptCb cb_;
  void* handle_{nullptr};
  static void onConnection(void* server, int status) noexcept;
};
using TcpListenerPtr = std::unique_ptr<TcpListener>;

}  // namespace levee::event
