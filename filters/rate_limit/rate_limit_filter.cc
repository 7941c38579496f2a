#include "filters/rate_limit/rate_limit_filter.h"

#include <cmath>

#include "proxy/http/header_map.h"
#include "proxy/http/stream_info.h"

namespace levee::filters::rate_limit {

RateLimitState::RateLimitState(std::string listener, std::string route, const config::RateLimitConfig& config,
                               bool trust_forwarded, const TimeSource& time, stats::Store& store)
    : listener_(std::move(listener)), route_(std::move(route)), config_(config),
      trust_forwarded_(trust_forwarded),
      limiter_(config.rate_per_second, config.burst, config.max_keys, time),
      limited_(&store.counter("levee_rate_limited_total",
                              "Requests over a route's rate limit (shadow: would have been limited).",
                              {{"route", route_}, {"mode", config.shadow ? "shadow" : "enforce"}})) {}

bool RateLimitState::sameConfig(const config::RateLimitConfig& o, bool trust_forwarded) const {
  return o == config_ && trust_forwarded == trust_forwarded_;
}

std::string_view RateLimitFilter::keyFor(const config::RateLimitConfig& c, bool trust_forwarded,
                                    const http::RequestHead& head, std::string_view peer_ip) {
  switch (c.key) {
    case config::RateLimitConfig::Key::Route:
      return {};
    case config::RateLimitConfig::Key::Header:
      return head.headers.get(c.header);
    case config::RateLimitConfig::Key::ClientIp:
      break;
  }
  if (trust_forwarded) {
    // The first hop of X-Forwarded-For is the original client, when the listener trusts it.
    std::string_view xff = head.headers.get("x-forwarded-for");
    if (!xff.empty()) {
      std::string_view first = xff.substr(0, xff.find(','));
      while (!first.empty() && first.front() == ' ') {
        first.remove_prefix(1);
      }
      while (!first.empty() && first.back() == ' ') {
        first.remove_suffix(1);
      }
      if (!first.empty()) {
        return first;
      }
    }
  }
  return peer_ip;
}

http::FilterHeadersStatus RateLimitFilter::decodeHeaders(http::RequestHead& head, bool) {
  const config::RateLimitConfig& c = state_->config();
  const std::string_view key = keyFor(c, state_->trustForwarded(), head, cb_->streamInfo().downstream_ip);
  common::TokenBucket::Decision d = state_->limiter().take(key);
  if (d.allowed) {
    return http::FilterHeadersStatus::Continue;
  }
  state_->countLimited();
  if (c.shadow) {
    return http::FilterHeadersStatus::Continue;
  }
  auto secs = [](std::chrono::milliseconds ms) {
    return static_cast<uint32_t>(std::max<int64_t>(1, (ms.count() + 999) / 1000));
  };
  // draft-ietf-httpapi-ratelimit-headers: the policy (quota q over window w seconds) and the
  // current state (r remaining, t seconds until the quota is fully available again).
  uint32_t window = static_cast<uint32_t>(std::max(1.0, std::ceil(c.burst / std::max(c.rate_per_second, 1e-9))));
  std::string extra = "ratelimit-policy: \"" + state_->route() + "\";q=" + std::to_string(c.burst) +
                      ";w=" + std::to_string(window) + "\r\nratelimit: \"" + state_->route() +
                      "\";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(secs(d.reset)) + "\r\n";
  http::StreamInfo& info = cb_->streamInfo();
  constexpr auto kRateLimited = static_cast<uint32_t>(config::FallbackReason::RateLimited);
  if ((info.fallback_on & kRateLimited) != 0) {
    // The route's fallback chain answers first (the upstream is not touched); this 429 is sent
    // when no entry answers.
    info.deferred_reply = http::StreamInfo::DeferredReply{429, "rate_limited", kRateLimited,
                                                          secs(d.retry_after), std::move(extra)};
    return http::FilterHeadersStatus::Continue;
  }
  cb_->sendLocalReply(429, "rate_limited", "rate limit exceeded", secs(d.retry_after), extra);
  return http::FilterHeadersStatus::StopIteration;
}

}  // namespace levee::filters::rate_limit
