#include "proxy/router/router_filter.h"

#include "proxy/common/logger.h"
#include "proxy/http/http1/encoder.h"
#include "proxy/http/stream_info.h"

namespace levee::router {
namespace {
constexpr size_t kMaxBufferedBody = 1024 * 1024;
}  // namespace

RouterFilter::~RouterFilter() = default;

http::FilterHeadersStatus RouterFilter::decodeHeaders(http::RequestHead& head, bool end_stream) {
  table_ = ctx_.routeTable();
  route_ = table_->match(head);
  request_complete_ = end_stream;
  if (route_ == nullptr) {
    localReply(404, "no_route", "no route matched");
    return http::FilterHeadersStatus::StopIteration;
  }
  http::StreamInfo& info = cb_->streamInfo();
  info.route_name = route_->route->name;
  info.upstream_name = route_->route->upstream;
  info.route_stats = ctx_.routeStats(*table_, *route_);
  cluster_ = ctx_.cluster(route_->route->upstream);
  if (!cluster_) {
    localReply(503, "no_healthy_upstream", "upstream not available");
    return http::FilterHeadersStatus::StopIteration;
  }
  chunked_ = head.chunked;
  head_request_ = head.method == "HEAD";
  http::http1::ForwardedInfo fwd;
  fwd.peer_ip = info.downstream_ip;
  fwd.trust_forwarded = table_->listener().trust_forwarded;
  fwd.request_id = info.request_id;
  upstream_head_.reserve(256 + head.headers.bytes());
  http::http1::encodeRequestHead(upstream_head_, head, fwd);
  if (route_->route->timeout.count() > 0) {
    timeout_timer_ = cb_->dispatcher().createTimer([this] { onTimeout(); });
    timeout_timer_->enable(route_->route->timeout);
  }
  requestConnection();
  return http::FilterHeadersStatus::StopIteration;
}

void RouterFilter::requestConnection() {
  cb_->streamInfo().attempts++;
  pending_ = cluster_->newStream(*this, retried_ && host_ ? host_.get() : nullptr);
}

void RouterFilter::onPoolReady(upstream::UpstreamConnection& conn) {
  pending_ = nullptr;
  counted_ = true;
  conn_ = &conn;
  host_ = std::shared_ptr<const upstream::Host>(cluster_->hosts(), &conn.host());
  cb_->streamInfo().endpoint = conn.host().address;
  conn.attach(this, head_request_);
  // Head and whatever body arrived so far in one write.
  event::Slice slices[2] = {{upstream_head_.data(), upstream_head_.size()}, {nullptr, 0}};
  std::string framed;
  if (!body_buffer_.empty() || (request_complete_ && chunked_)) {
    if (chunked_) {
      char prefix[24];
      if (!body_buffer_.empty()) {
        framed.append(prefix, http::http1::chunkPrefix(prefix, body_buffer_.size()));
        framed.append(body_buffer_);
        framed.append(http::http1::kCrlf);
      }
      if (request_complete_) {
        framed.append(http::http1::kLastChunk);
      }
      slices[1] = {framed.data(), framed.size()};
    } else {
      slices[1] = {body_buffer_.data(), body_buffer_.size()};
    }
  }
  body_sent_ += body_buffer_.size();
  conn.writev(slices, 2);
  // Keep the buffered body only while a retry on a stale connection may still need it.
  if (read_disabled_ && !conn.aboveHighWatermark()) {
    read_disabled_ = false;
    cb_->readDisable(false);
  }
}

void RouterFilter::onPoolFailure(upstream::PoolFailure reason, std::string_view detail) {
  pending_ = nullptr;
  switch (reason) {
    case upstream::PoolFailure::Overflow:
      localReply(503, "upstream_overflow", detail);
      break;
    case upstream::PoolFailure::NoHealthyUpstream:
      localReply(503, "no_healthy_upstream", detail);
      break;
    case upstream::PoolFailure::ConnectFailure:
    case upstream::PoolFailure::ConnectTimeout:
      localReply(503, "upstream_connect_failure", detail);
      break;
  }
}

http::FilterDataStatus RouterFilter::decodeData(const char* data, size_t len, bool end_stream) {
  if (end_stream) {
    request_complete_ = true;
  }
  if (tunnel_) {
    if (conn_ != nullptr && len > 0) {
      conn_->write(data, len);
      if (conn_->aboveHighWatermark() && !read_disabled_) {
        read_disabled_ = true;
        cb_->readDisable(true);
      }
    }
    return http::FilterDataStatus::StopIterationNoBuffer;
  }
  if (conn_ == nullptr) {
    body_buffer_.append(data, len);
    if (body_buffer_.size() > kMaxBufferedBody && !read_disabled_) {
      read_disabled_ = true;
      cb_->readDisable(true);
    }
    return http::FilterDataStatus::StopIterationNoBuffer;
  }
  writeBody(data, len, end_stream);
  return http::FilterDataStatus::StopIterationNoBuffer;
}

void RouterFilter::writeBody(const char* data, size_t len, bool end_stream) {
  body_sent_ += len;
  if (chunked_) {
    char prefix[24];
    event::Slice slices[4];
    size_t n = 0;
    if (len > 0) {
      slices[n++] = {prefix, http::http1::chunkPrefix(prefix, len)};
      slices[n++] = {data, len};
      slices[n++] = {http::http1::kCrlf.data(), http::http1::kCrlf.size()};
    }
    if (end_stream) {
      slices[n++] = {http::http1::kLastChunk.data(), http::http1::kLastChunk.size()};
    }
    conn_->writev(slices, n);
  } else if (len > 0) {
    conn_->write(data, len);
  }
  if (conn_->aboveHighWatermark() && !read_disabled_) {
    read_disabled_ = true;
    cb_->readDisable(true);
  }
}

void RouterFilter::onUpstreamWriteDrained() {
  if (read_disabled_) {
    read_disabled_ = false;
    cb_->readDisable(false);
  }
}

void RouterFilter::onDownstreamWatermark(bool above) {
  if (conn_ == nullptr || above == upstream_read_disabled_) {
    return;
  }
  upstream_read_disabled_ = above;
  conn_->readDisable(above);
}

void RouterFilter::onUpstreamInformational(http::ResponseHead& head) { cb_->encode1xx(head); }

void RouterFilter::onUpstreamHeaders(http::ResponseHead& head, bool end_stream) {
  response_started_ = true;
  if (timeout_timer_ && head.status == 101) {
    timeout_timer_->disable();  // a tunnel has no request deadline
  }
  if (head.status == 101) {
    tunnel_ = true;
    cb_->encodeHeaders(head, false);
    if (destroyed_) {
      return;
    }
    conn_->switchToTunnel();
    cb_->switchToTunnel();
    return;
  }
  if (end_stream) {
    upstream::UpstreamConnection* conn = conn_;
    finishExchange(true);
    (void)conn;
    cb_->encodeHeaders(head, true);
    return;
  }
  cb_->encodeHeaders(head, false);
}

void RouterFilter::onUpstreamData(const char* data, size_t len, bool end_stream) {
  if (end_stream) {
    finishExchange(true);
  }
  cb_->encodeData(data, len, end_stream);
}

void RouterFilter::finishExchange(bool reusable) {
  if (timeout_timer_) {
    timeout_timer_->disable();
  }
  if (conn_ != nullptr) {
    upstream::UpstreamConnection* conn = conn_;
    conn_ = nullptr;
    if (upstream_read_disabled_) {
      upstream_read_disabled_ = false;
    }
    conn->release(reusable && request_complete_);
  }
  if (counted_) {
    counted_ = false;
    cluster_->onRequestDoneFor(*host_);
  }
}

bool RouterFilter::isRetrySafe() const {
  const std::string& m = cb_->requestHead().method;
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

void RouterFilter::onUpstreamReset(std::string_view detail, bool response_started) {
  bool reused = conn_ != nullptr && conn_->reuseCount() > 0;
  conn_ = nullptr;  // the pool retired it
  if (counted_) {
    counted_ = false;
    cluster_->onRequestDoneFor(*host_);
  }
  if (response_started || tunnel_) {
    LEVEE_LOG(Router, debug, "upstream reset after response start: {}", detail);
    cb_->resetStream();
    return;
  }
  // A keep-alive connection the upstream closed just as we reused it: nothing was processed
  // if no response byte came back. Replay once for idempotent requests without a body.
  if (reused && !retried_ && isRetrySafe() && body_sent_ == 0 && request_complete_) {
    retried_ = true;
    requestConnection();
    return;
  }
  localReply(502, "upstream_reset", detail);
}

void RouterFilter::onUpstreamTunnelEof() { cb_->encodeTunnelEof(); }

void RouterFilter::decodeTunnelEof() {
  if (conn_ != nullptr) {
    conn_->shutdownWrite();
  }
}

void RouterFilter::onTimeout() {
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (conn_ != nullptr) {
    finishExchange(false);
  }
  localReply(504, "upstream_timeout", "route timeout");
}

void RouterFilter::localReply(int status, std::string_view reason, std::string_view detail) {
  cb_->sendLocalReply(status, reason, detail);
}

void RouterFilter::onDestroy() {
  destroyed_ = true;
  timeout_timer_.reset();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (conn_ != nullptr) {
    // The exchange did not finish (client went away, timeout): the connection is not reusable.
    finishExchange(false);
  } else if (counted_) {
    counted_ = false;
    cluster_->onRequestDoneFor(*host_);
  }
}

}  // namespace levee::router
