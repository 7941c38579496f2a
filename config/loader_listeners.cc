// The `listeners:` section: listeners, their routes and route matches, and HTTP limits.

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <map>
#include <regex>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr size_t kMaxRegexLength = 1024;

// std::regex reports a bad pattern by throwing; the exception is caught right here and becomes a
// message (no exception leaves config/). The router compiles the pattern again, once per snapshot.
std::string regexError(const std::string& pattern) {
  try {
    std::regex compiled(pattern, std::regex::ECMAScript);
    (void)compiled;
    return {};
  } catch (const std::regex_error& e) {
    return e.what();
  }
}

// A Host header pattern: "api.example.com", "*.example.com" (leading wildcard label only).
bool isHostPattern(std::string_view host) {
  if (host.starts_with("*.")) {
    host.remove_prefix(2);
  }
  if (host.empty() || host.front() == '.' || host.back() == '.') {
    return false;
  }
  return std::ranges::all_of(host, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
  });
}

void parsePathMatch(LoadContext& ctx, const MapReader& m, RouteMatch& match) {
  static constexpr std::array<std::pair<std::string_view, RouteMatch::PathKind>, 3> kKinds{{
      {"path", RouteMatch::PathKind::Exact},
      {"prefix", RouteMatch::PathKind::Prefix},
      {"regex", RouteMatch::PathKind::Regex},
  }};
  std::string_view first_kind;
  for (const auto& [key, kind] : kKinds) {
    const Node* value = m.find(key);
    if (value == nullptr) {
      continue;
    }
    if (!first_kind.empty()) {
      ctx.error(*value, m.path(key),
                "at most one of \"path\", \"prefix\" and \"regex\" may be set (\"" +
                    std::string(first_kind) + "\" is already set)");
      continue;
    }
    first_kind = key;
    std::string text;
    if (!readString(ctx, *value, m.path(key), text)) {
      continue;
    }
    if (kind == RouteMatch::PathKind::Regex) {
      // libstdc++'s regex compiler and matcher recurse; a bounded pattern keeps both cheap.
      if (text.size() > kMaxRegexLength) {
        ctx.error(*value, m.path(key),
                  "regex longer than " + std::to_string(kMaxRegexLength) + " characters");
        continue;
      }
      const std::string error = regexError(text);
      if (!error.empty()) {
        ctx.error(*value, m.path(key), "invalid regex " + quoteText(text) + ": " + error);
        continue;
      }
    } else if (text.front() != '/') {
      ctx.error(*value, m.path(key), "must start with \"/\", got " + quoteText(text));
      continue;
    }
    match.path_kind = kind;
    match.path = std::move(text);
  }
}

void parseMethods(LoadContext& ctx, const Node& node, const std::string& path,
                  std::vector<std::string>& out) {
  parseMethodList(ctx, node, path, out, "omit \"methods\" to match any method");
}

void parseHeaders(LoadContext& ctx, const Node& node, const std::string& path,
                  std::vector<HeaderMatch>& out) {
  if (!node.isMap()) {
    ctx.error(node, path, "expected a mapping of header name to value, got " + describeNode(node));
    return;
  }
  for (const MapEntry& entry : node.entries) {
    const std::string entry_path = childPath(path, entry.key);
    if (!isToken(entry.key)) {
      ctx.error(entry.key_line, entry.key_column, entry_path,
                "invalid header name " + quoteText(entry.key));
      continue;
    }
    std::string name = toLower(entry.key);
    if (std::ranges::any_of(out, [&](const HeaderMatch& h) { return h.name == name; })) {
      ctx.error(entry.key_line, entry.key_column, entry_path,
                "duplicate header " + quoteText(name) + " (header names are case-insensitive)");
      continue;
    }
    if (!entry.value.isScalar()) {
      ctx.error(entry.value, entry_path,
                "expected the exact header value as a string, got " + describeNode(entry.value));
      continue;
    }
    out.push_back(HeaderMatch{std::move(name), entry.value.scalar});
  }
}

