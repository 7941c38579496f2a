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
  if (common::CircuitBreaker* br = cluster_->shared().breaker()) {
    admission_ = br->admit();
    has_admission_ = true;
    if (!admission_.allowed) {
      cluster_->shared().countRejected(/*shadow=*/false);
    } else if (admission_.would_block) {
      cluster_->shared().countRejected(/*shadow=*/true);
    }
    if (!admission_.allowed) {
      auto wait = br->snapshot().time_until_half_open;
      uint32_t secs = static_cast<uint32_t>((wait.count() + 999) / 1000);
      has_admission_ = false;
      localReply(503, "breaker_open", "circuit breaker open", std::max<uint32_t>(1, secs));
      return http::FilterHeadersStatus::StopIteration;
    }
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
  attempt_start_ = std::chrono::steady_clock::now();
  outcome_recorded_ = false;
  response_status_ = 0;
  uint64_t key = cluster_->config().load_balancer == config::LoadBalancerKind::Hash ? hashKey(cb_->requestHead()) : 0;
  pending_ = cluster_->newStream(*this, retried_ && host_ ? host_.get() : nullptr, key);
}

uint64_t RouterFilter::hashKey(const http::RequestHead& head) const {
  const config::HashOn& on = cluster_->config().hash_on;
  std::string_view v;
  switch (on.kind) {
    case config::HashOn::Kind::Path:
      v = head.path();
      break;
    case config::HashOn::Kind::Header:
      v = head.headers.get(on.name);
      break;
    case config::HashOn::Kind::Cookie: {
      std::string_view cookies = head.headers.get("cookie");
      size_t pos = 0;
      while (pos < cookies.size()) {
        size_t end = cookies.find(';', pos);
        if (end == std::string_view::npos) {
          end = cookies.size();
        }
        std::string_view kv = cookies.substr(pos, end - pos);
        while (!kv.empty() && kv.front() == ' ') {
          kv.remove_prefix(1);
        }
        if (kv.size() > on.name.size() && kv.starts_with(on.name) && kv[on.name.size()] == '=') {
          v = kv.substr(on.name.size() + 1);
          break;
        }
        pos = end + 1;
      }
      break;
    }
  }
  return fnv1a64(v) | 1;  // never 0
}

void RouterFilter::recordOutcome(upstream::AttemptOutcome outcome, int status) {
  if (outcome_recorded_) {
    return;
  }
  outcome_recorded_ = true;
  if (host_ && outcome == upstream::AttemptOutcome::Response) {
    // Connect failures were recorded for outlier detection by the pool itself.
    cluster_->recordResult(*host_, outcome, status);
  } else if (host_ && outcome != upstream::AttemptOutcome::ConnectFailure) {
    cluster_->recordResult(*host_, outcome, status);
  }
  if (has_admission_) {
    if (common::CircuitBreaker* br = cluster_->shared().breaker()) {
      auto d = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - attempt_start_);
      br->onResult(admission_, cluster_->shared().isBreakerFailure(outcome, status), d);
    }
  }
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
  if (reason == upstream::PoolFailure::ConnectFailure) {
    recordOutcome(upstream::AttemptOutcome::ConnectFailure, 0);
  } else if (reason == upstream::PoolFailure::ConnectTimeout) {
    recordOutcome(upstream::AttemptOutcome::Timeout, 0);
  } else {
    outcome_recorded_ = true;  // not the upstream's fault (overflow / no host): not counted
  }
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
  response_status_ = head.status;
  if (head.status == 101) {
    recordOutcome(upstream::AttemptOutcome::Response, head.status);
  }
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
  if (reusable) {
    recordOutcome(upstream::AttemptOutcome::Response, response_status_);
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
  // A stale keep-alive connection that gets replayed is not the upstream's failure.
  bool will_replay = !response_started && !tunnel_ && reused && !retried_ && isRetrySafe() &&
                     body_sent_ == 0 && request_complete_;
  if (!will_replay) {
    recordOutcome(upstream::AttemptOutcome::Reset, 0);
  } else {
    outcome_recorded_ = true;
  }
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
  recordOutcome(upstream::AttemptOutcome::Timeout, 0);
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (conn_ != nullptr) {
    finishExchange(false);
  }
  localReply(504, "upstream_timeout", "route timeout");
}

void RouterFilter::localReply(int status, std::string_view reason, std::string_view detail,
                              uint32_t retry_after_s) {
  cb_->sendLocalReply(status, reason, detail, retry_after_s);
}

void RouterFilter::onDestroy() {
  destroyed_ = true;
  timeout_timer_.reset();
  if (!outcome_recorded_ && has_admission_) {
    // The client went away (or the response was cut): say nothing about the upstream's
    // health, but release a half-open probe slot rather than let it time out.
    outcome_recorded_ = true;
    if (common::CircuitBreaker* br = cluster_->shared().breaker()) {
      if (response_status_ != 0) {
        auto d = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - attempt_start_);
        br->onResult(admission_, cluster_->shared().isBreakerFailure(upstream::AttemptOutcome::Response, response_status_), d);
      }
    }
  }
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
