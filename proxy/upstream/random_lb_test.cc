#include "proxy/upstream/random_lb.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace levee::upstream {
namespace {

std::vector<LbHost> hostsWithWeights(const std::vector<uint32_t>& weights) {
  std::vector<LbHost> hosts;
  for (uint32_t w : weights) {
    hosts.push_back(LbHost{w, 0});
  }
  return hosts;
}

struct DistributionCase {
  std::string name;
  std::vector<uint32_t> weights;
  std::vector<double> expected_share;  // weight / sum(weights)
};

TEST(RandomLbTest, DistributionFollowsWeights) {
  // 10k picks: the standard deviation of a share is at most 0.005, so 0.02 is 4 sigma. The seed
  // is fixed, so the test is deterministic anyway.
  constexpr int kPicks = 10000;
  constexpr double kTolerance = 0.02;
  const std::vector<DistributionCase> cases = {
      {"single", {1}, {1.0}},
      {"equal", {1, 1, 1, 1}, {0.25, 0.25, 0.25, 0.25}},
      {"one_to_three", {1, 3}, {0.25, 0.75}},
      {"zero_in_middle", {5, 0, 5}, {0.5, 0.0, 0.5}},
      {"skewed", {10, 1, 1000}, {10.0 / 1011, 1.0 / 1011, 1000.0 / 1011}},
      {"many", {2, 2, 4, 8}, {0.125, 0.125, 0.25, 0.5}},
  };
  for (const DistributionCase& c : cases) {
    SCOPED_TRACE(c.name);
    RandomLb lb(12345);
    const std::vector<LbHost> hosts = hostsWithWeights(c.weights);
    std::vector<int> counts(hosts.size());
    for (int i = 0; i < kPicks; ++i) {
      const int p = lb.pick(hosts);
      ASSERT_GE(p, 0);
      ASSERT_LT(p, static_cast<int>(hosts.size()));
      counts[static_cast<size_t>(p)]++;
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      const double share = static_cast<double>(counts[i]) / kPicks;
      EXPECT_NEAR(share, c.expected_share[i], kTolerance) << "host " << i;
      if (c.weights[i] == 0) {
        EXPECT_EQ(counts[i], 0) << "weight 0 host " << i << " was picked";
      }
    }
  }
}

TEST(RandomLbTest, NothingPickable) {
  const std::vector<std::pair<std::string, std::vector<uint32_t>>> cases = {
      {"empty", {}},
      {"all_zero", {0, 0, 0}},
  };
  for (const auto& [name, weights] : cases) {
    SCOPED_TRACE(name);
    RandomLb lb(1);
    EXPECT_EQ(lb.pick(hostsWithWeights(weights)), -1);
  }
}

TEST(RandomLbTest, SameSeedSameSequence) {
  const std::vector<LbHost> hosts = hostsWithWeights({1, 2, 3, 4});
  RandomLb a(99);
  RandomLb b(99);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.pick(hosts), b.pick(hosts));
  }
}

TEST(RandomLbTest, IgnoresActiveRequests) {
  RandomLb lb(3);
  const std::vector<LbHost> hosts = {{1, 1000}, {1, 0}};
  int picked_busy = 0;
  for (int i = 0; i < 1000; ++i) {
    picked_busy += lb.pick(hosts) == 0 ? 1 : 0;
  }
  EXPECT_GT(picked_busy, 400);
  EXPECT_LT(picked_busy, 600);
}

}  // namespace
}  // namespace levee::upstream
