#pragma once
// Route rate limit (DESIGN section 5 `rate_limit`): a token bucket per key (client IP, a
// header, or the whole route), exact across workers, in a bounded LRU table. Over the limit:
// 429 with Retry-After and the IETF RateLimit-Policy / RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers); `mode: shadow` admits everything and counts.

#include <memory>
#include <string>

#include "config/policy.h"
#include "proxy/api/http/filter.h"
#include "proxy/common/thread_cached.h"
#include "proxy/common/time_source.h"
#include "proxy/common/token_bucket.h"
#include "proxy/stats/store.h"

namespace levee::filters::rate_limit {

// Shared by every worker for one route; built on the main thread per policy snapshot and kept
// across reloads while the route's rate_limit block is unchanged.
class RateLimitState {
public:
  RateLimitState(std::string listener, std::string route, const config::RateLimitConfig& config,
                 bool trust_forwarded, const TimeSource& time, stats::Store& store);
  const config::RateLimitConfig& config() const { return config_; }
  const std::string& route() const { return route_; }
  bool trustForwarded() const { return trust_forwarded_; }
  common::RateLimiter& limiter() { return limiter_; }
  void countLimited() { limited_->inc(); }
  bool sameConfig(const config::RateLimitConfig& other, bool trust_forwarded) const;

private:
  std::string listener_;
  std::string route_;
  config::RateLimitConfig config_;
  bool trust_forwarded_;
  common::RateLimiter limiter_;
  stats::Counter* limited_;
};
using RateLimitStateSharedPtr = std::shared_ptr<RateLimitState>;

class RateLimitFilter final : public http::DecoderFilter, public common::ThreadCached<RateLimitFilter> {
public:
  explicit RateLimitFilter(RateLimitStateSharedPtr state) : state_(std::move(state)) {}
  void setDecoderCallbacks(http::DecoderFilterCallbacks& cb) override { cb_ = &cb; }
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  http::FilterDataStatus decodeData(const char*, size_t, bool) override {
    return http::FilterDataStatus::Continue;
  }
  void onDestroy() override {}

  // The bucket key of a request (exposed for tests): a view into `head` or `peer_ip`.
  static std::string_view keyFor(const config::RateLimitConfig& c, bool trust_forwarded,
                                 const http::RequestHead& head, std::string_view peer_ip);

private:
  RateLimitStateSharedPtr state_;
  http::DecoderFilterCallbacks* cb_{nullptr};
};

}  // namespace levee::filters::rate_limit
