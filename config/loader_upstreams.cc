// The `upstreams:` section: name -> endpoints, protocol, timeouts, load balancer, limits. The
// resilience blocks (circuit_breaker, outlier_detection, health_check, ...) are in
// loader_resilience.cc.

#include <limits>
#include <string_view>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr uint32_t kMaxUint32 = std::numeric_limits<uint32_t>::max();

void parseEndpoint(LoadContext& ctx, const Node& node, const std::string& path, Endpoint& endpoint,
                   bool& has_address) {
  MapReader m(ctx, node, path, "endpoint", {"address", "priority", "weight"});
  if (!m.ok()) {
    return;
  }
  if (const Node* address = m.require("address")) {
    has_address =
        readAddress(ctx, *address, m.path("address"), /*allow_dns_name=*/true, endpoint.address);
  }
  m.uint32("priority", 0, kMaxUint32, endpoint.priority);
  m.uint32("weight", 1, 1000, endpoint.weight);
}

void parseEndpoints(LoadContext& ctx, const Node& node, const std::string& path,
                    std::vector<Endpoint>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "an upstream needs at least one endpoint");
    return;
  }
  for (size_t i = 0; i < node.items.size(); ++i) {
    Endpoint endpoint;
    bool has_address = false;
    const std::string endpoint_path = indexPath(path, i);
    parseEndpoint(ctx, node.items[i], endpoint_path, endpoint, has_address);
    if (has_address) {
      const std::string text = endpoint.address.toString();
      for (size_t j = 0; j < out.size(); ++j) {
        if (out[j].address.toString() == text) {
          const Node* address = findValue(node.items[i], "address");
          ctx.error(address != nullptr ? *address : node.items[i],
                    childPath(endpoint_path, "address"),
                    "duplicate endpoint " + quoteText(text) + " (first listed at " +
                        indexPath(path, j) + ")");
          break;
        }
      }
    }
    out.push_back(std::move(endpoint));
  }
}

void parseUpstreamLimits(LoadContext& ctx, const Node& node, const std::string& path,
                         UpstreamLimits& limits) {
  MapReader m(ctx, node, path, "upstream_limits",
              {"max_connections", "max_pending", "max_requests"});
  if (!m.ok()) {
    return;
  }
  m.uint32("max_connections", 1, kMaxUint32, limits.max_connections);
  m.uint32("max_pending", 1, kMaxUint32, limits.max_pending);
  m.uint32("max_requests", 1, kMaxUint32, limits.max_requests);
}

std::string_view loadBalancerName(LoadBalancerKind kind) {
  switch (kind) {
    case LoadBalancerKind::RoundRobin:
      return "round_robin";
    case LoadBalancerKind::LeastRequest:
      return "least_request";
    case LoadBalancerKind::Random:
      return "random";
    case LoadBalancerKind::Hash:
      return "hash";
  }
  return "?";
}

// `load_balancer` and `hash_on`. `protocol_known`: upstream.protocol was read without error.
void parseLoadBalancing(LoadContext& ctx, const MapReader& m, bool protocol_known,
                        Upstream& upstream) {
  const Node* lb = m.find("load_balancer");
  const bool lb_known =
      lb == nullptr || m.choice("load_balancer",
                                {{"round_robin", LoadBalancerKind::RoundRobin},
                                 {"least_request", LoadBalancerKind::LeastRequest},
                                 {"random", LoadBalancerKind::Random},
                                 {"hash", LoadBalancerKind::Hash}},
                                upstream.load_balancer);
  const bool is_hash = upstream.load_balancer == LoadBalancerKind::Hash;
  if (lb_known && is_hash && protocol_known && upstream.protocol == UpstreamProtocol::Tcp) {
    ctx.error(*lb, m.path("load_balancer"),
              "load_balancer \"hash\" applies to http1 upstreams only (this upstream is tcp: it "
              "has no path, header or cookie to hash on; use round_robin, least_request or "
              "random)");
  }
  const Node* hash_on = m.find("hash_on");
  if (hash_on == nullptr) {
    return;  // load_balancer: hash alone hashes on the path
  }
  if (lb_known && !is_hash) {
    ctx.error(*hash_on, m.path("hash_on"),
              "hash_on needs load_balancer: hash (load_balancer is " +
                  std::string(loadBalancerName(upstream.load_balancer)) +
                  (lb == nullptr ? ", the default)" : ")"));
    return;
  }
  parseHashOn(ctx, *hash_on, m.path("hash_on"), upstream.hash_on);
}

