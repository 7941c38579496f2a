#include "proxy/common/token_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kNever = TokenBucket::kNever;

struct Take {
  milliseconds advance;  // before this take
  bool allowed;
  uint32_t remaining;
  milliseconds retry_after;
  milliseconds reset;
};

struct BucketCase {
  const char* name;
  double rate;
  uint32_t burst;
  std::vector<Take> takes;
};

TEST(TokenBucketTest, Table) {
  const std::vector<BucketCase> cases = {
      {"burst 5 at 10/s: 5 allowed, then denied; 100ms refills exactly one",
       10.0, 5,
       {{milliseconds(0), true, 4, milliseconds(0), milliseconds(100)},
        {milliseconds(0), true, 3, milliseconds(0), milliseconds(200)},
        {milliseconds(0), true, 2, milliseconds(0), milliseconds(300)},
        {milliseconds(0), true, 1, milliseconds(0), milliseconds(400)},
        {milliseconds(0), true, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(0), false, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(0), false, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(100), true, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(0), false, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(50), false, 0, milliseconds(50), milliseconds(450)},
        {milliseconds(50), true, 0, milliseconds(100), milliseconds(500)},
        {milliseconds(250), true, 1, milliseconds(0), milliseconds(350)},  // 2.5 - 1 left
        // a long idle period refills to burst, never above
        {milliseconds(3600 * 1000), true, 4, milliseconds(0), milliseconds(100)}}},
      {"0.5/s: one token every 2 s",
       0.5, 1,
       {{milliseconds(0), true, 0, milliseconds(2000), milliseconds(2000)},
        {milliseconds(1999), false, 0, milliseconds(1), milliseconds(1)},
        {milliseconds(1), true, 0, milliseconds(2000), milliseconds(2000)}}},
      {"3/s: times round up, so waiting retry_after always finds a token",
       3.0, 1,
       {{milliseconds(0), true, 0, milliseconds(334), milliseconds(334)},
        {milliseconds(333), false, 0, milliseconds(1), milliseconds(1)},
        {milliseconds(1), true, 0, milliseconds(334), milliseconds(334)}}},
      {"rate 0: burst tokens, then never",
       0.0, 2,
       {{milliseconds(0), true, 1, milliseconds(0), kNever},
        {milliseconds(0), true, 0, kNever, kNever},
        {milliseconds(1000000), false, 0, kNever, kNever}}},
      {"negative rate is 0, burst 0 is 1",
       -5.0, 0,
       {{milliseconds(0), true, 0, kNever, kNever},
        {milliseconds(10), false, 0, kNever, kNever}}},
  };
  for (const BucketCase& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    TokenBucket bucket(c.rate, c.burst);
    int i = 0;
    for (const Take& t : c.takes) {
      SCOPED_TRACE(i++);
      time.advance(t.advance);
      const TokenBucket::Decision d = bucket.take(time.monotonicTime());
      EXPECT_EQ(t.allowed, d.allowed);
      EXPECT_EQ(t.remaining, d.remaining);
      // Times are computed for refusals only (they go into the 429's headers).
      EXPECT_EQ(t.allowed ? milliseconds(0) : t.retry_after, d.retry_after);
      EXPECT_EQ(t.allowed ? milliseconds(0) : t.reset, d.reset);
    }
  }
}

// A time older than the last one refills nothing and does not move the refill clock back.
TEST(TokenBucketTest, EarlierTimeRefillsNothing) {
  SimulatedTimeSource time;
  TokenBucket bucket(10.0, 1);
  const MonotonicTime t0 = time.monotonicTime();
  ASSERT_TRUE(bucket.take(t0 + milliseconds(50)).allowed);
  EXPECT_FALSE(bucket.take(t0).allowed);
  EXPECT_FALSE(bucket.take(t0 + milliseconds(149)).allowed);
  EXPECT_TRUE(bucket.take(t0 + milliseconds(150)).allowed);
}

// === RateLimiter ===

TEST(RateLimiterTest, KeysHaveSeparateBuckets) {
  SimulatedTimeSource time;
  RateLimiter limiter(10.0, 2, 100, time);
  EXPECT_TRUE(limiter.take("a").allowed);
  EXPECT_TRUE(limiter.take("a").allowed);
  EXPECT_FALSE(limiter.take("a").allowed);
  const RateLimiter::Decision b = limiter.take("b");
  EXPECT_TRUE(b.allowed);
  EXPECT_EQ(1U, b.remaining);
  EXPECT_EQ(2U, limiter.size());
  time.advance(milliseconds(100));
  EXPECT_TRUE(limiter.take("a").allowed);
  EXPECT_FALSE(limiter.take("a").allowed);
}

