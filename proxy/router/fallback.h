#pragma once
// Route fallback chain (DESIGN section 5 `fallback`): the shared per-route state (stale store,
// counters) and the responses its static and stale entries produce. The decisions (which
// failure runs the chain, upstream entries) live in the router (router_filter.cc), which owns
// the request's failure path.

#include <array>
#include <memory>
#include <string_view>

#include "config/policy.h"
#include "proxy/http/header_map.h"
#include "proxy/http/response_cache.h"
#include "proxy/stats/store.h"

namespace levee::router {

inline constexpr size_t kFallbackKinds = 3;  // stale, static, upstream
std::string_view fallbackKindName(config::FallbackEntry::Kind kind);

// Shared by every worker for one route; built on the main thread per snapshot and kept across
// reloads while the route's fallback block is unchanged (the stale store survives a reload).
struct RouteFallbackState {
  config::FallbackConfig config;
  http::ResponseCacheSharedPtr stale;  // null: the chain has no stale entry
  http::StalePolicy stale_policy;
  bool has_upstream_entry{false};  // the router keeps request bodies for a fallback upstream
  // levee_fallback_responses_total{route,reason,kind}, [reason index][kind]; registered for the
  // reasons in `on` (plus rate_limited/degraded, which filters may hand over) and the kinds in
  // the chain, null elsewhere.
  std::array<std::array<stats::Counter*, kFallbackKinds>, config::kFallbackReasonCount> served{};

  void countServed(config::FallbackReason reason, config::FallbackEntry::Kind kind) const;
};
using RouteFallbackStateSharedPtr = std::shared_ptr<RouteFallbackState>;

// Builds the state for `route` (counters registered in `store`).
RouteFallbackStateSharedPtr makeRouteFallbackState(const std::string& route,
                                                   const config::FallbackConfig& config,
                                                   const TimeSource& time, stats::Store& store);

// Fills `head` with a static entry's response (x-levee-fallback: static, x-levee-reason).
void buildStaticHead(const config::StaticFallbackConfig& s, std::string_view reason,
                     http::ResponseHead& head);
// Fills `head` with a stored response served stale (Age, x-levee-fallback: stale, x-levee-reason).
void buildStaleHead(const http::CachedResponse& r, uint64_t age_s, std::string_view reason,
                    http::ResponseHead& head);

}  // namespace levee::router
