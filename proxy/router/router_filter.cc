#include "proxy/router/router_filter.h"

#include "proxy/common/backoff.h"
#include "proxy/common/logger.h"
#include "proxy/http/http1/encoder.h"
#include "proxy/http/stream_info.h"

namespace levee::router {
namespace {
constexpr size_t kMaxBufferedBody = 1024 * 1024;
// Request body kept for a fallback upstream when the route has no retry block (retry.max_body_bytes
// otherwise).
constexpr uint64_t kFallbackMaxBodyBytes = 64 * 1024;
// A stored response younger than this is not captured again: a hot key costs one copy per
// second, not one per request.
constexpr std::chrono::milliseconds kStaleRefresh{1000};
}  // namespace

RouterFilter::~RouterFilter() = default;

http::FilterHeadersStatus RouterFilter::decodeHeaders(http::RequestHead& head, bool end_stream) {
  http::StreamInfo& si = cb_->streamInfo();
  if (si.route_resolved) {
    // Matched once when the chain was built (per-route filters saw the same route).
    table_ = std::static_pointer_cast<const RouteTable>(si.route_pin);
    route_ = static_cast<const CompiledRoute*>(si.route);
  } else {
    table_ = ctx_.routeTable();
    route_ = table_->match(head);
  }
  request_complete_ = end_stream;
  if (route_ == nullptr) {
    localReply(404, "no_route", "no route matched");
    return http::FilterHeadersStatus::StopIteration;
  }
  http::StreamInfo& info = cb_->streamInfo();
  info.route_name = route_->route->name;
  info.upstream_name = route_->route->upstream;
  info.route_stats = ctx_.routeStats(*table_, *route_);
  fallback_ = route_->fallback.get();
  cacheable_ = fallback_ != nullptr && fallback_->stale && (head.method == "GET" || head.method == "HEAD");
  retain_body_ = route_->route->retry.enabled || (fallback_ != nullptr && fallback_->has_upstream_entry);
  chunked_ = head.chunked;
  head_request_ = head.method == "HEAD";
  http::http1::ForwardedInfo fwd;
  fwd.peer_ip = info.downstream_ip;
  fwd.trust_forwarded = table_->listener().trust_forwarded;
  fwd.request_id = info.request_id;
  upstream_head_.reserve(256 + head.headers.bytes());
  http::http1::encodeRequestHead(upstream_head_, head, fwd);
  if (info.deferred_reply) {
    // A filter refused the request and handed it to the fallback chain (rate limit,
    // degradation): the route's upstream is not touched.
    const http::StreamInfo::DeferredReply& d = *info.deferred_reply;
    if (!runFallback(static_cast<config::FallbackReason>(d.fallback_reason), 0)) {
      cb_->sendLocalReply(d.status, d.reason, "fallback chain had no answer", d.retry_after_s,
                          d.extra_headers);
    }
    return http::FilterHeadersStatus::StopIteration;
  }
  cluster_ = ctx_.cluster(route_->route->upstream);
  if (!cluster_) {
    fail(config::FallbackReason::NoHealthyUpstream, 503, "no_healthy_upstream", "upstream not available");
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
      fail(config::FallbackReason::BreakerOpen, 503, "breaker_open", "circuit breaker open",
           std::max<uint32_t>(1, secs));
      return http::FilterHeadersStatus::StopIteration;
    }
  }
  if (route_->route->timeout.count() > 0) {
    timeout_deadline_.arm(cb_->dispatcher(), route_->route->timeout);
    has_deadline_ = true;
    deadline_ms_ = cb_->dispatcher().nowMs() + static_cast<uint64_t>(route_->route->timeout.count());
  }
  if (route_->route->retry.enabled) {
    retry_cfg_ = &route_->route->retry;
    retry_state_ = route_->retry;
    if (retry_state_ && retry_state_->budget) {
      retry_state_->budget->onRequestStart();
      budget_request_counted_ = true;
    }
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
  if (retry_cfg_ != nullptr && retry_cfg_->per_try_timeout.count() > 0) {
    per_try_deadline_.arm(cb_->dispatcher(), retry_cfg_->per_try_timeout);
  }
  // A retry (or a stale-connection replay) prefers another endpoint than the one that failed.
  // newStream may call back synchronously (and a fallback leg started from there may already
  // hold a pending request): only an asynchronous answer is our pending request.
  if (upstream::Cancellable* p =
          cluster_->newStream(*this, (retried_ || retries_ > 0) && host_ ? host_.get() : nullptr, key)) {
    pending_ = p;
  }
}

bool RouterFilter::isMethodRetriable() const {
  const http::RequestHead& h = cb_->requestHead();
  for (const auto& m : retry_cfg_->methods) {
    if (m == h.method) {
      return true;
    }
  }
  // Only idempotent methods by default; anything else only with an Idempotency-Key.
  return (retry_cfg_->methods.empty() && isRetrySafe()) || h.headers.has("idempotency-key");
}

bool RouterFilter::maybeRetry(FailureKind kind, int status, std::string_view retry_after) {
  endRetryAttempt();
  if (retry_cfg_ == nullptr || destroyed_ || response_started_forwarded_) {
    return false;
  }
  const config::RetryConfig& c = *retry_cfg_;
  if (retries_ >= c.max_retries) {
    return false;
  }
  bool condition = false;
  switch (kind) {
    case FailureKind::ConnectFailure:
      condition = c.on_connect_failure;
      break;
    case FailureKind::Reset:
      condition = c.on_reset;
      break;
    case FailureKind::Timeout:
      condition = c.on_timeout;
      break;
    case FailureKind::Status:
      condition = (c.on_5xx && status >= 500) || (c.on_gateway_error && status >= 502 && status <= 504) ||
                  (c.on_retriable_status &&
                   std::find(c.statuses.begin(), c.statuses.end(), status) != c.statuses.end());
      break;
  }
  if (!condition) {
    return false;
  }
  // Safety: a connect failure sent nothing, so any method may be retried; otherwise only
  // idempotent methods (or listed ones, or with Idempotency-Key), and only with the whole
  // body still in hand.
  if (kind != FailureKind::ConnectFailure && !isMethodRetriable()) {
    return false;
  }
  if (!body_retainable_ || (kind != FailureKind::ConnectFailure && !request_complete_)) {
    return false;
  }
  // Never retry into an open breaker.
  if (common::CircuitBreaker* br = cluster_->shared().breaker()) {
    auto st = br->state();
    if ((st == common::CircuitBreaker::State::Open || st == common::CircuitBreaker::State::ForcedOpen) &&
        !cluster_->config().circuit_breaker.shadow) {
      return false;
    }
  }
  std::chrono::milliseconds delay =
      common::fullJitterBackoff(retries_ + 1, c.backoff_base, c.backoff_max, ctx_.random());
  if (c.honor_retry_after && !retry_after.empty()) {
    auto ra = common::parseRetryAfter(retry_after, std::chrono::system_clock::now());
    if (ra) {
      delay = *ra;
    }
  }
  // Loop time, the clock the route's Deadline fires on.
  if (has_deadline_ && cb_->dispatcher().nowMs() + static_cast<uint64_t>(delay.count()) >= deadline_ms_) {
    return false;  // the route timeout bounds every attempt and backoff
  }
  if (retry_state_ && retry_state_->budget) {
    if (!retry_state_->budget->tryStartRetry()) {
      if (retry_state_->budget_exhausted != nullptr) {
        retry_state_->budget_exhausted->inc();
      }
      return false;  // the original failure is returned
    }
    retry_budget_held_ = true;
  }
  ++retries_;
  if (retry_state_ && retry_state_->attempted != nullptr) {
    retry_state_->attempted->inc();
  }
  if (!backoff_timer_) {
    backoff_timer_ = cb_->dispatcher().createTimer([this] { onBackoffElapsed(); });
  }
  backoff_timer_->enable(delay);
  return true;
}

void RouterFilter::onBackoffElapsed() {
  // Replay the whole request on a fresh attempt.
  body_buffer_ = retry_body_;
  response_started_ = false;
  response_status_ = 0;
  if (common::CircuitBreaker* br = cluster_->shared().breaker()) {
    admission_ = br->admit();
    has_admission_ = true;
    if (!admission_.allowed) {
      has_admission_ = false;
      cluster_->shared().countRejected(false);
      countFinal(false);
      fail(config::FallbackReason::BreakerOpen, 503, "breaker_open", "circuit breaker open before a retry");
      return;
    }
  }
  requestConnection();
}

void RouterFilter::endRetryAttempt() {
  per_try_deadline_.cancel();
  if (retry_budget_held_) {
    retry_budget_held_ = false;
    retry_state_->budget->onRetryEnd();
  }
}

void RouterFilter::countFinal(bool success) {
  if (final_counted_ || retries_ == 0 || !retry_state_) {
    return;
  }
  final_counted_ = true;
  stats::Counter* c = success ? retry_state_->succeeded : retry_state_->failed;
  if (c != nullptr) {
    c->inc();
  }
}

void RouterFilter::onPerTryTimeout() {
  recordOutcome(upstream::AttemptOutcome::Timeout, 0);
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  releaseConnection(false);  // the route timeout keeps running across attempts
  if (response_started_forwarded_) {
    cb_->resetStream();
    return;
  }
  if (maybeRetry(FailureKind::Timeout, 0, {})) {
    return;
  }
  countFinal(false);
  fail(config::FallbackReason::Timeout, 504, "upstream_timeout", "per-try timeout");
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
  // Connect failures were recorded for outlier detection by the pool itself.
  if (host_ && outcome != upstream::AttemptOutcome::ConnectFailure) {
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
  sent_upstream_ = true;
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
  if ((reason == upstream::PoolFailure::ConnectFailure || reason == upstream::PoolFailure::ConnectTimeout) &&
      maybeRetry(FailureKind::ConnectFailure, 0, {})) {
    return;
  }
  countFinal(false);
  switch (reason) {
    case upstream::PoolFailure::Overflow:
      fail(config::FallbackReason::Overflow, 503, "upstream_overflow", detail);
      break;
    case upstream::PoolFailure::NoHealthyUpstream:
      fail(config::FallbackReason::NoHealthyUpstream, 503, "no_healthy_upstream", detail);
      break;
    case upstream::PoolFailure::ConnectFailure:
    case upstream::PoolFailure::ConnectTimeout:
      fail(config::FallbackReason::ConnectFailure, 503, "upstream_connect_failure", detail);
      break;
  }
}

http::FilterDataStatus RouterFilter::decodeData(const char* data, size_t len, bool end_stream) {
  if (end_stream) {
    request_complete_ = true;
  }
  if (retain_body_ && body_retainable_ && !tunnel_) {
    const uint64_t max_body = retry_cfg_ != nullptr ? retry_cfg_->max_body_bytes
                              : route_->route->retry.enabled ? route_->route->retry.max_body_bytes
                                                             : kFallbackMaxBodyBytes;
    if (retry_body_.size() + len > max_body) {
      body_retainable_ = false;  // bigger bodies are never retried
      std::string().swap(retry_body_);
    } else {
      retry_body_.append(data, len);
    }
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
  if (retry_cfg_ != nullptr && head.status >= 400 && retries_ < retry_cfg_->max_retries) {
    std::string retry_after(head.headers.get("retry-after"));
    recordOutcome(upstream::AttemptOutcome::Response, head.status);
    // Decide before forwarding anything: if retried, the response is dropped with its
    // connection.
    if (conn_ != nullptr && maybeRetry(FailureKind::Status, head.status, retry_after)) {
      releaseConnection(false);
      return;
    }
  }
  if (head.status >= 500 && fallback_ != nullptr && conn_ != nullptr) {
    // A 5xx answer (retries are behind us): drop it only when the chain has something better.
    const config::FallbackReason why = in_fallback_ ? fallback_reason_ : config::FallbackReason::Upstream5xx;
    const size_t from = in_fallback_ ? fallback_next_ : 0;
    if ((in_fallback_ || fallback_->config.wants(why)) && chainCanAnswer(why, from)) {
      recordOutcome(upstream::AttemptOutcome::Response, head.status);
      countFinal(false);
      releaseConnection(false);
      if (!runFallback(why, from)) {
        localReply(502, "upstream_5xx", "the fallback chain could not answer");
      }
      return;
    }
  }
  per_try_deadline_.cancel();
  if (in_fallback_ && head.status != 100 && head.status != 101) {
    head.headers.add("x-levee-fallback", "upstream");
    cb_->streamInfo().fallback = fallbackKindName(config::FallbackEntry::Kind::Upstream);
    cb_->streamInfo().reason = config::fallbackReasonName(fallback_reason_);
    fallback_->countServed(fallback_reason_, config::FallbackEntry::Kind::Upstream);
  } else if (cacheable_ && !in_fallback_ && head.status >= 200 && head.status <= 299) {
    const uint64_t digest = http::ResponseCache::digestFor(cb_->requestHead(), head);
    if (!fallback_->stale->storedWithin(digest, kStaleRefresh)) {
      capture_ = http::beginCapture(cb_->requestHead(), head, fallback_->stale_policy,
                                    std::chrono::steady_clock::now());
      if (capture_) {
        capture_->digest = digest;
      }
    }
  }
  response_started_forwarded_ = head.status != 100;
  countFinal(head.status < 500);
  if (head.status == 101) {
    recordOutcome(upstream::AttemptOutcome::Response, head.status);
  }
  if (head.status == 101) {
    timeout_deadline_.cancel();  // a tunnel has no request deadline
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
    storeCapture();
    finishExchange(true);
    cb_->encodeHeaders(head, true);
    return;
  }
  cb_->encodeHeaders(head, false);
}

void RouterFilter::onUpstreamData(const char* data, size_t len, bool end_stream) {
  if (capture_) {
    if (capture_->body.size() + len > fallback_->stale_policy.max_entry_bytes) {
      capture_.reset();  // too big to keep
    } else {
      capture_->body.append(data, len);
    }
  }
  if (end_stream) {
    storeCapture();
    finishExchange(true);
  }
  cb_->encodeData(data, len, end_stream);
}

void RouterFilter::finishExchange(bool reusable) {
  timeout_deadline_.cancel();
  per_try_deadline_.cancel();
  if (reusable) {
    recordOutcome(upstream::AttemptOutcome::Response, response_status_);
  }
  releaseConnection(reusable);
}

void RouterFilter::releaseConnection(bool reusable) {
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
  if (maybeRetry(FailureKind::Reset, 0, {})) {
    return;
  }
  countFinal(false);
  fail(config::FallbackReason::Reset, 502, "upstream_reset", detail);
}

void RouterFilter::onUpstreamTunnelEof() { cb_->encodeTunnelEof(); }

void RouterFilter::decodeTunnelEof() {
  if (conn_ != nullptr) {
    conn_->shutdownWrite();
  }
}

void RouterFilter::onTimeout() {
  recordOutcome(upstream::AttemptOutcome::Timeout, 0);
  endRetryAttempt();
  if (backoff_timer_) {
    backoff_timer_->disable();
  }
  countFinal(false);
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (conn_ != nullptr) {
    finishExchange(false);
  }
  fail(config::FallbackReason::Timeout, 504, "upstream_timeout", "route timeout");
}

void RouterFilter::localReply(int status, std::string_view reason, std::string_view detail,
                              uint32_t retry_after_s) {
  cb_->sendLocalReply(status, reason, detail, retry_after_s);
}

void RouterFilter::onDestroy() {
  destroyed_ = true;
  timeout_deadline_.cancel();
  endRetryAttempt();
  per_try_deadline_.cancel();
  backoff_timer_.reset();
  if (budget_request_counted_) {
    budget_request_counted_ = false;
    retry_state_->budget->onRequestEnd();
  }
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

// === fallback ===

void RouterFilter::fail(config::FallbackReason why, int status, std::string_view reason,
                        std::string_view detail, uint32_t retry_after_s) {
  if (in_fallback_) {
    // A fallback upstream failed too: the rest of the chain, for the original reason.
    if (runFallback(fallback_reason_, fallback_next_)) {
      return;
    }
  } else if (fallback_ != nullptr && fallback_->config.wants(why) && runFallback(why, 0)) {
    return;
  }
  localReply(status, reason, detail, retry_after_s);
}

bool RouterFilter::runFallback(config::FallbackReason why, size_t from) {
  if (fallback_ == nullptr || destroyed_) {
    return false;
  }
  const std::vector<config::FallbackEntry>& chain = fallback_->config.chain;
  for (size_t i = from; i < chain.size(); ++i) {
    const config::FallbackEntry& e = chain[i];
    switch (e.kind) {
      case config::FallbackEntry::Kind::Stale:
        if (serveStale(why)) {
          return true;
        }
        break;
      case config::FallbackEntry::Kind::Static: {
        quiesce();
        http::ResponseHead head;
        buildStaticHead(e.static_response, config::fallbackReasonName(why), head);
        answer(head, e.static_response.body, why, e.kind);
        return true;
      }
      case config::FallbackEntry::Kind::Upstream:
        if (startFallbackUpstream(e, why, i)) {
          return true;
        }
        break;
    }
  }
  return false;
}

bool RouterFilter::chainCanAnswer(config::FallbackReason why, size_t from) {
  const std::vector<config::FallbackEntry>& chain = fallback_->config.chain;
  for (size_t i = from; i < chain.size(); ++i) {
    const config::FallbackEntry& e = chain[i];
    switch (e.kind) {
      case config::FallbackEntry::Kind::Static:
        return true;
      case config::FallbackEntry::Kind::Stale: {
        uint64_t age = 0;
        if (cacheable_ && fallback_->stale->lookup(cacheKey(), cb_->requestHead(), age)) {
          return true;
        }
        break;
      }
      case config::FallbackEntry::Kind::Upstream: {
        if (why == config::FallbackReason::Degraded || !canResend()) {
          break;
        }
        upstream::WorkerClusterSharedPtr cl = ctx_.cluster(e.upstream);
        common::CircuitBreaker* br = cl ? cl->shared().breaker() : nullptr;
        if (cl && (br == nullptr || cl->config().circuit_breaker.shadow ||
                   (br->state() != common::CircuitBreaker::State::Open &&
                    br->state() != common::CircuitBreaker::State::ForcedOpen))) {
          return true;
        }
        break;
      }
    }
  }
  return false;
}

bool RouterFilter::serveStale(config::FallbackReason why) {
  if (!cacheable_) {
    return false;
  }
  uint64_t age = 0;
  http::CachedResponseConstSharedPtr r = fallback_->stale->lookup(cacheKey(), cb_->requestHead(), age);
  if (!r) {
    return false;
  }
  quiesce();
  http::ResponseHead head;
  buildStaleHead(*r, age, config::fallbackReasonName(why), head);
  answer(head, r->body, why, config::FallbackEntry::Kind::Stale);
  return true;
}

bool RouterFilter::canResend() const {
  if (!sent_upstream_) {
    return true;  // nothing left levee yet: any request may go elsewhere
  }
  const http::RequestHead& h = cb_->requestHead();
  return (isRetrySafe() || h.headers.has("idempotency-key")) && request_complete_ && retain_body_ &&
         body_retainable_;
}

bool RouterFilter::startFallbackUpstream(const config::FallbackEntry& entry, config::FallbackReason why,
                                         size_t index) {
  // Degradation protects the upstreams: its fallback answers from levee only.
  if (why == config::FallbackReason::Degraded || !canResend()) {
    return false;
  }
  upstream::WorkerClusterSharedPtr cl = ctx_.cluster(entry.upstream);
  if (!cl) {
    return false;
  }
  common::CircuitBreaker::Admission admission;
  bool has_admission = false;
  if (common::CircuitBreaker* br = cl->shared().breaker()) {
    admission = br->admit();
    if (!admission.allowed) {
      cl->shared().countRejected(false);
      return false;
    }
    if (admission.would_block) {
      cl->shared().countRejected(true);
    }
    has_admission = true;
  }
  quiesce();
  if (sent_upstream_) {
    body_buffer_ = retry_body_;  // the whole body, replayed on the new leg
  }
  cluster_ = std::move(cl);
  host_.reset();
  admission_ = admission;
  has_admission_ = has_admission;
  in_fallback_ = true;
  fallback_reason_ = why;
  fallback_next_ = index + 1;
  retry_cfg_ = nullptr;  // a fallback leg is tried once
  retried_ = false;
  response_started_ = false;
  response_status_ = 0;
  body_sent_ = 0;
  const std::chrono::milliseconds t = entry.timeout.count() > 0 ? entry.timeout : route_->route->timeout;
  has_deadline_ = t.count() > 0;
  if (has_deadline_) {
    timeout_deadline_.arm(cb_->dispatcher(), t);
    deadline_ms_ = cb_->dispatcher().nowMs() + static_cast<uint64_t>(t.count());
  }
  requestConnection();
  return true;
}

void RouterFilter::quiesce() {
  timeout_deadline_.cancel();
  if (backoff_timer_) {
    backoff_timer_->disable();
  }
  endRetryAttempt();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (conn_ != nullptr) {
    releaseConnection(false);
  }
  capture_.reset();
}

void RouterFilter::answer(http::ResponseHead& head, std::string_view body, config::FallbackReason why,
                          config::FallbackEntry::Kind kind) {
  fallback_->countServed(why, kind);
  http::StreamInfo& info = cb_->streamInfo();
  info.fallback = fallbackKindName(kind);
  info.reason = config::fallbackReasonName(why);
  const bool no_body = body.empty() || head_request_;
  cb_->encodeHeaders(head, no_body);
  if (no_body || destroyed_) {
    return;
  }
  cb_->encodeData(body.data(), body.size(), true);
}

const std::string& RouterFilter::cacheKey() {
  if (cache_key_.empty()) {
    cache_key_ = http::ResponseCache::keyFor(cb_->requestHead());
  }
  return cache_key_;
}

void RouterFilter::storeCapture() {
  if (capture_) {
    fallback_->stale->insert(cacheKey(), std::move(capture_));
    capture_.reset();
  }
}

}  // namespace levee::router
