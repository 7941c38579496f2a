#include "proxy/common/outlier_detector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;
using R = OutlierDetector::Result;

OutlierParams baseParams() {
  OutlierParams p;
  p.consecutive_5xx = 3;
  p.consecutive_local = 3;
  p.interval = milliseconds(1000);
  p.failure_percentage = 0;
  p.minimum_requests = 10;
  p.base_ejection = milliseconds(1000);
  p.max_ejection = milliseconds(3500);
  p.max_ejection_percent = 100;
  return p;
}

TEST(OutlierDetectorTest, Consecutive5xxAndLocalCountedSeparately) {
  struct Case {
    std::string name;
    uint32_t consecutive_5xx;
    uint32_t consecutive_local;
    std::vector<R> results;
    bool ejected;
  };
  const Case cases[] = {
      {"three_5xx", 3, 3, {R::Status5xx, R::Status5xx, R::Status5xx}, true},
      {"three_local", 3, 3, {R::LocalFailure, R::LocalFailure, R::LocalFailure}, true},
      {"interleaved_do_not_add_up", 3, 3,
       {R::Status5xx, R::LocalFailure, R::Status5xx, R::LocalFailure}, false},
      {"local_does_not_break_5xx_streak", 3, 3,
       {R::Status5xx, R::LocalFailure, R::Status5xx, R::LocalFailure, R::Status5xx}, true},
      {"5xx_does_not_break_local_streak", 3, 3,
       {R::LocalFailure, R::Status5xx, R::LocalFailure, R::LocalFailure}, true},
      {"success_resets_5xx", 3, 3,
       {R::Status5xx, R::Status5xx, R::Success, R::Status5xx, R::Status5xx}, false},
      {"success_resets_local", 3, 3,
       {R::LocalFailure, R::LocalFailure, R::Success, R::LocalFailure, R::LocalFailure}, false},
      {"5xx_trigger_off", 0, 3, std::vector<R>(20, R::Status5xx), false},
      {"local_trigger_off", 3, 0, std::vector<R>(20, R::LocalFailure), false},
      {"different_thresholds", 5, 2, {R::LocalFailure, R::LocalFailure}, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    OutlierParams p = baseParams();
    p.consecutive_5xx = c.consecutive_5xx;
    p.consecutive_local = c.consecutive_local;
    OutlierDetector od(p, time, 4);
    for (R r : c.results) {
      od.onResult(0, r);
    }
    EXPECT_EQ(c.ejected, od.isEjected(0));
    EXPECT_FALSE(od.isEjected(1));
    EXPECT_EQ(c.ejected ? 1u : 0u, od.ejectionsTotal());
  }
}

TEST(OutlierDetectorTest, StatsByCause) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 4);
  for (int i = 0; i < 3; ++i) {
    od.onResult(0, R::Status5xx);
    od.onResult(1, R::LocalFailure);
  }
  const auto s = od.stats();
  EXPECT_EQ(2u, s.ejections_total);
  EXPECT_EQ(1u, s.ejections_consecutive_5xx);
  EXPECT_EQ(1u, s.ejections_consecutive_local);
  EXPECT_EQ(0u, s.ejections_failure_percentage);
  EXPECT_EQ(0u, s.ejections_overflow);
}

// envoy#3263: the percentage is always honoured, even when that means ejecting nobody.
TEST(OutlierDetectorTest, MaxEjectionPercentIsAlwaysHonoured) {
  struct Case {
    size_t endpoints;
    uint32_t percent;
    size_t max_ejected;  // floor(endpoints * percent / 100)
  };
  const Case cases[] = {
      {1, 0, 0},  {1, 10, 0},  {1, 50, 0},  {1, 100, 1},   //
      {2, 0, 0},  {2, 10, 0},  {2, 50, 1},  {2, 100, 2},   //
      {3, 0, 0},  {3, 10, 0},  {3, 50, 1},  {3, 100, 3},   //
      {10, 0, 0}, {10, 10, 1}, {10, 50, 5}, {10, 100, 10},  //
      {4, 150, 4},  // above 100 is treated as 100
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.endpoints) + " endpoints, " + std::to_string(c.percent) + "%");
    SimulatedTimeSource time;
    OutlierParams p = baseParams();
    p.consecutive_5xx = 1;
    p.max_ejection_percent = c.percent;
    OutlierDetector od(p, time, c.endpoints);
    for (size_t i = 0; i < c.endpoints; ++i) {
      od.onResult(i, R::Status5xx);
    }
    size_t ejected = 0;
    for (bool e : od.ejected()) {
      ejected += e ? 1 : 0;
    }
    EXPECT_EQ(c.max_ejected, ejected);
    EXPECT_EQ(c.max_ejected, od.ejectionsTotal());
    EXPECT_EQ(c.endpoints - c.max_ejected, od.stats().ejections_overflow);
  }
}