void parseUpstream(LoadContext& ctx, const Node& node, const std::string& path,
                   Upstream& upstream) {
  MapReader m(ctx, node, path, "upstream",
              {"endpoints", "protocol", "connect_timeout", "idle_timeout", "load_balancer",
               "hash_on", "limits", "circuit_breaker", "outlier_detection", "health_check",
               "failover", "dns_refresh", "endpoints_from"});
  if (!m.ok()) {
    return;
  }
  // Checks that depend on the protocol are skipped when it is wrong (its error is enough).
  const bool protocol_known =
      m.find("protocol") == nullptr ||
      m.choice("protocol", {{"http1", UpstreamProtocol::Http1}, {"tcp", UpstreamProtocol::Tcp}},
               upstream.protocol);
  if (const Node* from = m.find("endpoints_from")) {
    if (m.find("endpoints") != nullptr) {
      ctx.error(*m.find("endpoints"), m.path("endpoints"),
                "an upstream has either static endpoints or endpoints_from, not both");
    } else if (protocol_known && upstream.protocol != UpstreamProtocol::Tcp) {
      ctx.error(*from, m.path("endpoints_from"),
                "endpoints_from applies to protocol: tcp upstreams (the L4 route to a database)");
    } else {
      parseEndpointsFrom(ctx, *from, m.path("endpoints_from"), upstream.endpoints_from);
    }
  } else if (const Node* endpoints = m.require("endpoints")) {
    parseEndpoints(ctx, *endpoints, m.path("endpoints"), upstream.endpoints);
  }
  m.duration("connect_timeout", upstream.connect_timeout);
  m.duration("idle_timeout", upstream.idle_timeout);
  parseLoadBalancing(ctx, m, protocol_known, upstream);
  if (const Node* limits = m.find("limits")) {
    parseUpstreamLimits(ctx, *limits, m.path("limits"), upstream.limits);
  }
  if (const Node* breaker = m.find("circuit_breaker")) {
    parseCircuitBreaker(ctx, *breaker, m.path("circuit_breaker"), upstream.circuit_breaker);
  }
  if (const Node* outlier = m.find("outlier_detection")) {
    parseOutlierDetection(ctx, *outlier, m.path("outlier_detection"),
                          upstream.outlier_detection);
  }
  if (const Node* health = m.find("health_check")) {
    if (protocol_known && upstream.protocol == UpstreamProtocol::Tcp) {
      ctx.error(*health, m.path("health_check"),
                "\"health_check\" applies to http1 upstreams only (this upstream is tcp; "
                "outlier_detection ejects tcp endpoints on connect failures, resets and "
                "timeouts)");
    } else {
      parseHealthCheck(ctx, *health, m.path("health_check"), upstream.health_check);
    }
  }
  if (const Node* failover = m.find("failover")) {
    parseFailover(ctx, *failover, m.path("failover"), upstream.failover);
  }
  m.duration("dns_refresh", upstream.dns_refresh);
}

}  // namespace

void parseUpstreams(LoadContext& ctx, const Node& node, const std::string& path,
                    std::map<std::string, Upstream>& out) {
  if (!node.isMap()) {
    ctx.error(node, path,
              "expected a mapping of upstream name to upstream, got " + describeNode(node));
    return;
  }
  for (const MapEntry& entry : node.entries) {
    const std::string upstream_path = childPath(path, entry.key);
    if (entry.key.empty()) {
      ctx.error(entry.key_line, entry.key_column, upstream_path,
                "upstream names must not be empty");
      continue;
    }
    if (out.contains(entry.key)) {
      ctx.error(entry.key_line, entry.key_column, upstream_path,
                "duplicate upstream " + quoteText(entry.key));
      continue;
    }
    Upstream upstream;
    upstream.name = entry.key;
    parseUpstream(ctx, entry.value, upstream_path, upstream);
    // Kept even when it has errors, so references to it do not also report "unknown upstream".
    out.emplace(entry.key, std::move(upstream));
  }
}

}  // namespace levee::config::detail
