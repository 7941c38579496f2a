#include "proxy/router/fallback.h"

#include <string>

namespace levee::router {
namespace {

constexpr std::array<config::FallbackReason, config::kFallbackReasonCount> kAllReasons{
    config::FallbackReason::BreakerOpen, config::FallbackReason::NoHealthyUpstream,
    config::FallbackReason::ConnectFailure, config::FallbackReason::Reset,
    config::FallbackReason::Timeout, config::FallbackReason::Upstream5xx,
    config::FallbackReason::Overflow, config::FallbackReason::RateLimited,
    config::FallbackReason::Degraded};

size_t kindIndex(config::FallbackEntry::Kind kind) { return static_cast<size_t>(kind); }

}  // namespace

std::string_view fallbackKindName(config::FallbackEntry::Kind kind) {
  switch (kind) {
    case config::FallbackEntry::Kind::Stale:
      return "stale";
    case config::FallbackEntry::Kind::Static:
      return "static";
    case config::FallbackEntry::Kind::Upstream:
      return "upstream";
  }
  return "static";
}

void RouteFallbackState::countServed(config::FallbackReason reason,
                                     config::FallbackEntry::Kind kind) const {
  if (stats::Counter* c = served[config::fallbackReasonIndex(reason)][kindIndex(kind)]) {
    c->inc();
  }
}

RouteFallbackStateSharedPtr makeRouteFallbackState(const std::string& route,
                                                   const config::FallbackConfig& config,
                                                   const TimeSource& time, stats::Store& store) {
  auto st = std::make_shared<RouteFallbackState>();
  st->config = config;
  std::array<bool, kFallbackKinds> kinds{};
  for (const config::FallbackEntry& e : config.chain) {
    kinds[kindIndex(e.kind)] = true;
    if (e.kind == config::FallbackEntry::Kind::Stale) {
      st->stale = std::make_shared<http::ResponseCache>(e.stale.max_bytes, e.stale.max_entries, time);
      st->stale_policy = {e.stale.max_stale, e.stale.max_entry_bytes, e.stale.allow_authorized};
    }
    if (e.kind == config::FallbackEntry::Kind::Upstream) {
      st->has_upstream_entry = true;
    }
  }
  for (config::FallbackReason r : kAllReasons) {
    if (!config.wants(r)) {
      continue;
    }
    for (size_t k = 0; k < kFallbackKinds; ++k) {
      if (!kinds[k]) {
        continue;
      }
      auto kind = static_cast<config::FallbackEntry::Kind>(k);
      st->served[config::fallbackReasonIndex(r)][k] = &store.counter(
          "levee_fallback_responses_total", "Responses answered by a route's fallback chain.",
          {{"route", route},
           {"reason", std::string(config::fallbackReasonName(r))},
           {"kind", std::string(fallbackKindName(kind))}});
    }
  }
  return st;
}

void buildStaticHead(const config::StaticFallbackConfig& s, std::string_view reason,
                     http::ResponseHead& head) {
  head.clear();
  head.status = s.status;
  for (const auto& [name, value] : s.headers) {
    head.headers.add(name, value);
  }
  head.headers.add("x-levee-fallback", "static");
  head.headers.add("x-levee-reason", reason);
  head.has_content_length = true;
  head.content_length = s.body.size();
}

void buildStaleHead(const http::CachedResponse& r, uint64_t age_s, std::string_view reason,
                    http::ResponseHead& head) {
  head.clear();
  head.status = r.status;
  for (const auto& [name, value] : r.headers) {
    head.headers.add(name, value);
  }
  head.headers.add("age", std::to_string(age_s));
  head.headers.add("x-levee-fallback", "stale");
  head.headers.add("x-levee-reason", reason);
  head.has_content_length = true;
  head.content_length = r.body.size();
}

}  // namespace levee::router
