#include "proxy/upstream/random_lb.h"

namespace levee::upstream {

int RandomLb::pick(const std::vector<LbHost>& hosts) {
  // 64-bit sum: weights are uint32_t, so the sum cannot overflow for any realistic host count.
  uint64_t total = 0;
  for (const LbHost& host : hosts) {
    total += host.weight;
  }
  if (total == 0) {
    return -1;
  }
  std::uniform_int_distribution<uint64_t> dist(0, total - 1);
  uint64_t r = dist(rng_);
  for (size_t i = 0; i < hosts.size(); ++i) {
    // A weight-0 host owns an empty interval, so `r < 0` never selects it.
    if (r < hosts[i].weight) {
      return static_cast<int>(i);
    }
    r -= hosts[i].weight;
  }
  return -1;  // Unreachable: r < total.
}

}  // namespace levee::upstream