void parseMatch(LoadContext& ctx, const Node& node, const std::string& path, RouteMatch& match) {
  MapReader m(ctx, node, path, "match", {"path", "prefix", "regex", "methods", "headers", "host"});
  if (!m.ok()) {
    return;
  }
  parsePathMatch(ctx, m, match);
  if (const Node* methods = m.find("methods")) {
    parseMethods(ctx, *methods, m.path("methods"), match.methods);
  }
  if (const Node* headers = m.find("headers")) {
    parseHeaders(ctx, *headers, m.path("headers"), match.headers);
  }
  std::string host;
  if (m.string("host", host)) {
    const Node& value = *m.find("host");
    host = toLower(host);
    if (host.find(':') != std::string::npos) {
      ctx.error(value, m.path("host"), "must not include a port, got " + quoteText(value.scalar));
    } else if (!isHostPattern(host)) {
      ctx.error(value, m.path("host"),
                "invalid host " + quoteText(value.scalar) +
                    " (expected a host name, optionally with a leading \"*.\" wildcard)");
    } else {
      match.host = std::move(host);
    }
  }
}

// The route timeout bounds the whole request, every attempt included: a try allowed to run as
// long as the request leaves no time for a retry. Both values are set only when they parsed.
void checkPerTryTimeout(LoadContext& ctx, const Node& retry, const std::string& retry_path,
                        const Route& route) {
  const Duration per_try = route.retry.per_try_timeout;
  if (per_try == Duration::zero() || route.timeout == Duration::zero() ||
      per_try < route.timeout) {
    return;
  }
  const Node* value = findValue(retry, "per_try_timeout");
  ctx.error(value != nullptr ? *value : retry, childPath(retry_path, "per_try_timeout"),
            "per_try_timeout (" + durationText(per_try) +
                ") must be less than the route timeout (" + durationText(route.timeout) +
                "): the route timeout bounds all attempts, so no retry would fit");
}

void parseRoute(LoadContext& ctx, const Node& node, const std::string& path, Route& route) {
  MapReader r(ctx, node, path, "route",
              {"name", "match", "upstream", "tier", "timeout", "retry", "rate_limit", "fallback",
               "fault"});
  if (!r.ok()) {
    return;
  }
  if (const Node* name = r.require("name")) {
    readString(ctx, *name, r.path("name"), route.name);
  }
  if (const Node* match = r.find("match")) {
    parseMatch(ctx, *match, r.path("match"), route.match);
  }
  if (const Node* upstream = r.require("upstream")) {
    if (readString(ctx, *upstream, r.path("upstream"), route.upstream)) {
      ctx.addReference(UpstreamReference{route.upstream, UpstreamProtocol::Http1, "route",
                                         upstream->line, upstream->column, r.path("upstream")});
    }
  }
  r.choice("tier", {{"core", RouteTier::Core}, {"noncore", RouteTier::NonCore}}, route.tier);
  r.duration("timeout", route.timeout);
  if (const Node* retry = r.find("retry")) {
    parseRetry(ctx, *retry, r.path("retry"), route.retry);
    checkPerTryTimeout(ctx, *retry, r.path("retry"), route);
  }
  if (const Node* rate_limit = r.find("rate_limit")) {
    parseRateLimit(ctx, *rate_limit, r.path("rate_limit"), route.rate_limit);
  }
  if (const Node* fallback = r.find("fallback")) {
    parseFallback(ctx, *fallback, r.path("fallback"), route.upstream, route.fallback);
  }
  if (const Node* fault = r.find("fault")) {
    parseFault(ctx, *fault, r.path("fault"), route.fault);
  }
}

void parseRoutes(LoadContext& ctx, const Node& node, const std::string& path,
                 std::vector<Route>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "an http listener needs at least one route");
    return;
  }
  std::map<std::string, size_t> seen;  // name -> index of its first route
  for (size_t i = 0; i < node.items.size(); ++i) {
    Route route;
    const std::string route_path = indexPath(path, i);
    parseRoute(ctx, node.items[i], route_path, route);
    if (!route.name.empty()) {
      auto [it, inserted] = seen.emplace(route.name, i);
      if (!inserted) {
        const Node* name = findValue(node.items[i], "name");
        ctx.error(name != nullptr ? *name : node.items[i], childPath(route_path, "name"),
                  "duplicate route name " + quoteText(route.name) + " (first used at " +
                      indexPath(path, it->second) + ")");
      }
    }
    out.push_back(std::move(route));
  }
}

