#pragma once
// A listener's ordered routes, compiled once per config snapshot (regexes included), matched
// per request without allocation. First match wins.

#include <memory>
#include <optional>
#include <regex>
#include <string_view>
#include <vector>

#include "config/policy.h"
#include "proxy/http/header_map.h"

namespace levee::router {

struct CompiledRoute {
  const config::Route* route{nullptr};
  std::optional<std::regex> regex;
  size_t index{0};  // position in the listener's route list
};

class RouteTable {
public:
  // Keeps `policy` alive: routes point into it.
  RouteTable(config::PolicyConstSharedPtr policy, size_t listener_index);
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
