#pragma once
// Priority (failover) load decision, after Envoy's priority-load model. Pure: no I/O, no clock.
//
// Input: every host with its priority level (0 = most preferred), health and weight. Levels are
// numbered by `priority`; a level without hosts gets no load. Output: the percent of requests each
// level receives, plus panic flags. Weights are used throughout (with equal weights everything
// below is exactly Envoy's host-count formula).
//
// Formula (integer arithmetic, floor division), with M = min_healthy_percent and
// T = panic_threshold_percent:
//
//   raw_p      = 100 * healthy_weight_p / total_weight_p          (percent healthy in level p)
//   health_p   = min(100, raw_p * 100 / M)                        (overprovisioning factor 100/M;
//                = min(100, 10000 * healthy_weight_p / (total_weight_p * M)),  0 if level empty)
//   total      = min(100, sum_p health_p)                         ("normalized total availability")
//   load_p     = min(100 - sum_{q<p} load_q, health_p * 100 / total)   walking p = 0, 1, 2, ...
//   the rounding remainder (100 - sum load) goes to the first level with health_p > 0.
//
// So while sum_p health_p >= 100, level 0 takes health_0 percent and the rest spills to level 1,
// then level 2, and so on. When the levels together cannot absorb 100% (total < 100), the load is
// spread in proportion to health_p. Example, M = 70: P0 with 50% healthy has health 71, so P0
// takes 71% and a healthy P1 takes 29%; P0 keeps 100% as long as at least 70% of it is healthy.
//
// Panic (Envoy's rule): when total == 100 no level panics. Otherwise level p is in panic when
// raw_p < T (an empty level counts as in panic); a level in panic should be balanced across all
// its hosts regardless of health. When every level is in panic (`panic`, Envoy's "total panic"),
// the load is instead split by total weight per level, ignoring health:
//   load_p = 100 * total_weight_p / sum_q total_weight_q, remainder to the first non-empty level.
// T = 0 disables panic; if then nothing is healthy, the first non-empty level gets 100% (callers
// find no healthy host and fail the request).

#include <cstdint>
#include <vector>

namespace levee::upstream {

inline constexpr uint32_t kDefaultMinHealthyPercent = 70;
inline constexpr uint32_t kDefaultPanicThresholdPercent = 50;

struct PriorityHost {
  uint32_t priority{0};
  bool healthy{true};
  uint32_t weight{1};
};

struct PrioritySelection {
  // Index = priority level, 0..max priority seen. Sums to 100, or is empty when there are no hosts
  // of non-zero weight.
  std::vector<uint32_t> load_percent_by_priority;
  // True when every level is in panic ("total panic"): balance across all hosts of the chosen
  // level regardless of health. Implies panic_by_priority is all true.
  bool panic{false};
  // Per level: balance across all hosts of that level regardless of health.
  std::vector<bool> panic_by_priority;
  // health_p from the formula above (0..100), for stats and the admin page.
  std::vector<uint32_t> health_percent_by_priority;
};

// Computes the per-level load. `min_healthy_percent` is clamped to 1..100 and
// `panic_threshold_percent` to 0..100.
PrioritySelection computePriorityLoad(
    const std::vector<PriorityHost>& hosts, uint32_t min_healthy_percent = kDefaultMinHealthyPercent,
    uint32_t panic_threshold_percent = kDefaultPanicThresholdPercent);

// Maps a uniform random number in [0, 100) onto the loads: returns the first level p with
// random_0_to_99 < load_0 + ... + load_p. Values >= 100 are reduced modulo 100. Returns -1 when
// the selection is empty.
int choosePriority(const PrioritySelection& selection, uint64_t random_0_to_99);

}  // namespace levee::upstream
