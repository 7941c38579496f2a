#pragma once
// A listener's ordered routes, compiled once per config snapshot (regexes included), matched
// per request without allocation. First match wins.

#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string_view>
#include <vector>

#include "config/policy.h"
#include "proxy/common/retry_budget.h"
#include "proxy/http/header_map.h"
#include "proxy/router/fallback.h"
#include "proxy/stats/store.h"

namespace levee::router {

// Per-route retry machinery shared by all workers (built per snapshot by the server, kept
// across reloads while the route's retry block is unchanged).
struct RouteRetryState {
  std::shared_ptr<common::RetryBudget> budget;  // null: no budget configured
  stats::Counter* attempted{nullptr};           // levee_upstream_rq_retries_total{result="attempted"}
  stats::Counter* succeeded{nullptr};           // ... {result="succeeded"}: success after >= 1 retry
  stats::Counter* failed{nullptr};              // ... {result="failed"}: still failed after retries
  stats::Counter* budget_exhausted{nullptr};    // levee_retry_budget_exhausted_total{upstream}
};
using RouteRetryStateSharedPtr = std::shared_ptr<RouteRetryState>;

struct CompiledRoute {
  const config::Route* route{nullptr};
  std::optional<std::regex> regex;
  size_t index{0};  // position in the listener's route list
  RouteRetryStateSharedPtr retry;  // null when the route has no retry block
  RouteFallbackStateSharedPtr fallback;  // null when the route has no fallback block
};

class RouteTable {
public:
  using RetryStateFactory = std::function<RouteRetryStateSharedPtr(const config::Listener&, const config::Route&)>;
  using FallbackStateFactory =
      std::function<RouteFallbackStateSharedPtr(const config::Listener&, const config::Route&)>;
  // Keeps `policy` alive: routes point into it.
  RouteTable(config::PolicyConstSharedPtr policy, size_t listener_index,
             const RetryStateFactory& retry_states = {},
             const FallbackStateFactory& fallback_states = {});
  const CompiledRoute* match(const http::RequestHead& head) const;
  const config::Listener& listener() const { return policy_->listeners[listener_index_]; }
  const std::vector<CompiledRoute>& routes() const { return routes_; }
  const config::PolicyConstSharedPtr& policy() const { return policy_; }

private:
  config::PolicyConstSharedPtr policy_;
  size_t listener_index_;
  std::vector<CompiledRoute> routes_;
};
using RouteTableConstSharedPtr = std::shared_ptr<const RouteTable>;

// Host match: exact (case-insensitive) or "*.suffix" wildcard; `host` without port.
bool hostMatches(std::string_view pattern, std::string_view host);

}  // namespace levee::router