TEST(OutlierDetectorTest, RefusedEjectionRetriesWhenCapacityFrees) {
  SimulatedTimeSource time;
  OutlierParams p = baseParams();
  p.max_ejection_percent = 50;
  OutlierDetector od(p, time, 2);
  for (int i = 0; i < 3; ++i) {
    od.onResult(0, R::Status5xx);
    od.onResult(1, R::Status5xx);
  }
  EXPECT_EQ((std::vector<bool>{true, false}), od.ejected());
  od.onHealthCheckPassed(0);
  od.onResult(1, R::Status5xx);  // its streak was kept: ejects at once now
  EXPECT_EQ((std::vector<bool>{false, true}), od.ejected());
}

TEST(OutlierDetectorTest, EjectionTimeGrowsAndCaps) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 2);
  // base 1000ms x ejections, capped at 3500ms.
  const milliseconds expected[] = {milliseconds(1000), milliseconds(2000), milliseconds(3000),
                                   milliseconds(3500), milliseconds(3500)};
  for (size_t i = 0; i < std::size(expected); ++i) {
    SCOPED_TRACE(i);
    for (int k = 0; k < 3; ++k) {
      od.onResult(0, R::Status5xx);
    }
    ASSERT_TRUE(od.isEjected(0));
    EXPECT_EQ(i + 1, od.ejectionCount(0));
    time.advance(expected[i] - milliseconds(1));
    od.tick();
    EXPECT_TRUE(od.isEjected(0));
    time.advance(milliseconds(1));
    EXPECT_FALSE(od.isEjected(0));  // lazily, without tick()
  }
  EXPECT_EQ(0u, od.ejectionCount(1));
  EXPECT_EQ(std::size(expected), od.ejectionsTotal());
}

TEST(OutlierDetectorTest, UnejectAfterTimeViaTick) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 3);
  for (int k = 0; k < 3; ++k) {
    od.onResult(1, R::LocalFailure);
  }
  EXPECT_EQ((std::vector<bool>{false, true, false}), od.ejected());
  time.advance(milliseconds(1000));
  od.tick();
  EXPECT_EQ((std::vector<bool>{false, false, false}), od.ejected());
  // Un-ejected with fresh counters: two more failures are not enough.
  od.onResult(1, R::LocalFailure);
  od.onResult(1, R::LocalFailure);
  EXPECT_FALSE(od.isEjected(1));
}

TEST(OutlierDetectorTest, UnejectAfterPassingHealthCheck) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 2);
  for (int k = 0; k < 3; ++k) {
    od.onResult(0, R::Status5xx);
  }
  ASSERT_TRUE(od.isEjected(0));
  od.onHealthCheckPassed(1);  // not ejected: no effect
  od.onHealthCheckPassed(0);
  EXPECT_FALSE(od.isEjected(0));
  // The ejection count is kept, so the next ejection is longer.
  for (int k = 0; k < 3; ++k) {
    od.onResult(0, R::Status5xx);
  }
  time.advance(milliseconds(1999));
  EXPECT_TRUE(od.isEjected(0));
  time.advance(milliseconds(1));
  EXPECT_FALSE(od.isEjected(0));
}

