#include "proxy/event/tcp_socket.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <uv.h>

#include <array>

#include "proxy/common/assert.h"

namespace levee::event {

// The libuv side of a socket: freed only in close_cb, after libuv completed (or cancelled)
// every request embedded here, so the in-flight write buffer lives exactly as long as needed.
// Requests (write, shutdown, connect) are allocated only while in flight and free themselves
// in their callbacks, which libuv runs (with UV_ECANCELED if closing) before close_cb: an idle
// connection costs just the uv_tcp_t.
struct TcpHandle {
  uv_tcp_t tcp;
  TcpSocket* owner{nullptr};
};

struct WriteReq {
  uv_write_t req;
  std::string buf;
  TcpHandle* th;
};

namespace {

thread_local std::array<char, 64 * 1024> t_read_buffer;

void onAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = t_read_buffer.data();
  buf->len = t_read_buffer.size();
}

TcpHandle* handleOf(uv_handle_t* h) { return static_cast<TcpHandle*>(h->data); }

void closeHandle(TcpHandle* th) {
  th->owner = nullptr;
  auto* h = reinterpret_cast<uv_handle_t*>(&th->tcp);
  if (!uv_is_closing(h)) {
    uv_close(h, [](uv_handle_t* closed) { delete handleOf(closed); });
  }
}

}  // namespace

struct TcpHandleOps {
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    TcpSocket* self = handleOf(reinterpret_cast<uv_handle_t*>(stream))->owner;
    if (self == nullptr || self->callbacks_ == nullptr) {
      return;
    }
    if (nread > 0) {
      self->callbacks_->onData(buf->base, static_cast<size_t>(nread));
    } else if (nread == UV_EOF) {
      self->readStop();
      self->callbacks_->onEof();
    } else if (nread < 0) {
      self->readStop();
      self->callbacks_->onError(static_cast<int>(nread));
    }
  }
  static void onWrite(uv_write_t* req, int status) noexcept {
    std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));  // adopt back from libuv
    TcpSocket* self = w->th->owner;
    if (self != nullptr) {
      self->inflight_bytes_ = 0;
      self->onWriteDone(status);
    }
  }
  static void onShutdown(uv_shutdown_t* req, int) noexcept {
    std::unique_ptr<uv_shutdown_t> owned(req);  // nothing else to do: the FIN is sent
  }
  static void onConnect(uv_connect_t* req, int status) noexcept {
    std::unique_ptr<uv_connect_t> owned(req);
    auto* th = static_cast<TcpHandle*>(req->data);
    TcpSocket* self = th->owner;
    if (self == nullptr || self->callbacks_ == nullptr) {
      return;
    }
    if (status == 0) {
      self->callbacks_->onConnected();
    } else {
      self->callbacks_->onError(status);
    }
  }
};

// === impl TcpSocket ===

TcpSocket::TcpSocket(Dispatcher& dispatcher) : dispatcher_(dispatcher), handle_(new TcpHandle) {
  uv_tcp_init(dispatcher.loop(), &handle_->tcp);
  handle_->tcp.data = handle_;
  handle_->owner = this;
}

TcpSocket::TcpSocket(Dispatcher& dispatcher, TcpHandle* accepted)
    : dispatcher_(dispatcher), handle_(accepted) {
  handle_->owner = this;
}

TcpSocket::~TcpSocket() {
  close();
  alive_.reset();
}

int TcpSocket::connect(const sockaddr* addr) {
  if (handle_ == nullptr) {
    return UV_EBADF;
  }
  auto* req = new uv_connect_t;
  req->data = handle_;
  int rc = uv_tcp_connect(req, &handle_->tcp, addr, &TcpHandleOps::onConnect);
  if (rc == 0) {
    setNoDelay();
  } else {
    delete req;
  }
  return rc;
}

void TcpSocket::setNoDelay() {
  if (handle_ != nullptr) {
    uv_tcp_nodelay(&handle_->tcp, 1);
  }
}

