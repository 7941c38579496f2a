#include "proxy/common/sliding_window.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;

// One step of a scenario: advance the clock, then record (if `record`), then check totals.
struct Step {
  milliseconds advance;
  bool record;
  bool failure;
  bool slow;
  WindowTotals expected;
};

struct WindowCase {
  std::string name;
  milliseconds window;
  uint32_t buckets;
  std::vector<Step> steps;
};

TEST(SlidingWindowTest, Scenarios) {
  const WindowCase cases[] = {
      {"counts_in_one_bucket",
       milliseconds(1000),
       10,
       {{milliseconds(0), true, false, false, {1, 0, 0}},
        {milliseconds(0), true, true, false, {2, 1, 0}},
        {milliseconds(0), true, true, true, {3, 2, 1}},
        {milliseconds(0), true, false, true, {4, 2, 2}}}},
      {"spread_over_buckets_all_inside",
       milliseconds(1000),
       10,
       {{milliseconds(0), true, true, false, {1, 1, 0}},
        {milliseconds(300), true, false, false, {2, 1, 0}},
        {milliseconds(600), true, true, true, {3, 2, 1}}}},
      {"old_bucket_forgotten_after_window",
       milliseconds(1000),
       10,
       {{milliseconds(0), true, true, false, {1, 1, 0}},
        {milliseconds(500), true, false, false, {2, 1, 0}},
        // 1000ms after the first record: its bucket has left the window.
        {milliseconds(500), false, false, false, {1, 0, 0}},
        {milliseconds(500), false, false, false, {0, 0, 0}}}},
      {"everything_forgotten_after_long_idle",
       milliseconds(1000),
       4,
       {{milliseconds(0), true, true, true, {1, 1, 1}},
        {milliseconds(0), true, true, true, {2, 2, 2}},
        {milliseconds(3600000), false, false, false, {0, 0, 0}},
        {milliseconds(0), true, false, false, {1, 0, 0}}}},
      {"slot_reuse_after_wrap_discards_old_counts",
       milliseconds(100),
       2,
       // width 50ms; record at t, t+100 (same slot, one window later): the old count is gone.
       {{milliseconds(0), true, true, false, {1, 1, 0}},
        {milliseconds(100), true, false, false, {1, 0, 0}}}},
      {"single_bucket",
       milliseconds(100),
       1,
       {{milliseconds(0), true, true, false, {1, 1, 0}},
        {milliseconds(99), true, false, false, {2, 1, 0}},
        {milliseconds(100), false, false, false, {0, 0, 0}}}},
      {"zero_buckets_behaves_as_one",
       milliseconds(100),
       0,
       {{milliseconds(0), true, true, false, {1, 1, 0}},
        {milliseconds(100), false, false, false, {0, 0, 0}}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    SlidingWindow window(c.window, c.buckets);
    for (size_t i = 0; i < c.steps.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(i));
      const Step& s = c.steps[i];
      time.advance(s.advance);
      if (s.record) {
        window.record(time.monotonicTime(), s.failure, s.slow);
      }
      EXPECT_EQ(s.expected, window.totals(time.monotonicTime()));
    }
  }
}

TEST(SlidingWindowTest, ResetForgetsEverything) {
  SimulatedTimeSource time;
  SlidingWindow window(milliseconds(1000), 10);
  window.record(time.monotonicTime(), true, true);
  window.record(time.monotonicTime(), false, false);
  window.reset();
  EXPECT_EQ((WindowTotals{0, 0, 0}), window.totals(time.monotonicTime()));
  window.record(time.monotonicTime(), true, false);
  EXPECT_EQ((WindowTotals{1, 1, 0}), window.totals(time.monotonicTime()));
}

TEST(SlidingWindowTest, OlderTimestampCountsInNewestBucket) {
  // A thread that read the clock before another recorded a later bucket must not resurrect an
  // expired slot nor be lost.
  SimulatedTimeSource time;
  SlidingWindow window(milliseconds(1000), 10);
  const MonotonicTime early = time.monotonicTime();
  time.advance(milliseconds(500));
  window.record(time.monotonicTime(), false, false);
  window.record(early, true, false);
  EXPECT_EQ((WindowTotals{2, 1, 0}), window.totals(time.monotonicTime()));
  EXPECT_EQ((WindowTotals{2, 1, 0}), window.totals(early));
  time.advance(milliseconds(1000));
  EXPECT_EQ((WindowTotals{0, 0, 0}), window.totals(time.monotonicTime()));
}

TEST(SlidingWindowTest, MemoryIsFixed) {
  SimulatedTimeSource time;
  SlidingWindow window(milliseconds(1000), 10);
  EXPECT_EQ(10u, window.bucketCount());
  EXPECT_EQ(std::chrono::nanoseconds(milliseconds(100)), window.bucketWidth());
  for (int i = 0; i < 100000; ++i) {
    window.record(time.monotonicTime(), (i % 2) == 0, false);
    time.advance(std::chrono::microseconds(37));
  }
  EXPECT_EQ(10u, window.bucketCount());
  // Only the last window's worth (about 1000ms / 37us) is counted.
  const WindowTotals t = window.totals(time.monotonicTime());
  EXPECT_GE(t.total, 900000u / 37u);
  EXPECT_LE(t.total, 1000000u / 37u + 1);
}

}  // namespace
}  // namespace levee::common
