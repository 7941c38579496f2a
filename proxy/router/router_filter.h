#pragma once
// The terminal filter: route match -> upstream cluster -> pooled connection -> forward the
// request, stream the response back. Timeouts and failures end in the one local-reply path.
// Retries, breakers and fallbacks plug in here in later issues (see README of proxy/router).

#include <memory>
#include <string>

#include "proxy/api/http/filter.h"
#include "proxy/event/dispatcher.h"
#include "proxy/router/route_table.h"
#include "proxy/common/circuit_breaker.h"
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

class RouterFilter final : public http::DecoderFilter,
                           public upstream::PoolCallbacks,
                           public upstream::UpstreamStreamCallbacks {
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
  event::TimerPtr timeout_timer_;
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
  event::TimerPtr per_try_timer_;
  event::TimerPtr backoff_timer_;
  bool has_deadline_{false};
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace levee::router