void TcpSocket::readStart() {
  if (handle_ == nullptr || reading_) {
    return;
  }
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_->tcp), onAlloc,
                    &TcpHandleOps::onRead) == 0) {
    reading_ = true;
  }
}

void TcpSocket::readStop() {
  if (handle_ == nullptr || !reading_) {
    return;
  }
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&handle_->tcp));
  reading_ = false;
}

size_t TcpSocket::writeQueueBytes() const {
  if (handle_ == nullptr) {
    return 0;
  }
  return inflight_bytes_ + queued_.size();
}

void TcpSocket::writev(const Slice* slices, size_t n) {
  if (handle_ == nullptr || shutdown_requested_ || error_reported_) {
    return;
  }
  // Queue only; the dispatcher flushes once per loop iteration (see Dispatcher::scheduleFlush).
  release_when_flushed_ = false;
  for (size_t i = 0; i < n; ++i) {
    queued_.append(slices[i].data, slices[i].len);
  }
  if (!in_flush_list_ && !writing_ && !queued_.empty()) {
    dispatcher_.scheduleFlush(this);
  }
  if (aboveHighWatermark()) {
    was_above_high_ = true;
  }
}

void TcpSocket::flush() {
  if (handle_ == nullptr || writing_ || queued_.empty()) {
    return;
  }
  uv_buf_t buf = uv_buf_init(queued_.data(), static_cast<unsigned>(queued_.size()));
  int rc = uv_try_write(reinterpret_cast<uv_stream_t*>(&handle_->tcp), &buf, 1);
  if (rc < 0 && rc != UV_EAGAIN) {
    reportErrorLater(rc);
    return;
  }
  size_t written = rc > 0 ? static_cast<size_t>(rc) : 0;
  if (written == queued_.size()) {
    queued_.clear();
    if (queued_.capacity() > kKeepBufferBytes || release_when_flushed_) {
      std::string().swap(queued_);  // idle keep-alive connections hold no buffer
      release_when_flushed_ = false;
    }
    afterWriteProgress();
    return;
  }
  queued_.erase(0, written);
  startWrite();
}

void TcpSocket::releaseIdleBuffers() {
  if (handle_ != nullptr && !writing_ && queued_.empty()) {
    std::string().swap(queued_);
  } else {
    release_when_flushed_ = true;  // the last response is still queued
  }
}

void TcpSocket::afterWriteProgress() {
  if (was_above_high_ && writeQueueBytes() <= kLowWatermark) {
    was_above_high_ = false;
    if (callbacks_ != nullptr) {
      callbacks_->onWriteDrained();
      if (handle_ == nullptr) {
        return;
      }
    }
  }
  if (!writing_ && queued_.empty()) {
    if (close_after_flush_) {
      close();
    } else if (shutdown_requested_ && !shutdown_sent_) {
      sendShutdown();
    }
  }
}

void TcpSocket::sendShutdown() {
  shutdown_sent_ = true;
  auto* req = new uv_shutdown_t;
  req->data = handle_;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&handle_->tcp), &TcpHandleOps::onShutdown) != 0) {
    delete req;
  }
}

void TcpSocket::startWrite() {
  auto w = std::make_unique<WriteReq>();
  w->th = handle_;
  w->buf.swap(queued_);
  w->req.data = w.get();
  uv_buf_t buf = uv_buf_init(w->buf.data(), static_cast<unsigned>(w->buf.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&handle_->tcp), &buf, 1,
                    &TcpHandleOps::onWrite);
  if (rc != 0) {
    reportErrorLater(rc);
    return;
  }
  inflight_bytes_ = w->buf.size();
  w.release();  // owned by libuv until onWrite
  writing_ = true;
}

