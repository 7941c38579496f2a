#include "proxy/upstream/load_balancer.h"

namespace levee::upstream {

int RoundRobinLb::pick(const std::vector<LbHost>& hosts) {
  if (hosts.empty()) {
    return -1;
  }
  if (current_.size() != hosts.size()) {
    current_.assign(hosts.size(), 0);
  }
  int64_t total = 0;
  int best = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    current_[i] += hosts[i].weight;
    total += hosts[i].weight;
    if (current_[i] > current_[static_cast<size_t>(best)]) {
      best = static_cast<int>(i);
    }
  }
  current_[static_cast<size_t>(best)] -= total;
  return best;
}

int LeastRequestLb::pick(const std::vector<LbHost>& hosts) {
  if (hosts.empty()) {
    return -1;
  }
  if (hosts.size() == 1) {
    return 0;
  }
  std::uniform_int_distribution<size_t> dist(0, hosts.size() - 1);
  size_t a = dist(rng_);
  size_t b = dist(rng_);
  if (b == a) {
    b = (a + 1) % hosts.size();
  }
  // Compare active/weight without division: a_active * b_weight vs b_active * a_weight.
  uint64_t sa = static_cast<uint64_t>(hosts[a].active_requests) * hosts[b].weight;
  uint64_t sb = static_cast<uint64_t>(hosts[b].active_requests) * hosts[a].weight;
  if (sa == sb) {
    return static_cast<int>(hosts[a].weight >= hosts[b].weight ? a : b);
  }
  return static_cast<int>(sa < sb ? a : b);
}

}  // namespace levee::upstream