void parseHttpLimits(LoadContext& ctx, const Node& node, const std::string& path,
                     HttpLimits& limits) {
  MapReader m(
      ctx, node, path, "listener_limits",
      {"max_header_bytes", "max_headers", "header_timeout", "max_body_bytes", "idle_timeout"});
  if (!m.ok()) {
    return;
  }
  uint64_t header_bytes = 0;
  if (m.byteSize("max_header_bytes", std::numeric_limits<uint32_t>::max(), header_bytes)) {
    if (header_bytes == 0) {
      ctx.error(*m.find("max_header_bytes"), m.path("max_header_bytes"), "must be greater than 0");
    } else {
      limits.max_header_bytes = static_cast<uint32_t>(header_bytes);
    }
  }
  m.uint32("max_headers", 1, std::numeric_limits<uint32_t>::max(), limits.max_headers);
  m.duration("header_timeout", limits.header_timeout);
  m.byteSize("max_body_bytes", std::numeric_limits<uint64_t>::max(), limits.max_body_bytes);
  m.duration("idle_timeout", limits.idle_timeout);
}

void parseListener(LoadContext& ctx, const Node& node, const std::string& path,
                   Listener& listener) {
  MapReader r(ctx, node, path, "listener",
              {"name", "address", "protocol", "direction", "routes", "upstream", "limits",
               "trust_forwarded"});
  if (!r.ok()) {
    return;
  }
  if (const Node* name = r.require("name")) {
    readString(ctx, *name, r.path("name"), listener.name);
  }
  if (const Node* address = r.require("address")) {
    if (readAddress(ctx, *address, r.path("address"), /*allow_dns_name=*/false, listener.address)) {
      ctx.addBoundAddress(BoundAddress{listener.address, "listener " + quoteText(listener.name),
                                       address->line, address->column, r.path("address")});
    }
  }
  if (r.find("direction") != nullptr) {
    r.choice("direction",
             {{"inbound", ListenerDirection::Inbound}, {"outbound", ListenerDirection::Outbound}},
             listener.direction);
  }
  if (r.find("protocol") != nullptr &&
      !r.choice("protocol", {{"http", ListenerProtocol::Http}, {"tcp", ListenerProtocol::Tcp}},
                listener.protocol)) {
    return;  // the rest depends on the protocol; its error is enough
  }
  if (listener.protocol == ListenerProtocol::Http) {
    if (const Node* upstream = r.find("upstream")) {
      ctx.error(*upstream, r.path("upstream"),
                "an http listener forwards through \"routes\", not \"upstream\" (\"upstream\" is "
                "for protocol: tcp)");
    }
    if (const Node* routes = r.require("routes")) {
      parseRoutes(ctx, *routes, r.path("routes"), listener.routes);
    }
    if (const Node* limits = r.find("limits")) {
      parseHttpLimits(ctx, *limits, r.path("limits"), listener.limits);
    }
    r.boolean("trust_forwarded", listener.trust_forwarded);
    return;
  }
  for (std::string_view http_only : {"routes", "limits", "trust_forwarded"}) {
    if (const Node* value = r.find(http_only)) {
      ctx.error(*value, r.path(http_only),
                quoteText(http_only) + " applies to http listeners only (this listener is tcp)");
    }
  }
  if (const Node* upstream = r.require("upstream")) {
    if (readString(ctx, *upstream, r.path("upstream"), listener.upstream)) {
      ctx.addReference(UpstreamReference{listener.upstream, UpstreamProtocol::Tcp, "tcp listener",
                                         upstream->line, upstream->column, r.path("upstream")});
    }
  }
}

}  // namespace

void parseListeners(LoadContext& ctx, const Node& node, const std::string& path,
                    std::vector<Listener>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "at least one listener is required");
    return;
  }
  std::map<std::string, size_t> seen;  // name -> index of its first listener
  for (size_t i = 0; i < node.items.size(); ++i) {
    Listener listener;
    const std::string listener_path = indexPath(path, i);
    parseListener(ctx, node.items[i], listener_path, listener);
    if (!listener.name.empty()) {
      auto [it, inserted] = seen.emplace(listener.name, i);
      if (!inserted) {
        const Node* name = findValue(node.items[i], "name");
        ctx.error(name != nullptr ? *name : node.items[i], childPath(listener_path, "name"),
                  "duplicate listener name " + quoteText(listener.name) + " (first used at " +
                      indexPath(path, it->second) + ")");
      }
    }
    out.push_back(std::move(listener));
  }
}

}  // namespace levee::config::detail