TEST(OutlierDetectorTest, FailurePercentageNeedsMinimumVolume) {
  struct Case {
    std::string name;
    uint64_t requests;
    uint64_t failures;
    bool ejected;
  };
  const Case cases[] = {
      {"below_minimum_all_failing", 9, 9, false},
      {"at_minimum_at_threshold", 10, 5, true},
      {"at_minimum_below_threshold", 10, 4, false},
      {"above_minimum_above_threshold", 40, 30, true},
      {"no_traffic", 0, 0, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    OutlierParams p = baseParams();
    p.consecutive_5xx = 0;
    p.consecutive_local = 0;
    p.failure_percentage = 50;
    p.minimum_requests = 10;
    OutlierDetector od(p, time, 4);
    for (uint64_t i = 0; i < c.requests; ++i) {
      // Failures alternate in kind; both count towards the percentage.
      const R r = i < c.failures ? (i % 2 == 0 ? R::Status5xx : R::LocalFailure) : R::Success;
      od.onResult(2, r);
    }
    time.advance(milliseconds(999));
    od.tick();  // the interval has not elapsed: no evaluation yet
    EXPECT_FALSE(od.isEjected(2));
    time.advance(milliseconds(1));
    od.tick();
    EXPECT_EQ(c.ejected, od.isEjected(2));
    EXPECT_EQ(c.ejected ? 1u : 0u, od.stats().ejections_failure_percentage);
  }
}

TEST(OutlierDetectorTest, FailurePercentageCountersResetEachInterval) {
  SimulatedTimeSource time;
  OutlierParams p = baseParams();
  p.consecutive_5xx = 0;
  p.failure_percentage = 50;
  p.minimum_requests = 10;
  OutlierDetector od(p, time, 2);
  for (int i = 0; i < 9; ++i) {
    od.onResult(0, R::Status5xx);
  }
  time.advance(milliseconds(1000));
  od.tick();
  od.onResult(0, R::Status5xx);  // 10 in total, but only 1 in this interval
  time.advance(milliseconds(1000));
  od.tick();
  EXPECT_FALSE(od.isEjected(0));
}

TEST(OutlierDetectorTest, SetEndpointCountKeepsExistingState) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 2);
  od.onResult(0, R::Status5xx);
  od.onResult(0, R::Status5xx);
  for (int k = 0; k < 3; ++k) {
    od.onResult(1, R::Status5xx);
  }
  od.setEndpointCount(4);
  EXPECT_EQ(4u, od.endpointCount());
  EXPECT_EQ((std::vector<bool>{false, true, false, false}), od.ejected());
  od.onResult(0, R::Status5xx);  // the third of a streak begun before the resize
  EXPECT_TRUE(od.isEjected(0));
  od.setEndpointCount(1);
  EXPECT_EQ((std::vector<bool>{true}), od.ejected());  // index 0 kept its ejection
  od.onResult(7, R::Status5xx);  // out of range: ignored
  EXPECT_FALSE(od.isEjected(7));
  EXPECT_EQ(0u, od.ejectionCount(7));
}

TEST(OutlierDetectorTest, ResultsWhileEjectedAreIgnored) {
  SimulatedTimeSource time;
  OutlierDetector od(baseParams(), time, 2);
  for (int k = 0; k < 3; ++k) {
    od.onResult(0, R::Status5xx);
  }
  for (int k = 0; k < 10; ++k) {
    od.onResult(0, R::Status5xx);  // in-flight requests finishing late
  }
  EXPECT_EQ(1u, od.ejectionCount(0));
  time.advance(milliseconds(1000));
  od.onResult(0, R::Status5xx);
  EXPECT_FALSE(od.isEjected(0));
}

TEST(OutlierDetectorThreadsTest, ConcurrentResultsStayWithinCap) {
  SimulatedTimeSource time;
  OutlierParams p = baseParams();
  p.max_ejection_percent = 50;
  p.failure_percentage = 30;
  p.minimum_requests = 5;
  OutlierDetector od(p, time, 8);
  std::atomic<bool> over_cap{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&od, &over_cap, t] {
      uint32_t x = 88172645u + static_cast<uint32_t>(t);
      for (int i = 0; i < 20000; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const R r = x % 3 == 0 ? R::Status5xx : (x % 3 == 1 ? R::LocalFailure : R::Success);
        od.onResult(x % 8, r);
        if (i % 500 == 0) {
          od.tick();
          od.onHealthCheckPassed(x % 8);
          size_t n = 0;
          for (bool e : od.ejected()) {
            n += e ? 1 : 0;
          }
          if (n > 4) {
            over_cap = true;
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_FALSE(over_cap.load());
  EXPECT_GT(od.ejectionsTotal(), 0u);
}

}  // namespace
}  // namespace levee::common
