#include "proxy/stats/sla_window.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

namespace levee::stats::sla {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(SlaLatencyLayoutTest, BoundsAreGeometricFromOneMillisecond) {
  EXPECT_DOUBLE_EQ(0.001, latencyBound(0));
  EXPECT_DOUBLE_EQ(0.002, latencyBound(4));
  EXPECT_DOUBLE_EQ(0.256, latencyBound(32));
  EXPECT_NEAR(92.68, latencyBound(kLatencyBounds - 1), 0.01);
  EXPECT_TRUE(std::isinf(latencyBound(kLatencyBounds)));
  for (size_t i = 1; i < kLatencyBounds; ++i) {
    EXPECT_NEAR(std::exp2(0.25), latencyBound(i) / latencyBound(i - 1), 1e-9);
  }
}

TEST(SlaLatencyLayoutTest, BucketOfFollowsLeSemantics) {
  struct Case {
    double seconds;
    size_t bucket;
  };
  const Case cases[] = {
      {0.0, 0},        {-1.0, 0},        {std::nan(""), 0}, {0.0005, 0}, {0.001, 0},
      {0.0011, 1},     {0.002, 4},       {0.256, 32},       {0.3, 33},   {0.3045, 34},
      {92.0, kLatencyBounds - 1},        {1000.0, kLatencyBounds},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.bucket, latencyBucketOf(c.seconds)) << c.seconds;
  }
}

Counts histogram(std::vector<std::pair<double, uint64_t>> values) {
  Counts c;
  for (auto [s, n] : values) {
    c.latency[latencyBucketOf(s)] += n;
    c.requests += n;
  }
  return c;
}

TEST(SlaQuantileTest, InterpolatesInsideTheBucket) {
  struct Case {
    std::string name;
    Counts counts;
    double q;
    double expected;
  };
  const double b32 = latencyBound(32);  // 0.256
  const double b33 = latencyBound(33);  // 0.304
  const Case cases[] = {
      {"empty_is_nan", Counts{}, 0.5, std::nan("")},
      // 100 values in bucket 33: rank 50 is half way between its bounds.
      {"middle_of_one_bucket", histogram({{0.3, 100}}), 0.5, b32 + (b33 - b32) * 0.5},
      {"top_of_one_bucket", histogram({{0.3, 100}}), 1.0, b33},
      // 90 fast (bucket 0: [0, 1ms]) and 10 slow: p50 in the fast bucket, p99 in the slow one.
      {"p50_fast", histogram({{0.0005, 90}, {0.3, 10}}), 0.5, 0.001 * 50.0 / 90.0},
      {"p90_is_last_fast", histogram({{0.0005, 90}, {0.3, 10}}), 0.9, 0.001},
      {"p99_slow", histogram({{0.0005, 90}, {0.3, 10}}), 0.99, b32 + (b33 - b32) * 0.9},
      {"inf_bucket_reports_last_bound", histogram({{500.0, 10}}), 0.99,
       latencyBound(kLatencyBounds - 1)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const double got = quantile(c.counts, c.q);
    if (std::isnan(c.expected)) {
      EXPECT_TRUE(std::isnan(got)) << got;
    } else {
      EXPECT_NEAR(c.expected, got, 1e-12);
    }
  }
}

TEST(SlaQuantileTest, WithinNineteenPercentOfTheTrueValue) {
  for (double v = 0.0012; v < 90; v *= 1.07) {
    const double got = quantile(histogram({{v, 1}}), 0.5);
    EXPECT_LE(std::abs(got - v) / v, 0.19) << v;
  }
}

TEST(SlaBudgetTest, Table) {
  struct Case {
    std::string name;
    uint64_t bad, requests;
    double objective;
    double allowed, burn, remaining;
  };
  const Case cases[] = {
      {"no_requests_nothing_spent", 0, 0, 99.9, 0.001, 0, 1},
      {"no_errors", 0, 1000, 99.9, 0.001, 0, 1},
      {"exactly_the_budget", 1, 1000, 99.9, 0.001, 1, 0},
      {"half_the_budget", 5, 10000, 99.9, 0.001, 0.5, 0.5},
      {"overspent_is_negative", 10, 110, 95, 0.05, (10.0 / 110) / 0.05, 1 - (10.0 / 110) / 0.05},
      {"all_bad", 100, 100, 99, 0.01, 100, -99},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Budget b = budget(c.bad, c.requests, c.objective);
    EXPECT_NEAR(c.allowed, b.allowed, 1e-12);
    EXPECT_NEAR(c.burn, b.burn_rate, 1e-9);
    EXPECT_NEAR(c.remaining, b.remaining, 1e-9);
  }
}

TEST(SlaSummaryTest, RatiosQuantilesAndBudgets) {
  Counts c = histogram({{0.0005, 90}, {0.0005, 10}, {0.3, 10}});
  c.errors = 10;
  c.slow = 10;
  const Summary s = summarize(c, Objectives{95, 0.2, 90});
  EXPECT_EQ(110U, s.requests);
  EXPECT_NEAR(100.0 / 110, s.availability, 1e-12);
  EXPECT_NEAR(10.0 / 110, s.error_rate, 1e-12);
  EXPECT_NEAR(100.0 / 110, s.latency_within_threshold, 1e-12);
  EXPECT_LE(s.p50, 0.001);
  EXPECT_GT(s.p99, latencyBound(32));
  EXPECT_LE(s.p99, latencyBound(33));
  EXPECT_NEAR(1 - (10.0 / 110) / 0.05, s.availability_budget.remaining, 1e-9);
  EXPECT_NEAR(1 - (10.0 / 110) / 0.1, s.latency_budget.remaining, 1e-9);

  const Summary none = summarize(Counts{}, Objectives{});
  EXPECT_TRUE(std::isnan(none.availability));
  EXPECT_TRUE(std::isnan(none.error_rate));
  EXPECT_TRUE(std::isnan(none.p99));
  EXPECT_TRUE(std::isnan(none.latency_within_threshold));
}

TEST(SlaErrorTest, OnlyFiveHundredsCount) {
  EXPECT_FALSE(isError(200));
  EXPECT_FALSE(isError(304));
  EXPECT_FALSE(isError(404));
  EXPECT_FALSE(isError(429));
  EXPECT_FALSE(isError(499));
  EXPECT_TRUE(isError(500));
  EXPECT_TRUE(isError(503));
  EXPECT_TRUE(isError(504));
}

// One step of a ring scenario: advance the clock, record `n` requests (error/slow flags), then
// expect the totals of a window of `window` buckets.
struct Step {
  milliseconds advance;
  uint32_t n;
  bool error;
  uint32_t window;
  uint64_t requests, errors;
};

struct RingCase {
  std::string name;
  milliseconds width;
  uint32_t buckets;
  std::vector<Step> steps;
};

TEST(SlaRingTest, Scenarios) {
  const RingCase cases[] = {
      {"same_bucket_accumulates",
       milliseconds(10000),
       30,
       {{milliseconds(0), 3, false, 6, 3, 0}, {milliseconds(5000), 2, true, 6, 5, 2}}},
      {"one_minute_of_ten_second_buckets",
       milliseconds(10000),
       30,
       // t=0: 1 request; at t=50s it is still in the 6-bucket window, at t=60s it is gone
       // from the 1m window but still in the 5m one.
       {{milliseconds(0), 1, true, 6, 1, 1},
        {milliseconds(50000), 0, false, 6, 1, 1},
        {milliseconds(10000), 0, false, 6, 0, 0},
        {milliseconds(0), 0, false, 30, 1, 1},
        {milliseconds(240000), 0, false, 30, 0, 0}}},
      {"wrap_recycles_the_slot",
       milliseconds(1000),
       4,
       {{milliseconds(0), 5, true, 4, 5, 5},
        {milliseconds(4000), 1, false, 4, 1, 0},  // same slot, one ring later
        {milliseconds(1000), 1, false, 4, 2, 0}}},
      {"long_idle_forgets_everything",
       milliseconds(1000),
       4,
       {{milliseconds(0), 7, true, 4, 7, 7}, {milliseconds(3600000), 0, false, 4, 0, 0}}},
      {"window_larger_than_ring_is_the_ring",
       milliseconds(1000),
       2,
       {{milliseconds(0), 1, false, 100, 1, 0},
        {milliseconds(1000), 1, false, 100, 2, 0},
        {milliseconds(1000), 1, false, 100, 2, 0}}},
      {"zero_buckets_behaves_as_one",
       milliseconds(1000),
       0,
       {{milliseconds(0), 2, false, 1, 2, 0}, {milliseconds(1000), 0, false, 1, 0, 0}}},
  };
  for (const RingCase& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    Ring ring(c.width, c.buckets);
    for (size_t i = 0; i < c.steps.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(i));
      const Step& s = c.steps[i];
      time.advance(s.advance);
      for (uint32_t k = 0; k < s.n; ++k) {
        ring.record(time.monotonicTime(), s.error, false, 0);
      }
      Counts got;
      ring.addTo(time.monotonicTime(), s.window, got);
      EXPECT_EQ(s.requests, got.requests);
      EXPECT_EQ(s.errors, got.errors);
      EXPECT_EQ(s.requests, got.latency[0]);
    }
  }
}

