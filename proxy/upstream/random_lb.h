#pragma once
// Weighted random host selection (pure, no I/O). Stateless apart from the seeded generator, so it
// suits many workers picking independently without coordination (unlike round robin).

#include <cstdint>
#include <random>
#include <vector>

#include "proxy/upstream/load_balancer.h"

namespace levee::upstream {

// Picks host i with probability weight_i / sum(weights). A host of weight 0 is never picked.
// `active_requests` is ignored. Randomness is injected through the seed, so tests are repeatable.
class RandomLb {
public:
  explicit RandomLb(uint64_t seed) : rng_(seed) {}

  // Returns the index of the chosen host, or -1 when `hosts` is empty or every weight is 0.
  int pick(const std::vector<LbHost>& hosts);

private:
  std::mt19937_64 rng_;
};

}  // namespace levee::upstream
