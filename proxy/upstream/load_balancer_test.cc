#include "proxy/upstream/load_balancer.h"

#include <gtest/gtest.h>

namespace levee::upstream {
namespace {

TEST(RoundRobinLbTest, EqualWeightsAlternate) {
  RoundRobinLb lb;
  std::vector<LbHost> hosts(3);
  std::vector<int> seen;
  for (int i = 0; i < 6; ++i) {
    seen.push_back(lb.pick(hosts));
  }
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobinLbTest, WeightsHonouredSmoothly) {
  RoundRobinLb lb;
  std::vector<LbHost> hosts = {{5, 0}, {1, 0}, {1, 0}};
  std::vector<int> counts(3);
  std::vector<int> seq;
  for (int i = 0; i < 7; ++i) {
    int p = lb.pick(hosts);
    counts[static_cast<size_t>(p)]++;
    seq.push_back(p);
  }
  EXPECT_EQ(counts, (std::vector<int>{5, 1, 1}));
  EXPECT_EQ(seq, (std::vector<int>{0, 0, 1, 0, 2, 0, 0}));  // nginx's smooth order
}

TEST(RoundRobinLbTest, EmptyReturnsMinusOne) {
  RoundRobinLb lb;
  EXPECT_EQ(lb.pick({}), -1);
}

TEST(LeastRequestLbTest, PrefersFewerActive) {
  LeastRequestLb lb(42);
  std::vector<LbHost> hosts = {{1, 10}, {1, 0}};
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(lb.pick(hosts), 1);
  }
}

TEST(LeastRequestLbTest, WeightScalesLoad) {
  LeastRequestLb lb(7);
  // host 0: 4 active at weight 4 (1 per weight) vs host 1: 2 active at weight 1.
  std::vector<LbHost> hosts = {{4, 4}, {1, 2}};
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(lb.pick(hosts), 0);
  }
}

TEST(LeastRequestLbTest, SpreadsWhenIdle) {
  LeastRequestLb lb(1);
  std::vector<LbHost> hosts(4);
  std::vector<int> counts(4);
  for (int i = 0; i < 4000; ++i) {
    counts[static_cast<size_t>(lb.pick(hosts))]++;
  }
  for (int c : counts) {
    EXPECT_GT(c, 600);
  }
}

}  // namespace
}  // namespace levee::upstream
