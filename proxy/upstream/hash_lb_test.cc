#include "proxy/upstream/hash_lb.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace levee::upstream {
namespace {

constexpr int kKeys = 10000;

std::vector<HashRingHost> makeHosts(int n, uint32_t weight = 1) {
  std::vector<HashRingHost> hosts;
  for (int i = 1; i <= n; ++i) {
    hosts.push_back(HashRingHost{"10.0.0." + std::to_string(i) + ":8080", weight});
  }
  return hosts;
}

HashRing buildRing(const std::vector<HashRingHost>& hosts) {
  HashRing ring;
  ring.build(hosts);
  return ring;
}

uint64_t requestHash(int i) { return hashKey("user-" + std::to_string(i)); }

// The host key each request key lands on (keys, not indices: indices shift when a host leaves).
std::vector<std::string> assignment(const HashRing& ring, const std::vector<HashRingHost>& hosts) {
  std::vector<std::string> out;
  for (int i = 0; i < kKeys; ++i) {
    const int p = ring.pick(requestHash(i));
    out.push_back(p < 0 ? "" : hosts[static_cast<size_t>(p)].key);
  }
  return out;
}

TEST(HashKeyTest, GoldenValues) {
  // FNV-1a 64 + fmix64, cross-checked with an independent Python implementation. If these change,
  // every sticky session in the fleet moves on upgrade: change them only on purpose.
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"", 0xefd01f60ba992926ULL},
      {"a", 0x82a2a958a9bece5bULL},
      {"10.0.0.1:8080", 0xe8c721156ed52b14ULL},
      {"user-42", 0xa39532c7ab051e8dULL},
      {"session=abc123", 0x91f10b40154f9101ULL},
  };
  for (const auto& [key, expected] : cases) {
    EXPECT_EQ(hashKey(key), expected) << '"' << key << '"';
  }
}

TEST(HashRingTest, GoldenPicks) {
  // 5 hosts of weight 1 (100 points each); expected owners computed by the Python reference.
  const std::vector<HashRingHost> hosts = makeHosts(5);
  const HashRing ring = buildRing(hosts);
  EXPECT_EQ(ring.size(), 500U);
  const std::vector<std::pair<std::string, int>> cases = {
      {"user-1", 0},         {"user-2", 3}, {"user-3", 2},   {"user-42", 3},
      {"session=abc123", 0}, {"", 2},       {"10.1.2.3", 1},
  };
  for (const auto& [key, expected] : cases) {
    EXPECT_EQ(ring.pick(hashKey(key)), expected) << '"' << key << '"';
  }
}

TEST(HashRingTest, SameKeySameHostAcrossRebuildsAndHostOrder) {
  std::vector<HashRingHost> hosts = makeHosts(5);
  const HashRing a = buildRing(hosts);
  const HashRing b = buildRing(hosts);
  std::vector<HashRingHost> reversed(hosts.rbegin(), hosts.rend());
  const HashRing c = buildRing(reversed);
  EXPECT_EQ(assignment(a, hosts), assignment(b, hosts));
  EXPECT_EQ(assignment(a, hosts), assignment(c, reversed));
}

TEST(HashRingTest, EmptyAndZeroWeight) {
  const std::vector<std::pair<std::string, std::vector<HashRingHost>>> cases = {
      {"no_hosts", {}},
      {"all_zero_weight", {{"a:1", 0}, {"b:1", 0}}},
  };
  for (const auto& [name, hosts] : cases) {
    SCOPED_TRACE(name);
    const HashRing ring = buildRing(hosts);
    EXPECT_TRUE(ring.empty());
    EXPECT_EQ(ring.pick(hashKey("x")), -1);
    EXPECT_EQ(ring.pickExcluding(hashKey("x"), {}), -1);
  }
  const HashRing default_ring;
  EXPECT_EQ(default_ring.pick(0), -1);
}

TEST(HashRingTest, ZeroWeightHostNeverPicked) {
  const std::vector<HashRingHost> hosts = {{"a:1", 1}, {"b:1", 0}, {"c:1", 2}};
  const HashRing ring = buildRing(hosts);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_NE(ring.pick(requestHash(i)), 1);
  }
}

TEST(HashRingTest, RemovingOneHostMovesOnlyItsKeys) {
  const std::vector<HashRingHost> all = makeHosts(5);
  const std::vector<std::string> before = assignment(buildRing(all), all);
  for (size_t removed = 0; removed < all.size(); ++removed) {
    SCOPED_TRACE("removed " + all[removed].key);
    std::vector<HashRingHost> rest = all;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(removed));
    const std::vector<std::string> after = assignment(buildRing(rest), rest);
    int moved = 0;
    for (int i = 0; i < kKeys; ++i) {
      const auto k = static_cast<size_t>(i);
      ASSERT_NE(after[k], all[removed].key);
      if (before[k] == all[removed].key) {
        ++moved;
      } else {
        ASSERT_EQ(after[k], before[k]) << "key user-" << i << " moved off a host that stayed";
      }
    }
    // The removed host owned about 1/5 of the keys, and only those moved.
    EXPECT_GT(moved, kKeys / 10);
    EXPECT_LT(moved, kKeys * 3 / 10);
  }
}

