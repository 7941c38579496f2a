#include "proxy/server/snapshot.h"

namespace levee::server {

SnapshotConstSharedPtr buildSnapshot(
    config::PolicyConstSharedPtr policy, uint64_t generation,
    std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> upstreams,
    std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> rate_limits,
    const router::RouteTable::RetryStateFactory& retry_states,
    const router::RouteTable::FallbackStateFactory& fallback_states) {
  auto s = std::make_shared<Snapshot>();
  s->upstreams = std::move(upstreams);
  s->rate_limits = std::move(rate_limits);
  s->policy = policy;
  s->loaded_at = std::chrono::system_clock::now();
  s->generation = generation;
  for (size_t i = 0; i < policy->listeners.size(); ++i) {
    if (policy->listeners[i].protocol == config::ListenerProtocol::Http) {
      s->route_tables.push_back(std::make_shared<const router::RouteTable>(policy, i, retry_states,
                                                                            fallback_states));
    } else {
      s->route_tables.push_back(nullptr);
    }
  }
  return s;
}

}  // namespace levee::server
