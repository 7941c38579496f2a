#pragma once
// Per-stream facts gathered along the request path, for the access log and metrics.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace levee::http {

struct StreamInfo {
  std::chrono::steady_clock::time_point start;
  std::chrono::system_clock::time_point start_system;
  std::string request_id;
  std::string_view route_name;      // points into the stream's config snapshot
  std::string_view upstream_name;   // idem
  std::string_view downstream_ip;  // owned by the connection
  std::string endpoint;             // "ip:port" of the chosen upstream host
  std::string_view reason;          // local-reply reason, if any (static strings)
  int status{0};
  uint32_t attempts{0};
  uint64_t bytes_received{0};
  uint64_t bytes_sent{0};
  // Opaque per-route stats handle set by the router (bumped by the connection manager).
  void* route_stats{nullptr};
  // Route matched when the filter chain was built (router::CompiledRoute), and the snapshot
  // object that keeps it alive for the stream's lifetime.
  bool route_resolved{false};
  const void* route{nullptr};
  std::shared_ptr<const void> route_pin;
  // The route's `fallback.on` (config::FallbackReason bits), set when the chain is built, so a
  // filter before the router can hand a refusal to the route's fallback chain.
  uint32_t fallback_on{0};
  // A refusal handed to the router (rate limit, degradation) instead of replying: the router
  // runs the fallback chain for `fallback_reason` without touching the route's upstream, and
  // sends this local reply when no entry answers.
  struct DeferredReply {
    int status{503};
    std::string_view reason;    // static string
    uint32_t fallback_reason{0};  // one config::FallbackReason bit
    uint32_t retry_after_s{0};
    std::string extra_headers;  // complete "name: value\r\n" lines
  };
  std::optional<DeferredReply> deferred_reply;
  std::string_view fallback;  // the fallback kind that answered (stale, static, upstream)
};

}  // namespace levee::http