TEST(HashRingTest, AddingAHostMovesAboutOneNthToIt) {
  const std::vector<HashRingHost> five = makeHosts(5);
  const std::vector<HashRingHost> six = makeHosts(6);
  const std::vector<std::string> before = assignment(buildRing(five), five);
  const std::vector<std::string> after = assignment(buildRing(six), six);
  int moved = 0;
  for (size_t k = 0; k < before.size(); ++k) {
    if (after[k] != before[k]) {
      ++moved;
      EXPECT_EQ(after[k], six.back().key) << "a moved key must go to the new host";
    }
  }
  // Expected 1/6 = 16.7%.
  EXPECT_GT(moved, kKeys * 10 / 100);
  EXPECT_LT(moved, kKeys * 25 / 100);
}

struct WeightCase {
  std::string name;
  std::vector<uint32_t> weights;
};

TEST(HashRingTest, WeightsGiveProportionalShares) {
  // 100 points per weight unit keeps each share within a few percent of weight / sum.
  constexpr double kTolerance = 0.05;
  const std::vector<WeightCase> cases = {
      {"one_to_three", {1, 3}},
      {"equal_five", {1, 1, 1, 1, 1}},
      {"mixed", {1, 1, 2, 4}},
      {"large_weights", {10, 30}},
  };
  for (const WeightCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<HashRingHost> hosts;
    uint32_t total = 0;
    for (size_t i = 0; i < c.weights.size(); ++i) {
      hosts.push_back(HashRingHost{"host-" + std::to_string(i) + ":80", c.weights[i]});
      total += c.weights[i];
    }
    const HashRing ring = buildRing(hosts);
    EXPECT_EQ(ring.size(), 100U * total);
    std::vector<int> counts(hosts.size());
    for (int i = 0; i < kKeys; ++i) {
      counts[static_cast<size_t>(ring.pick(requestHash(i)))]++;
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      EXPECT_NEAR(static_cast<double>(counts[i]) / kKeys,
                  static_cast<double>(c.weights[i]) / total, kTolerance)
          << "host " << i;
    }
  }
}

TEST(HashRingTest, PickExcludingMovesOnlyExcludedHostsKeys) {
  const std::vector<HashRingHost> hosts = makeHosts(5);
  const HashRing ring = buildRing(hosts);
  const std::vector<std::vector<bool>> cases = {
      {false, false, false, false, false},
      {false, true, false, false, false},
      {true, false, false, true, false},
      {true, true, true, true, false},
      {false, false},  // shorter than hosts: the rest count as not excluded
  };
  for (const std::vector<bool>& excluded : cases) {
    std::string label;
    for (bool e : excluded) {
      label += e ? '1' : '0';
    }
    SCOPED_TRACE(label);
    auto isExcluded = [&excluded](int h) {
      return static_cast<size_t>(h) < excluded.size() && excluded[static_cast<size_t>(h)];
    };
    // The same answer as a ring built without the excluded hosts.
    std::vector<HashRingHost> kept;
    for (size_t h = 0; h < hosts.size(); ++h) {
      if (!isExcluded(static_cast<int>(h))) {
        kept.push_back(hosts[h]);
      }
    }
    const HashRing kept_ring = buildRing(kept);
    for (int i = 0; i < kKeys; ++i) {
      const uint64_t hash = requestHash(i);
      const int normal = ring.pick(hash);
      const int chosen = ring.pickExcluding(hash, excluded);
      ASSERT_GE(chosen, 0);
      ASSERT_FALSE(isExcluded(chosen));
      if (!isExcluded(normal)) {
        ASSERT_EQ(chosen, normal) << "key user-" << i << " of a healthy host moved";
      }
      ASSERT_EQ(hosts[static_cast<size_t>(chosen)].key,
                kept[static_cast<size_t>(kept_ring.pick(hash))].key);
    }
  }
}

TEST(HashRingTest, PickExcludingAllExcluded) {
  const HashRing ring = buildRing(makeHosts(3));
  EXPECT_EQ(ring.pickExcluding(hashKey("k"), {true, true, true}), -1);
}

TEST(HashRingTest, MaxPointsCapsRingSize) {
  struct CapCase {
    std::string name;
    HashRingOptions options;
    std::vector<uint32_t> weights;
    size_t expected_size;
  };
  const std::vector<CapCase> cases = {
      {"below_cap", {100, 1000}, {2, 3}, 500},
      {"scaled_down", {100, 1000}, {10, 10}, 1000},  // 50 points per weight unit
      {"at_least_one", {100, 10}, {10, 10}, 20},     // 1 point per weight unit
      {"custom_density", {7, 1 << 20}, {1, 2}, 21},
  };
  for (const CapCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<HashRingHost> hosts;
    for (size_t i = 0; i < c.weights.size(); ++i) {
      hosts.push_back(HashRingHost{"h" + std::to_string(i), c.weights[i]});
    }
    HashRing ring(c.options);
    ring.build(hosts);
    EXPECT_EQ(ring.size(), c.expected_size);
    EXPECT_GE(ring.pick(hashKey("k")), 0);
  }
}

TEST(HashRingTest, RebuildReplacesRing) {
  HashRing ring;
  ring.build(makeHosts(5));
  ring.build(makeHosts(2));
  EXPECT_EQ(ring.size(), 200U);
  for (int i = 0; i < 100; ++i) {
    EXPECT_LT(ring.pick(requestHash(i)), 2);
  }
}

}  // namespace
}  // namespace levee::upstream
