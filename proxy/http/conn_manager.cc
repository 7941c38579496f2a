#include "proxy/http/conn_manager.h"

#include <uv.h>  // error names only (uv_err_name); all I/O goes through proxy/event

#include "proxy/common/logger.h"
#include "proxy/common/thread_cached.h"
#include "proxy/http/http1/encoder.h"
#include "proxy/http/local_reply.h"
#include "proxy/http/request_id.h"

namespace levee::http {

// One request/response exchange and its filter chain.
// Its memory is recycled per thread (common::ThreadCached): one stream per request.
class ActiveStream final : public DecoderFilterCallbacks,
                           public FilterChainBuilder,
                           public common::ThreadCached<ActiveStream> {
public:
  ActiveStream(ConnectionManager& cm, RequestHead& head) : cm_(cm), head_(head) {
    filters_.reserve(4);  // one allocation for a typical chain (filters + router), not one per growth
    info_.start = std::chrono::steady_clock::now();
    info_.start_system = std::chrono::system_clock::now();
  }
  ~ActiveStream() override { destroyFilters(); }

  void destroyFilters() {
    if (!filters_destroyed_) {
      filters_destroyed_ = true;
      for (auto& f : filters_) {
        f->onDestroy();
      }
    }
  }

  // FilterChainBuilder
  void addDecoderFilter(DecoderFilterPtr filter) override {
    filter->setDecoderCallbacks(*this);
    filters_.push_back(std::move(filter));
  }

  void decodeHeaders(bool end_stream) {
    request_complete_ = end_stream;
    head_end_stream_ = end_stream;
    iterateHeaders(0);
  }

  void iterateHeaders(size_t from) {
    for (size_t i = from; i < filters_.size(); ++i) {
      if (done_) {
        return;
      }
      if (filters_[i]->decodeHeaders(head_, head_end_stream_) == FilterHeadersStatus::StopIteration) {
        stopped_at_ = i;
        return;
      }
    }
    stopped_at_ = SIZE_MAX;
  }

  void decodeData(const char* data, size_t len, bool end_stream) {
    info_.bytes_received += len;
    if (end_stream) {
      request_complete_ = true;
    }
    if (done_ || filters_destroyed_) {
      return;
    }
    // Filters after one still stopped in decodeHeaders (a fault delay) have not seen the head
    // yet: the body is held for them until iteration resumes.
    const size_t last = stopped_at_ == SIZE_MAX ? filters_.size() : stopped_at_ + 1;
    if (deliverData(0, last, data, len, end_stream) && last < filters_.size() && !done_) {
      held_body_.append(data, len);
      held_end_ = held_end_ || end_stream;
      if (held_body_.size() > kMaxHeldBody && !held_read_disabled_) {
        held_read_disabled_ = true;
        readDisable(true);
      }
    }
  }

  // Filters [from, to) see the data in order; false when one of them consumed it.
  bool deliverData(size_t from, size_t to, const char* data, size_t len, bool end_stream) {
    for (size_t i = from; i < to && !done_; ++i) {
      if (filters_[i]->decodeData(data, len, end_stream) == FilterDataStatus::StopIterationNoBuffer) {
        return false;
      }
    }
    return !done_;
  }

  // After iteration resumed at `from`: the held body goes to the filters that now saw the head.
  void flushHeld(size_t from) {
    if (done_ || (held_body_.empty() && !held_end_)) {
      return;
    }
    const size_t last = stopped_at_ == SIZE_MAX ? filters_.size() : stopped_at_ + 1;
    std::string body = std::move(held_body_);
    held_body_.clear();
    const bool end = held_end_;
    held_end_ = false;
    if (deliverData(from, last, body.data(), body.size(), end) && last < filters_.size()) {
      held_body_ = std::move(body);  // still held for filters behind another stop
      held_end_ = end;
      return;
    }
    if (held_read_disabled_ && !done_) {
      held_read_disabled_ = false;
      readDisable(false);
    }
  }

  void decodeTunnelEof() {
    for (auto& f : filters_) {
      f->decodeTunnelEof();
    }
  }

  void onWatermark(bool above) {
    for (auto& f : filters_) {
      f->onDownstreamWatermark(above);
    }
  }

  // DecoderFilterCallbacks
  event::Dispatcher& dispatcher() override { return cm_.dispatcher_; }
  const RequestHead& requestHead() const override { return head_; }
  StreamInfo& streamInfo() override { return info_; }
  void continueDecoding() override {
    if (stopped_at_ != SIZE_MAX) {
      const size_t from = stopped_at_ + 1;
      iterateHeaders(from);
      flushHeld(from);
    }
  }

  void sendLocalReply(int status, std::string_view reason, std::string_view detail,
                      uint32_t retry_after_s = 0, std::string_view extra_headers = {}) override {
    if (response_started_) {
      resetStream();
      return;
    }
    LEVEE_LOG(Http, debug, "local reply {} {} ({}) for {} {}", status, reason, detail, head_.method,
              head_.target);
    info_.reason = reason;
    info_.status = status;
    cm_.config_.onLocalReply(reason);
    // Close after an error reply if the request body is still arriving (it would be parsed
    // as the next request otherwise), or when draining.
    bool close = !request_complete_ || !head_.keep_alive || cm_.config_.draining();
    std::string out;
    buildLocalReply(out, status, reason, info_.request_id, close, head_.method == "HEAD", retry_after_s,
                    extra_headers);
    info_.bytes_sent += out.size();
    response_started_ = true;
    cm_.socket_->write(out);
    finish(close);
  }

  void encode1xx(ResponseHead& head) override {
    if (response_started_ || head.status != 100 || !head_.expect_continue) {
      return;
    }
    cm_.socket_->write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  void encodeHeaders(ResponseHead& head, bool end_stream) override {
    response_started_ = true;
    info_.status = head.status;
    std::string out;
    out.reserve(256 + head.headers.bytes());
    out.append(head_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    out.append(std::to_string(head.status));
    out.push_back(' ');
    out.append(reasonPhrase(head.status));
    out.append("\r\n");
    std::string_view connection = head.headers.get("connection");
    const HeaderMap& h = head.headers;
    for (size_t i = 0; i < h.size(); ++i) {
      std::string_view name = h.name(i);
      if (isHopByHop(name) || equalsIgnoreCase(name, "content-length") ||
          (!connection.empty() && listedInConnection(connection, name))) {
        continue;
      }
      out.append(name);
      out.append(": ");
      out.append(h.value(i));
      out.append("\r\n");
    }
    bool is_head = head_.method == "HEAD";
    bool bodiless = is_head || head.status == 204 || head.status == 304 || head.status < 200;
    close_ = !head_.keep_alive || cm_.config_.draining() || !request_complete_;
    if (head.status == 101) {
      out.append("connection: upgrade\r\nupgrade: ");
      out.append(head.headers.get("upgrade"));
      out.append("\r\n");
      close_ = false;
    } else if (head.has_content_length) {
      if (head.status != 204 && !(head.status < 200)) {
        out.append("content-length: ");
        out.append(std::to_string(head.content_length));
        out.append("\r\n");
      }
    } else if (!bodiless && !end_stream) {
      if (head_.version_minor >= 1) {
        chunked_ = true;
        out.append("transfer-encoding: chunked\r\n");
      } else {
        close_ = true;  // HTTP/1.0 client: body delimited by close
      }
    } else if (!bodiless) {
      out.append("content-length: 0\r\n");
    }
    if (!h.has("x-request-id")) {
      out.append("x-request-id: ");
      out.append(info_.request_id);
      out.append("\r\n");
    }
    if (close_ && head.status != 101) {
      out.append("connection: close\r\n");
    } else if (head_.version_minor == 0 && head.status != 101) {
      out.append("connection: keep-alive\r\n");
    }
    out.append("\r\n");
    info_.bytes_sent += out.size();
    cm_.socket_->write(out);
    if (end_stream) {
      finish(close_);
    } else {
      checkWatermark();
    }
  }

  void encodeData(const char* data, size_t len, bool end_stream) override {
    if (done_) {
      return;
    }
    info_.bytes_sent += len;
    if (chunked_) {
      char prefix[24];
      size_t plen = http1::chunkPrefix(prefix, len);
      event::Slice slices[4];
      size_t n = 0;
      if (len > 0) {
        slices[n++] = {prefix, plen};
        slices[n++] = {data, len};
        slices[n++] = {http1::kCrlf.data(), http1::kCrlf.size()};
      }
      if (end_stream) {
        slices[n++] = {http1::kLastChunk.data(), http1::kLastChunk.size()};
      }
      cm_.socket_->writev(slices, n);
    } else if (len > 0) {
      cm_.socket_->write(data, len);
    }
    if (end_stream) {
      finish(close_);
    } else {
      checkWatermark();
    }
  }

  void switchToTunnel() override {
    cm_.tunnel_ = true;
    // Bytes that arrived after the upgrade request are tunnel data.
    if (!cm_.pending_input_.empty()) {
      std::string pending;
      pending.swap(cm_.pending_input_);
      decodeData(pending.data(), pending.size(), false);
    }
    cm_.socket_->readStart();
  }

  void encodeTunnelEof() override { cm_.socket_->shutdownWrite(); }

  void resetStream() override {
    if (done_) {
      return;
    }
    if (info_.status == 0) {
      info_.status = 502;
    }
    if (info_.reason.empty()) {
      info_.reason = "upstream_reset";
    }
    finish(true, /*abort=*/true);
  }

  void readDisable(bool disable) override {
    if (disable) {
      if (cm_.read_disable_count_++ == 0) {
        cm_.socket_->readStop();
      }
    } else if (cm_.read_disable_count_ > 0 && --cm_.read_disable_count_ == 0) {
      if (!(cm_.codec_ && cm_.codec_->paused()) || cm_.tunnel_) {
        cm_.socket_->readStart();
      }
    }
  }

  bool downstreamAboveHighWatermark() const override { return cm_.socket_->aboveHighWatermark(); }

  bool requestComplete() const { return request_complete_; }

private:
  void checkWatermark() {
    if (!above_watermark_ && cm_.socket_->aboveHighWatermark()) {
      above_watermark_ = true;
      onWatermark(true);
    }
  }

public:
  void onDownstreamDrained() {
    if (above_watermark_) {
      above_watermark_ = false;
      onWatermark(false);
    }
  }

private:
  void finish(bool close, bool abort = false) {
    if (done_) {
      return;
    }
    done_ = true;
    destroyFilters();
    cm_.config_.onStreamComplete(info_, head_);
    if (abort) {
      cm_.close();
      return;
    }
    cm_.onStreamDone(close || !request_complete_);
  }

  ConnectionManager& cm_;
  RequestHead& head_;
  StreamInfo info_;
  std::vector<DecoderFilterPtr> filters_;
  size_t stopped_at_{SIZE_MAX};
  bool head_end_stream_{false};
  bool request_complete_{false};
  bool response_started_{false};
  bool chunked_{false};
  bool close_{false};
  bool done_{false};
  bool filters_destroyed_{false};
  bool above_watermark_{false};
  // Body bytes held for filters behind a stopped decodeHeaders (see decodeData).
  static constexpr size_t kMaxHeldBody = 1024 * 1024;  // above: stop reading downstream
  std::string held_body_;
  bool held_end_{false};
  bool held_read_disabled_{false};
};

// === impl ConnectionManager ===

ConnectionManager::ConnectionManager(event::Dispatcher& dispatcher, ConnectionManagerConfig& config,
                                     event::TcpSocketPtr socket)
    : dispatcher_(dispatcher), config_(config), socket_(std::move(socket)) {
  peer_ip_ = socket_->peerIp();
}

ConnectionManager::~ConnectionManager() {
  if (stream_) {
    stream_->destroyFilters();
  }
  if (codec_ && !stream_) {
    config_.codecPool().release(std::move(codec_));
  }
}

http1::ServerCodec& ConnectionManager::codec() {
  if (!codec_) {
    codec_ = config_.codecPool().acquire(*this, config_.codecLimits());
  }
  return *codec_;
}

void ConnectionManager::releaseCodecIfIdle() {
  if (codec_ && !stream_ && !codec_->inMessage() && pending_input_.empty() && !tunnel_ &&
      !codec_->upgraded()) {
    config_.codecPool().release(std::move(codec_));
  }
}

void ConnectionManager::arm(TimerMode mode) {
  timer_mode_ = mode;
  switch (mode) {
    case TimerMode::None:
      timer_->disable();
      break;
    case TimerMode::Header:
      timer_->enable(config_.headerTimeout());
      break;
    case TimerMode::Idle:
      timer_->enable(config_.idleTimeout());
      socket_->releaseIdleBuffers();
      break;
    case TimerMode::Resume:
      timer_->enable(std::chrono::milliseconds(0));
      break;
  }
}

void ConnectionManager::onTimer() {
  switch (timer_mode_) {
    case TimerMode::Header:
      onHeaderTimeout();
      break;
    case TimerMode::Idle:
      onIdleTimeout();
      break;
    case TimerMode::Resume:
      timer_mode_ = TimerMode::None;
      onResumeInput();
      break;
    case TimerMode::None:
      break;
  }
}

void ConnectionManager::start() {
  socket_->setCallbacks(this);
  timer_ = dispatcher_.createTimer([this] { onTimer(); });
  arm(TimerMode::Header);
  socket_->readStart();
}

void ConnectionManager::onData(const char* data, size_t len) {
  if (closed_) {
    return;
  }
  if (tunnel_) {
    if (stream_) {
      stream_->decodeData(data, len, false);
    }
    return;
  }
  if (!stream_ && !inMessage() && timer_mode_ != TimerMode::Header) {
    arm(TimerMode::Header);
  }
  saw_request_bytes_ = true;
  if ((codec_ && codec_->paused()) || !pending_input_.empty()) {
    // A pipelined request behind an active stream: keep it unparsed, stop reading more.
    pending_input_.append(data, len);
    socket_->readStop();
    return;
  }
  processInput(data, len);
}

void ConnectionManager::processInput(const char* data, size_t len) {
  http1::ServerCodec& c = codec();
  while (true) {
    size_t consumed = c.dispatch(data, len);
    if (closed_) {
      return;
    }
    if (c.paused() && !stream_) {
      // The request was answered before the parser reached its end (a local reply sent from
      // decodeHeaders: 404, 429, 503...). Its stream is gone, so nothing will resume the
      // codec later: go on with the next pipelined request, if any, right here.
      c.resume();
      if (consumed < len) {
        data += consumed;
        len -= consumed;
        continue;
      }
      releaseCodecIfIdle();
      return;
    }
    if (consumed < len && (c.upgraded() || c.paused())) {
      // Pipelined bytes (or tunnel data after an upgrade request): held until the stream ends
      // (or the upstream accepts the upgrade).
      pending_input_.append(data + consumed, len - consumed);
      socket_->readStop();
    }
    return;
  }
}

void ConnectionManager::onRequestHead(RequestHead& head, bool end_stream) {
  arm(TimerMode::None);
  stream_ = std::make_unique<ActiveStream>(*this, head);
  StreamInfo& info = stream_->streamInfo();
  std::string_view rid = head.headers.get("x-request-id");
  info.downstream_ip = peer_ip_;
  info.request_id = rid.empty() || rid.size() > 200 ? generateRequestId() : std::string(rid);
  config_.filterChainFactory().createFilterChain(*stream_);
  stream_->decodeHeaders(end_stream);
}

void ConnectionManager::onRequestBody(const char* data, size_t len) {
  if (stream_) {
    stream_->decodeData(data, len, false);
  }
}

void ConnectionManager::onRequestBodyEnd() {
  if (stream_) {
    stream_->decodeData(nullptr, 0, true);
  }
}

void ConnectionManager::onCodecError(const http1::CodecError& error) {
  LEVEE_LOG(Http, debug, "[C{}] codec error from {}: {}", static_cast<const void*>(this), peer_ip_,
            error.detail);
  codec_->stop();
  if (stream_) {
    // Error in the body of an active request (bad chunk, over the size limit).
    close_after_stream_ = true;
    stream_->sendLocalReply(error.status, error.reason, error.detail);
    if (stream_) {
      stream_->resetStream();
    }
    return;
  }
  config_.onLocalReply(error.reason);
  writeLocalReply(error.status, error.reason, generateRequestId(), true);
}

void ConnectionManager::writeLocalReply(int status, std::string_view reason,
                                        std::string_view request_id, bool close_conn) {
  std::string out;
  buildLocalReply(out, status, reason, request_id, close_conn, false);
  socket_->write(out);
  if (close_conn) {
    closed_ = true;
    arm(TimerMode::None);
    socket_->closeAfterFlush();
    config_.onConnectionClosed(*this);
  }
}

void ConnectionManager::onStreamDone(bool close_connection) {
  // Called from inside the stream: retire it after this call stack unwinds.
  if (stream_) {
    dispatcher_.deferredDeleteAny(std::move(stream_));
  }
  if (close_connection || close_after_stream_ || config_.draining()) {
    closed_ = true;
    arm(TimerMode::None);
    socket_->closeAfterFlush();
    config_.onConnectionClosed(*this);
    return;
  }
  read_disable_count_ = 0;
  codec_->resume();
  if (!pending_input_.empty()) {
    // Parse the next pipelined request on a fresh stack (the finishing stream's upstream
    // callbacks are still on this one).
    arm(TimerMode::Resume);
    return;
  }
  releaseCodecIfIdle();
  arm(TimerMode::Idle);
  socket_->readStart();
}

void ConnectionManager::onResumeInput() {
  if (closed_ || stream_ || pending_input_.empty()) {
    return;
  }
  std::string pending;
  pending.swap(pending_input_);
  arm(TimerMode::Header);
  processInput(pending.data(), pending.size());
  if (closed_) {
    return;
  }
  if (!stream_ && !inMessage()) {
    releaseCodecIfIdle();
    arm(TimerMode::Idle);
  }
  if (!(codec_ && codec_->paused()) && pending_input_.empty()) {
    socket_->readStart();
  }
}

void ConnectionManager::onHeaderTimeout() {
  if (closed_ || stream_) {
    return;
  }
  if (inMessage() || saw_request_bytes_) {
    config_.onLocalReply("request_header_timeout");
    writeLocalReply(408, "request_header_timeout", generateRequestId(), true);
  } else {
    close();
  }
}

void ConnectionManager::onIdleTimeout() {
  if (!stream_ && !inMessage()) {
    close();
  }
}

void ConnectionManager::closeIfIdle() {
  if (closed_) {
    return;
  }
  if (!stream_ && !inMessage() && pending_input_.empty()) {
    close();
  } else {
    close_after_stream_ = true;
  }
}

void ConnectionManager::closeNow() { close(); }

void ConnectionManager::onEof() {
  if (tunnel_ && stream_) {
    stream_->decodeTunnelEof();
    return;
  }
  if (stream_ && !stream_->requestComplete()) {
    // Client went away mid-request.
    stream_->resetStream();
    return;
  }
  if (stream_) {
    // Half-closed after a complete request: finish the response, then close.
    close_after_stream_ = true;
    return;
  }
  close();
}

void ConnectionManager::onError(int err) {
  LEVEE_LOG(Http, debug, "[C{}] downstream error: {}", static_cast<const void*>(this), uv_err_name(err));
  if (stream_) {
    stream_->resetStream();
    return;
  }
  close();
}

void ConnectionManager::onWriteDrained() {
  if (stream_) {
    stream_->onDownstreamDrained();
  }
}

void ConnectionManager::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (stream_) {
    stream_->destroyFilters();
  }
  arm(TimerMode::None);
  socket_->close();
  config_.onConnectionClosed(*this);
}

}  // namespace levee::http
