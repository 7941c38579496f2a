#include "proxy/upstream/priority_set.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace levee::upstream {
namespace {

// `total` hosts at `priority`, the first `healthy` of them healthy.
std::vector<PriorityHost> level(uint32_t priority, int total, int healthy, uint32_t weight = 1) {
  std::vector<PriorityHost> hosts;
  for (int i = 0; i < total; ++i) {
    hosts.push_back(PriorityHost{priority, i < healthy, weight});
  }
  return hosts;
}

std::vector<PriorityHost> concat(std::initializer_list<std::vector<PriorityHost>> parts) {
  std::vector<PriorityHost> out;
  for (const auto& part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

struct LoadCase {
  std::string name;
  std::vector<PriorityHost> hosts;
  uint32_t min_healthy;
  uint32_t panic_threshold;
  std::vector<uint32_t> expected_health;
  std::vector<uint32_t> expected_load;
  bool expected_panic;
  std::vector<bool> expected_level_panic;
};

TEST(PrioritySetTest, LoadTable) {
  // health_p = min(100, 10000 * healthy_p / (total_p * M)); see priority_set.h for the formula.
  const std::vector<LoadCase> cases = {
      {"all_healthy_p0_takes_all", concat({level(0, 4, 4), level(1, 4, 4)}), 70, 50,
       {100, 100}, {100, 0}, false, {false, false}},
      // 10000 * 2 / (4 * 70) = 71.4 -> 71; P1 gets the other 29.
      {"p0_half_healthy_spills_29", concat({level(0, 4, 2), level(1, 4, 4)}), 70, 50,
       {71, 100}, {71, 29}, false, {false, false}},
      // 70% healthy is exactly the overprovisioning point: 10000 * 7 / (10 * 70) = 100.
      {"p0_at_min_healthy_keeps_all", concat({level(0, 10, 7), level(1, 4, 4)}), 70, 50,
       {100, 100}, {100, 0}, false, {false, false}},
      // 10000 * 6 / (10 * 70) = 85.7 -> 85.
      {"p0_sixty_percent", concat({level(0, 10, 6), level(1, 4, 4)}), 70, 50,
       {85, 100}, {85, 15}, false, {false, false}},
      {"p0_down_all_to_p1", concat({level(0, 4, 0), level(1, 4, 4)}), 70, 50,
       {0, 100}, {0, 100}, false, {false, false}},
      // Both levels 25% healthy: health 35 + 35 = 70 < 100 and both raw 25% < 50%: total panic,
      // load by size.
      {"both_quarter_healthy_total_panic", concat({level(0, 4, 1), level(1, 4, 1)}), 70, 50,
       {35, 35}, {50, 50}, true, {true, true}},
      {"everything_down_total_panic_by_size", concat({level(0, 6, 0), level(1, 2, 0)}), 70, 50,
       {0, 0}, {75, 25}, true, {true, true}},
      // P0 5% (health 7), P1 65% (health 92): total 99 < 100 so panic is checked per level; only
      // P0 is below 50%. Loads 7*100/99 = 7 and 92*100/99 = 92, rounding remainder 1 to P0.
      {"partial_panic_only_p0", concat({level(0, 20, 1), level(1, 20, 13)}), 70, 50,
       {7, 92}, {8, 92}, false, {true, false}},
      // Health 35 + 35 + 100 >= 100: spill in order, P2 takes the remaining 30.
      {"three_levels_spill", concat({level(0, 4, 1), level(1, 4, 1), level(2, 4, 4)}), 70, 50,
       {35, 35, 100}, {35, 35, 30}, false, {false, false, false}},
      // No hosts at priority 1: it gets nothing and never blocks the spill.
      {"gap_in_priorities", concat({level(0, 2, 0), level(2, 2, 2)}), 70, 50,
       {0, 0, 100}, {0, 0, 100}, false, {false, false, false}},
      {"panic_disabled_everything_down", concat({level(0, 4, 0), level(1, 4, 0)}), 70, 0,
       {0, 0}, {100, 0}, false, {false, false}},
      // M = 100 means no overprovisioning: health is the plain healthy percent.
      {"no_overprovisioning", concat({level(0, 4, 3), level(1, 4, 4)}), 100, 50,
       {75, 100}, {75, 25}, false, {false, false}},
      // Health uses weights: the healthy host carries 3 of 4 weight units (75% -> 100), although
      // only 1 of 2 hosts is healthy.
      {"weighted_health",
       concat({{{0, true, 3}, {0, false, 1}}, level(1, 2, 2)}), 70, 50,
       {100, 100}, {100, 0}, false, {false, false}},
      {"single_priority_healthy", level(0, 4, 4), 70, 50, {100}, {100}, false, {false}},
      {"single_priority_half", level(0, 4, 2), 70, 50, {71}, {100}, false, {false}},
      {"single_priority_quarter_panics", level(0, 4, 1), 70, 50, {35}, {100}, true, {true}},
      {"single_priority_down_panics", level(0, 3, 0), 70, 50, {0}, {100}, true, {true}},
      // Weight-0 hosts are ignored entirely.
      {"zero_weight_ignored", concat({level(0, 2, 2), level(0, 2, 0, 0)}), 70, 50,
       {100}, {100}, false, {false}},
      {"no_hosts", {}, 70, 50, {}, {}, false, {}},
      // Out-of-range knobs are clamped: M = 0 -> 1 (any healthy host gives 100), T = 200 -> 100.
      {"clamped_knobs", concat({level(0, 100, 1), level(1, 4, 4)}), 0, 200,
       {100, 100}, {100, 0}, false, {false, false}},
  };
  for (const LoadCase& c : cases) {
    SCOPED_TRACE(c.name);
    const PrioritySelection s = computePriorityLoad(c.hosts, c.min_healthy, c.panic_threshold);
    EXPECT_EQ(s.health_percent_by_priority, c.expected_health);
    EXPECT_EQ(s.load_percent_by_priority, c.expected_load);
    EXPECT_EQ(s.panic, c.expected_panic);
    EXPECT_EQ(s.panic_by_priority, c.expected_level_panic);
    uint32_t sum = 0;
    for (uint32_t l : s.load_percent_by_priority) {
      sum += l;
    }
    EXPECT_EQ(sum, c.hosts.empty() ? 0U : 100U);
  }
}

TEST(PrioritySetTest, DefaultsAreSeventyAndFifty) {
  const PrioritySelection s = computePriorityLoad(concat({level(0, 4, 2), level(1, 4, 4)}));
  EXPECT_EQ(s.load_percent_by_priority, (std::vector<uint32_t>{71, 29}));
}

TEST(PrioritySetTest, FailoverAndRecovery) {
  // P0 degrades host by host and then recovers; P1 stays healthy.
  struct Step {
    int p0_healthy;  // of 10
    std::vector<uint32_t> expected_load;
  };
  const std::vector<Step> steps = {
      {10, {100, 0}}, {7, {100, 0}}, {5, {71, 29}}, {2, {28, 72}}, {0, {0, 100}},
      {3, {42, 58}},  {8, {100, 0}}, {10, {100, 0}},
  };
  for (const Step& step : steps) {
    SCOPED_TRACE("p0 healthy " + std::to_string(step.p0_healthy) + "/10");
    const PrioritySelection s =
        computePriorityLoad(concat({level(0, 10, step.p0_healthy), level(1, 10, 10)}), 70, 50);
    EXPECT_EQ(s.load_percent_by_priority, step.expected_load);
    EXPECT_FALSE(s.panic);
  }
}

TEST(PrioritySetTest, ChoosePriority) {
  struct ChooseCase {
    std::vector<uint32_t> load;
    uint64_t random;
    int expected;
  };
  const std::vector<ChooseCase> cases = {
      {{71, 29}, 0, 0},    {{71, 29}, 70, 0},     {{71, 29}, 71, 1},  {{71, 29}, 99, 1},
      {{71, 29}, 100, 0},  {{71, 29}, 171, 1},    {{0, 100}, 0, 1},   {{0, 0, 100}, 0, 2},
      {{35, 35, 30}, 35, 1}, {{35, 35, 30}, 70, 2}, {{100}, 99, 0},   {{}, 0, -1},
  };
  for (const ChooseCase& c : cases) {
    PrioritySelection s;
    s.load_percent_by_priority = c.load;
    EXPECT_EQ(choosePriority(s, c.random), c.expected) << "random " << c.random;
  }
}

TEST(PrioritySetTest, ChoosePriorityFollowsLoadOverAllRandomValues) {
  const PrioritySelection s = computePriorityLoad(concat({level(0, 4, 2), level(1, 4, 4)}));
  std::vector<int> counts(2);
  for (uint64_t r = 0; r < 100; ++r) {
    counts[static_cast<size_t>(choosePriority(s, r))]++;
  }
  EXPECT_EQ(counts, (std::vector<int>{71, 29}));
}

}  // namespace
}  // namespace levee::upstream
