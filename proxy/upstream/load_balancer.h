#pragma once
// Pure load-balancing algorithms over a host list (no I/O; table-tested).

#include <cstdint>
#include <random>
#include <vector>

namespace levee::upstream {

struct LbHost {
  uint32_t weight{1};
  uint32_t active_requests{0};
};

// Smooth weighted round robin (nginx's algorithm): deterministic, weights honoured, no bursts.
class RoundRobinLb {
public:
  // Returns the index of the chosen host, or -1 when `hosts` is empty.
  int pick(const std::vector<LbHost>& hosts);

private:
  std::vector<int64_t> current_;
};

// Power of two choices over active requests scaled by weight (least_request).
class LeastRequestLb {
public:
  explicit LeastRequestLb(uint64_t seed) : rng_(seed) {}
  int pick(const std::vector<LbHost>& hosts);

private:
  std::mt19937_64 rng_;
};

}  // namespace levee::upstream