void TcpSocket::onWriteDone(int status) {
  writing_ = false;
  if (status != 0) {
    queued_.clear();
    if (callbacks_ != nullptr) {
      callbacks_->onError(status);
    }
    return;
  }
  if (!queued_.empty()) {
    // More was queued meanwhile: hand it over now (we are in the I/O phase already).
    flush();
    return;
  }
  afterWriteProgress();
}

void TcpSocket::reportErrorLater(int err) {
  if (error_reported_) {
    return;
  }
  error_reported_ = true;
  queued_.clear();
  if (!alive_) {
    alive_ = std::make_shared<char>(0);
  }
  std::weak_ptr<char> alive = alive_;
  dispatcher_.post([this, alive, err] {
    if (alive.expired() || callbacks_ == nullptr) {
      return;
    }
    callbacks_->onError(err);
  });
}

void TcpSocket::shutdownWrite() {
  if (handle_ == nullptr || shutdown_requested_) {
    return;
  }
  flush();
  shutdown_requested_ = true;
  if (handle_ != nullptr && !writing_ && queued_.empty()) {
    sendShutdown();
  }
}

void TcpSocket::closeAfterFlush() {
  if (handle_ == nullptr) {
    return;
  }
  readStop();
  flush();
  if (handle_ == nullptr) {
    return;
  }
  if (!writing_ && queued_.empty()) {
    close();
    return;
  }
  close_after_flush_ = true;
  callbacks_ = nullptr;
}

void TcpSocket::close(bool reset) {
  if (handle_ == nullptr) {
    return;
  }
  if (in_flush_list_) {
    dispatcher_.cancelFlush(this);  // never flushed after this point, even mid-iteration
  }
  callbacks_ = nullptr;
  if (reset) {
    uv_tcp_close_reset(&handle_->tcp, [](uv_handle_t* closed) { delete handleOf(closed); });
    handle_->owner = nullptr;
  } else {
    closeHandle(handle_);
  }
  handle_ = nullptr;
  queued_.clear();
}

std::string TcpSocket::peerIp() const {
  if (handle_ == nullptr) {
    return {};
  }
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&handle_->tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return {};
  }
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<sockaddr_in*>(&ss), buf, sizeof(buf));
  } else if (ss.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&ss), buf, sizeof(buf));
  }
  return buf;
}

// === impl TcpListener ===

TcpListener::TcpListener(Dispatcher& dispatcher, AcceptCb cb)
    : dispatcher_(dispatcher), cb_(std::move(cb)) {}

std::unique_ptr<TcpListener> TcpListener::create(Dispatcher& dispatcher, int fd, AcceptCb cb,
                                                 std::string* error) {
  std::unique_ptr<TcpListener> l(new TcpListener(dispatcher, std::move(cb)));
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(dispatcher.loop(), tcp);
  tcp->data = l.get();
  l->handle_ = tcp;
  int rc = uv_tcp_open(tcp, fd);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), 4096, [](uv_stream_t* s, int status) {
      onConnection(s, status);
    });
  }
  if (rc != 0) {
    if (error != nullptr) {
      *error = std::string("listen: ") + uv_strerror(rc);
    }
    return nullptr;
  }
  return l;
}

TcpListener::~TcpListener() {
  auto* tcp = static_cast<uv_tcp_t*>(handle_);
  if (tcp != nullptr) {
    tcp->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
}

void TcpListener::onConnection(void* server, int status) noexcept {
  auto* stream = static_cast<uv_stream_t*>(server);
  auto* self = static_cast<TcpListener*>(stream->data);
  if (self == nullptr || status != 0) {
    return;
  }
  auto* th = new TcpHandle;
  uv_tcp_init(self->dispatcher_.loop(), &th->tcp);
  th->tcp.data = th;
  if (uv_accept(stream, reinterpret_cast<uv_stream_t*>(&th->tcp)) != 0) {
    closeHandle(th);
    return;
  }
  uv_tcp_nodelay(&th->tcp, 1);
  self->cb_(TcpSocketPtr(new TcpSocket(self->dispatcher_, th)));
}

}  // namespace levee::event
