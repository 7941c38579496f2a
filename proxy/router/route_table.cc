#include "proxy/router/route_table.h"

namespace levee::router {

RouteTable::RouteTable(config::PolicyConstSharedPtr policy, size_t listener_index,
                       const RetryStateFactory& retry_states,
                       const FallbackStateFactory& fallback_states)
    : policy_(std::move(policy)), listener_index_(listener_index) {
  const auto& routes = policy_->listeners[listener_index_].routes;
  routes_.reserve(routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    CompiledRoute cr;
    cr.route = &routes[i];
    cr.index = i;
    if (routes[i].match.path_kind == config::RouteMatch::PathKind::Regex) {
      // Validated by the loader; compiled here once per snapshot, never per request.
      cr.regex.emplace(routes[i].match.path, std::regex::ECMAScript | std::regex::optimize);
    }
    if (routes[i].retry.enabled && retry_states) {
      cr.retry = retry_states(policy_->listeners[listener_index_], routes[i]);
    }
    if (routes[i].fallback.enabled && fallback_states) {
      cr.fallback = fallback_states(policy_->listeners[listener_index_], routes[i]);
    }
    routes_.push_back(std::move(cr));
  }
}

bool hostMatches(std::string_view pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() &&
           http::equalsIgnoreCase(host.substr(host.size() - suffix.size()), suffix);
  }
  return http::equalsIgnoreCase(pattern, host);
}

const CompiledRoute* RouteTable::match(const http::RequestHead& head) const {
  std::string_view path = head.path();
  for (const auto& cr : routes_) {
    const config::RouteMatch& m = cr.route->match;
    switch (m.path_kind) {
      case config::RouteMatch::PathKind::Any:
        break;
      case config::RouteMatch::PathKind::Exact:
        if (path != m.path) {
          continue;
        }
        break;
      case config::RouteMatch::PathKind::Prefix:
        if (!path.starts_with(m.path)) {
          continue;
        }
        break;
      case config::RouteMatch::PathKind::Regex:
        if (!std::regex_match(path.begin(), path.end(), *cr.regex)) {
          continue;
        }
        break;
    }
    if (!m.methods.empty()) {
      bool ok = false;
      for (const auto& meth : m.methods) {
        ok = ok || meth == head.method;
      }
      if (!ok) {
        continue;
      }
    }
    if (!m.host.empty() && !hostMatches(m.host, head.host())) {
      continue;
    }
    bool headers_ok = true;
    for (const auto& hm : m.headers) {
      const http::HeaderMap::Entry* e = head.headers.find(hm.name);
      if (e == nullptr || head.headers.get(hm.name) != hm.value) {
        headers_ok = false;
        break;
      }
    }
    if (!headers_ok) {
      continue;
    }
    return &cr;
  }
  return nullptr;
}

}  // namespace levee::router