// max_keys 3 and a fourth key: the least recently used key is evicted and, when it comes back,
// starts with a full bucket (its history is lost).
TEST(RateLimiterTest, EvictsLeastRecentlyUsed) {
  SimulatedTimeSource time;
  RateLimiter limiter(0.0, 1, 3, time);  // no refill: a denied key is a remembered key
  EXPECT_TRUE(limiter.take("a").allowed);
  EXPECT_TRUE(limiter.take("b").allowed);
  EXPECT_TRUE(limiter.take("c").allowed);
  EXPECT_FALSE(limiter.take("a").allowed);  // touch a: b is now the least recently used
  EXPECT_EQ(3U, limiter.size());

  EXPECT_TRUE(limiter.take("d").allowed);  // evicts b
  EXPECT_EQ(3U, limiter.size());
  EXPECT_FALSE(limiter.take("a").allowed);  // still tracked
  EXPECT_FALSE(limiter.take("c").allowed);  // still tracked
  EXPECT_FALSE(limiter.take("d").allowed);  // still tracked
  EXPECT_TRUE(limiter.take("b").allowed);   // forgotten: a fresh bucket (evicts a)
  EXPECT_EQ(3U, limiter.size());
  EXPECT_TRUE(limiter.take("a").allowed);   // evicted in turn
}

TEST(RateLimiterTest, HostileCardinalityStaysBounded) {
  SimulatedTimeSource time;
  for (size_t max_keys : {size_t{1}, size_t{7}, size_t{10000}, size_t{100000}}) {
    SCOPED_TRACE(max_keys);
    RateLimiter limiter(1.0, 1, max_keys, time);
    for (size_t i = 0; i < max_keys * 3 + 10; ++i) {
      ASSERT_TRUE(limiter.take("client-" + std::to_string(i)).allowed);
      if (i % 1000 == 0) {
        ASSERT_LE(limiter.size(), max_keys);
      }
    }
    EXPECT_EQ(max_keys, limiter.size());
  }
}

TEST(RateLimiterTest, ZeroMaxKeysTracksOne) {
  SimulatedTimeSource time;
  RateLimiter limiter(0.0, 1, 0, time);
  EXPECT_TRUE(limiter.take("a").allowed);
  EXPECT_FALSE(limiter.take("a").allowed);
  EXPECT_TRUE(limiter.take("b").allowed);
  EXPECT_EQ(1U, limiter.size());
}

// 4 threads x 1000 takes on one key, burst 100, no refill: exactly 100 are allowed.
TEST(RateLimiterTest, ExactAcrossThreads) {
  for (double rate : {0.0, 10.0}) {  // frozen time: a rate makes no difference
    for (size_t max_keys : {size_t{16}, size_t{100000}}) {  // one shard, many shards
      SCOPED_TRACE(testing::Message() << "rate=" << rate << " max_keys=" << max_keys);
      SimulatedTimeSource time;
      RateLimiter limiter(rate, 100, max_keys, time);
      std::atomic<int> allowed{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          for (int i = 0; i < 1000; ++i) {
            if (limiter.take("hot-key").allowed) {
              allowed.fetch_add(1, std::memory_order_relaxed);
            }
          }
        });
      }
      for (auto& t : threads) {
        t.join();
      }
      EXPECT_EQ(100, allowed.load());
      EXPECT_EQ(1U, limiter.size());
    }
  }
}

// Many keys from many threads with constant eviction: the table stays bounded (and TSan clean).
TEST(RateLimiterTest, ConcurrentEvictionStaysBounded) {
  SimulatedTimeSource time;
  RateLimiter limiter(5.0, 3, 16, time);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&limiter, t] {
      for (int i = 0; i < 2000; ++i) {
        limiter.take("k" + std::to_string((i * 7 + t) % 50));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(16U, limiter.size());
}

// === parseRate ===

struct RateCase {
  std::string text;
  std::optional<double> expected;
};

TEST(ParseRateTest, Table) {
  const std::vector<RateCase> cases = {
      {"100/s", 100.0},
      {"6000/m", 100.0},
      {"10/h", 10.0 / 3600},
      {"0.5/s", 0.5},
      {"1/s", 1.0},
      {"1.25/m", 1.25 / 60},
      {"007/s", 7.0},
      {"", std::nullopt},
      {"100", std::nullopt},
      {"100/", std::nullopt},
      {"/s", std::nullopt},
      {"100/d", std::nullopt},
      {"100/S", std::nullopt},
      {"100/sec", std::nullopt},
      {"100/s/s", std::nullopt},
      {"0/s", std::nullopt},
      {"0.0/s", std::nullopt},
      {"-1/s", std::nullopt},
      {"+1/s", std::nullopt},
      {".5/s", std::nullopt},
      {"5./s", std::nullopt},
      {"1.2.3/s", std::nullopt},
      {"1e3/s", std::nullopt},
      {"inf/s", std::nullopt},
      {"nan/s", std::nullopt},
      {" 100/s", std::nullopt},
      {"100 /s", std::nullopt},
      {"100/ s", std::nullopt},
      {"ten/s", std::nullopt},
  };
  for (const RateCase& c : cases) {
    SCOPED_TRACE("text=\"" + c.text + "\"");
    const auto got = parseRate(c.text);
    if (c.expected) {
      ASSERT_TRUE(got.has_value());
      EXPECT_DOUBLE_EQ(*c.expected, *got);
    } else {
      EXPECT_FALSE(got.has_value()) << *got;
    }
  }
}

}  // namespace
}  // namespace levee::common
