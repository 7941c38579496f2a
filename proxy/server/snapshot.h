#pragma once
// An immutable, fully validated configuration: the policy plus everything compiled from it.
// Built on the main thread, handed to workers; a request keeps the one it started with.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/policy.h"
#include "filters/rate_limit/rate_limit_filter.h"
#include "proxy/router/route_table.h"
#include "proxy/upstream/host.h"
#include "proxy/upstream/host_health.h"
#include "proxy/upstream/upstream_shared.h"

namespace levee::server {

struct Snapshot {
  config::PolicyConstSharedPtr policy;
  std::vector<router::RouteTableConstSharedPtr> route_tables;  // per listener; null for tcp
  // Per-upstream resilience state shared by all workers (kept across reloads when unchanged).
  std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> upstreams;
  // Route rate limiters shared by all workers, keyed "listener|route".
  std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> rate_limits;
  std::chrono::system_clock::time_point loaded_at;
  uint64_t generation{0};
};
using SnapshotConstSharedPtr = std::shared_ptr<const Snapshot>;

SnapshotConstSharedPtr buildSnapshot(
    config::PolicyConstSharedPtr policy, uint64_t generation,
    std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> upstreams,
    std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> rate_limits,
    const router::RouteTable::RetryStateFactory& retry_states = {},
    const router::RouteTable::FallbackStateFactory& fallback_states = {});

// Endpoints of every upstream after resolution (IP literals at once, DNS names when answered),
// with their shared health flags.
using HostSets = std::map<std::string, upstream::HostHealthSharedPtr, std::less<>>;
using HostSetsConstSharedPtr = std::shared_ptr<const HostSets>;

}  // namespace levee::server