TEST(SlaRingTest, OlderTimestampCountsInNewestBucket) {
  SimulatedTimeSource time;
  Ring ring(seconds(10), 6);
  const MonotonicTime early = time.monotonicTime();
  time.advance(seconds(30));
  ring.record(time.monotonicTime(), false, false, 3);
  ring.record(early, true, true, 5);  // read the clock before the previous record
  Counts now;
  ring.addTo(time.monotonicTime(), 1, now);  // the newest bucket alone holds both
  EXPECT_EQ(2U, now.requests);
  EXPECT_EQ(1U, now.errors);
  EXPECT_EQ(1U, now.slow);
  EXPECT_EQ(1U, now.latency[3]);
  EXPECT_EQ(1U, now.latency[5]);
}

TEST(SlaRingTest, FutureBucketsAreNotCountedYet) {
  SimulatedTimeSource time;
  Ring ring(seconds(10), 6);
  const MonotonicTime before = time.monotonicTime();
  time.advance(seconds(10));
  ring.record(time.monotonicTime(), false, false, 0);
  Counts got;
  ring.addTo(before, 6, got);  // a reader whose clock is one bucket behind the writer
  EXPECT_EQ(0U, got.requests);
}

TEST(SlaRingTest, MemoryIsFixedWhateverTheTraffic) {
  SimulatedTimeSource time;
  Ring ring(seconds(10), 30);
  for (int i = 0; i < 100000; ++i) {
    time.advance(milliseconds(7));
    ring.record(time.monotonicTime(), i % 10 == 0, false, static_cast<size_t>(i % 80));
  }
  EXPECT_EQ(30U, ring.bucketCount());
  Counts got;
  ring.addTo(time.monotonicTime(), 30, got);
  // 700 s of traffic at one request per 7 ms: the last 290-300 s remain.
  EXPECT_GE(got.requests, 290000U / 7);
  EXPECT_LE(got.requests, 300000U / 7 + 1);
  EXPECT_GT(got.latency[kLatencyBuckets - 1], 0U);  // indexes past +Inf are clamped
}

}  // namespace
}  // namespace levee::stats::sla
