#include "proxy/upstream/priority_set.h"

#include <algorithm>

namespace levee::upstream {
namespace {

struct Level {
  uint64_t total_weight{0};
  uint64_t healthy_weight{0};
};

// Puts `remainder` on the first level for which `eligible` holds; returns false if none does.
template <class Pred>
bool addRemainder(std::vector<uint32_t>& load, uint32_t remainder, Pred eligible) {
  for (size_t p = 0; p < load.size(); ++p) {
    if (eligible(p)) {
      load[p] += remainder;
      return true;
    }
  }
  return false;
}

}  // namespace

PrioritySelection computePriorityLoad(const std::vector<PriorityHost>& hosts,
                                      uint32_t min_healthy_percent,
                                      uint32_t panic_threshold_percent) {
  const uint64_t min_healthy = std::clamp<uint32_t>(min_healthy_percent, 1, 100);
  const uint64_t panic_threshold = std::min<uint32_t>(panic_threshold_percent, 100);

  PrioritySelection out;
  std::vector<Level> levels;
  uint64_t all_weight = 0;
  for (const PriorityHost& host : hosts) {
    if (host.weight == 0) {
      continue;  // can never receive traffic, so it neither adds nor removes capacity
    }
    if (host.priority >= levels.size()) {
      levels.resize(static_cast<size_t>(host.priority) + 1);
    }
    Level& level = levels[host.priority];
    level.total_weight += host.weight;
    if (host.healthy) {
      level.healthy_weight += host.weight;
    }
    all_weight += host.weight;
  }
  if (all_weight == 0) {
    return out;
  }

  const size_t n = levels.size();
  out.load_percent_by_priority.assign(n, 0);
  out.panic_by_priority.assign(n, false);
  out.health_percent_by_priority.assign(n, 0);

  uint64_t health_sum = 0;
  for (size_t p = 0; p < n; ++p) {
    const Level& level = levels[p];
    if (level.total_weight == 0) {
      continue;
    }
    // health = min(100, (100 * healthy / total) * (100 / M)), in one floor division.
    const uint64_t health =
        std::min<uint64_t>(100, 10000 * level.healthy_weight / (level.total_weight * min_healthy));
    out.health_percent_by_priority[p] = static_cast<uint32_t>(health);
    health_sum += health;
  }
  const uint32_t total_health = static_cast<uint32_t>(std::min<uint64_t>(100, health_sum));

  // Panic: only when the levels together cannot carry the load.
  bool all_in_panic = panic_threshold > 0 && total_health < 100;
  for (size_t p = 0; p < n; ++p) {
    const Level& level = levels[p];
    // raw healthy percent < T, without rounding: 100 * healthy < T * total.
    const bool level_panic = panic_threshold > 0 && total_health < 100 &&
                             (level.total_weight == 0 ||
                              100 * level.healthy_weight < panic_threshold * level.total_weight);
    out.panic_by_priority[p] = level_panic;
    all_in_panic = all_in_panic && level_panic;
  }

  std::vector<uint32_t>& load = out.load_percent_by_priority;
  if (all_in_panic) {
    // Total panic: split by size, ignoring health (Envoy's recalculateLoadInTotalPanic).
    out.panic = true;
    uint32_t assigned = 0;
    for (size_t p = 0; p < n; ++p) {
      load[p] = static_cast<uint32_t>(100 * levels[p].total_weight / all_weight);
      assigned += load[p];
    }
    addRemainder(load, 100 - assigned, [&](size_t p) { return levels[p].total_weight > 0; });
    return out;
  }
  if (total_health == 0) {
    // Panic disabled and nothing healthy: the loads must still sum to 100.
    addRemainder(load, 100, [&](size_t p) { return levels[p].total_weight > 0; });
    return out;
  }

  uint32_t remaining = 100;
  for (size_t p = 0; p < n; ++p) {
    load[p] = std::min(remaining, out.health_percent_by_priority[p] * 100 / total_health);
    remaining -= load[p];
  }
  addRemainder(load, remaining, [&](size_t p) { return out.health_percent_by_priority[p] > 0; });
  return out;
}

int choosePriority(const PrioritySelection& selection, uint64_t random_0_to_99) {
  const uint64_t r = random_0_to_99 % 100;
  uint64_t cumulative = 0;
  const std::vector<uint32_t>& load = selection.load_percent_by_priority;
  for (size_t p = 0; p < load.size(); ++p) {
    cumulative += load[p];
    if (r < cumulative) {
      return static_cast<int>(p);
    }
  }
  return -1;
}

}  // namespace levee::upstream
