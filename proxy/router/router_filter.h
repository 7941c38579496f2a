#pragma once
// The terminal filter: route match -> upstream cluster -> pooled connection -> forward the
// request, stream the response back. Timeouts and failures end in the one local-reply path.
// Retries, breakers and fallbacks plug in here in later issues (see README of proxy/router).

#include <memory>
#include <string>

#include "proxy/api/http/filter.h"
#include "proxy/event/deadline.h"
#include "proxy/event/dispatcher.h"
#include "proxy/router/route_table.h"
#include "proxy/common/circuit_breaker.h"
#include "proxy/common/thread_cached.h"
#include "proxy/upstream/conn_pool.h"

namespace levee::router {

// Per listener, per worker: what the router needs from the wiring.
class RouterContext {
public:
  virtual ~RouterContext() = default;
  virtual RouteTableConstSharedPtr routeTable() = 0;
  virtual upstream::WorkerClusterSharedPtr cluster(const std::string& name) = 0;
  // Opaque per-route stats handle stored in StreamInfo::route_stats.
  virtual void* routeStats(const RouteTable& table, const CompiledRoute& route) = 0;
  // A per-worker random number (backoff jitter).
  virtual uint64_t random() = 0;
};

// One per request; its memory is recycled per thread (common::ThreadCached).
class RouterFilter final : public http::DecoderFilter,
                           public upstream::PoolCallbacks,
                           public upstream::UpstreamStreamCallbacks,
                           public common::ThreadCached<RouterFilter> {
public:
  explicit RouterFilter(RouterContext& ctx) : ctx_(ctx) {}
  ~RouterFilter() override;

  // DecoderFilter
  void setDecoderCallbacks(http::DecoderFilterCallbacks& cb) override { cb_ = &cb; }
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  http::FilterDataStatus decodeData(const char* data, size_t len, bool end_stream) override;
  void decodeTunnelEof() override;
  void onDownstreamWatermark(bool above) override;
  void onDestroy() override;

  // PoolCallbacks
  void onPoolReady(upstream::UpstreamConnection& conn) override;
  void onPoolFailure(upstream::PoolFailure reason, std::string_view detail) override;

  // UpstreamStreamCallbacks
  void onUpstreamInformational(http::ResponseHead& head) override;
  void onUpstreamHeaders(http::ResponseHead& head, bool end_stream) override;
  void onUpstreamData(const char* data, size_t len, bool end_stream) override;
  void onUpstreamReset(std::string_view detail, bool response_started) override;
  void onUpstreamWriteDrained() override;
  void onUpstreamTunnelEof() override;

private:
  void requestConnection();
  void writeBody(const char* data, size_t len, bool end_stream);
  void onTimeout();
  void finishExchange(bool reusable);
  void releaseConnection(bool reusable);
  void localReply(int status, std::string_view reason, std::string_view detail, uint32_t retry_after_s = 0);
  bool isRetrySafe() const;
  uint64_t hashKey(const http::RequestHead& head) const;
  // Retries (route `retry`). A failed attempt either schedules another one (true) or the
  // caller reports the failure.
  enum class FailureKind { ConnectFailure, Reset, Timeout, Status };
  bool maybeRetry(FailureKind kind, int status, std::string_view retry_after);
  bool isMethodRetriable() const;
  void onBackoffElapsed();
  void onPerTryTimeout();
  void endRetryAttempt();
  void countFinal(bool success);
  // Reports how the attempt ended to the breaker and outlier detection (once per attempt).
  void recordOutcome(upstream::AttemptOutcome outcome, int status);
  // Fallback (route `fallback`, fallback.h). fail() ends the request after a failure: the
  // fallback chain when the route wants it for `why` (or, during a fallback upstream leg, the
  // rest of the chain), else the local reply.
  void fail(config::FallbackReason why, int status, std::string_view reason, std::string_view detail,
            uint32_t retry_after_s = 0);
  // Tries chain entries from `from` on; true when one answers or a fallback upstream leg started.
  bool runFallback(config::FallbackReason why, size_t from);
  // True when an entry from `from` on would answer now (so a 5xx is worth dropping).
  bool chainCanAnswer(config::FallbackReason why, size_t from);
  bool serveStale(config::FallbackReason why);
  bool startFallbackUpstream(const config::FallbackEntry& entry, config::FallbackReason why, size_t index);
  // May another upstream get this request? (nothing sent yet, or a replayable request in hand)
  bool canResend() const;
  void answer(http::ResponseHead& head, std::string_view body, config::FallbackReason why,
              config::FallbackEntry::Kind kind);
  // Stops timers, pool requests and the connection of the current leg.
  void quiesce();
  // The stale store key of this request (built on first use: only captures and lookups need it).
  const std::string& cacheKey();
  void storeCapture();

  RouterContext& ctx_;
  http::DecoderFilterCallbacks* cb_{nullptr};
  RouteTableConstSharedPtr table_;  // pins the snapshot for the request's lifetime
  const CompiledRoute* route_{nullptr};
  upstream::WorkerClusterSharedPtr cluster_;
  upstream::Cancellable* pending_{nullptr};
  upstream::UpstreamConnection* conn_{nullptr};
  upstream::HostConstSharedPtr host_;
  std::string upstream_head_;
  std::string body_buffer_;  // request body received before the connection was ready
  // Route (or fallback entry) timeout: shared per-duration queues, no timer per request.
  event::Deadline timeout_deadline_{[](void* self) { static_cast<RouterFilter*>(self)->onTimeout(); }, this};
  uint64_t body_sent_{0};
  bool request_complete_{false};
  bool chunked_{false};
  bool head_request_{false};
  bool response_started_{false};
  bool response_started_forwarded_{false};
  bool tunnel_{false};
  bool read_disabled_{false};
  bool upstream_read_disabled_{false};
  bool destroyed_{false};
  bool retried_{false};
  bool counted_{false};
  bool outcome_recorded_{true};
  int response_status_{0};
  common::CircuitBreaker::Admission admission_;
  bool has_admission_{false};
  std::chrono::steady_clock::time_point attempt_start_;
  // Retry state.
  const config::RetryConfig* retry_cfg_{nullptr};
  RouteRetryStateSharedPtr retry_state_;
  std::string retry_body_;        // the whole request body while it fits in max_body_bytes
  bool body_retainable_{true};
  uint32_t retries_{0};
  bool retry_budget_held_{false};
  bool budget_request_counted_{false};
  bool final_counted_{false};
  event::Deadline per_try_deadline_{[](void* self) { static_cast<RouterFilter*>(self)->onPerTryTimeout(); },
                                    this};
  event::TimerPtr backoff_timer_;
  bool has_deadline_{false};
  uint64_t deadline_ms_{0};  // when timeout_deadline_ fires, in the dispatcher's loop time
  // Fallback state.
  const RouteFallbackState* fallback_{nullptr};  // the route's (pinned by table_); null: none
  bool cacheable_{false};                        // GET/HEAD on a route with a stale entry
  std::string cache_key_;                        // built by cacheKey() on first use

  http::CachedResponseSharedPtr capture_;        // the response being recorded for the store
  bool retain_body_{false};   // keep the request body for a retry or a fallback upstream
  bool sent_upstream_{false};  // a request head went to some upstream
  bool in_fallback_{false};    // the current leg is a fallback upstream
  config::FallbackReason fallback_reason_{config::FallbackReason::Upstream5xx};
  size_t fallback_next_{0};    // the chain entry after the current fallback upstream
};

}  // namespace levee::router
