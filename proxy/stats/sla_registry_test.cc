#include "proxy/stats/sla_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace levee::stats {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// Records on behalf of a thread slot (the test thread plays worker `slot`).
struct SlotScope {
  explicit SlotScope(uint32_t slot) : saved(threadSlot()) { setThreadSlot(slot); }
  ~SlotScope() { setThreadSlot(saved); }
  uint32_t saved;
};

class SlaRegistryTest : public ::testing::Test {
protected:
  // Main thread slot 0 plus two workers.
  SlaRegistry registry_{3};
  SimulatedTimeSource time_;
};

TEST_F(SlaRegistryTest, SeriesAreIdempotentAndStable) {
  SlaSeries& a = registry_.series("in", "r", "app");
  SlaSeries& b = registry_.series("in", "r", "app");
  SlaSeries& c = registry_.series("in", "r", "other");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
}

TEST_F(SlaRegistryTest, MergesThreadsAndWindows) {
  registry_.configure({99.9, 0.2, 90}, {{"in", "r", "app"}});
  SlaSeries& s = registry_.series("in", "r", "app");
  {
    SlotScope w1(1);
    for (int i = 0; i < 90; ++i) {
      s.record(time_.monotonicTime(), 200, 0.0005);
    }
  }
  {
    SlotScope w2(2);
    for (int i = 0; i < 10; ++i) {
      s.record(time_.monotonicTime(), 503, 0.0005);
    }
    for (int i = 0; i < 10; ++i) {
      s.record(time_.monotonicTime(), 200, 0.3);  // slower than the 200 ms threshold
    }
  }
  {
    SlotScope none(kSharedThreadSlot);  // a thread without a slot: the shared rings
    s.record(time_.monotonicTime(), 429, 0.0005);
  }
  auto w = s.windows(time_.monotonicTime());
  for (const auto& counts : w) {
    EXPECT_EQ(111U, counts.requests);
    EXPECT_EQ(10U, counts.errors);
    EXPECT_EQ(10U, counts.slow);
  }
  // 2 minutes later the 1m window is empty, 5m and 1h still hold everything.
  time_.advance(seconds(120));
  w = s.windows(time_.monotonicTime());
  EXPECT_EQ(0U, w[0].requests);
  EXPECT_EQ(111U, w[1].requests);
  EXPECT_EQ(111U, w[2].requests);
  // After 10 minutes only the 1h window remembers; after 61 nothing does.
  time_.advance(seconds(480));
  w = s.windows(time_.monotonicTime());
  EXPECT_EQ(0U, w[1].requests);
  EXPECT_EQ(111U, w[2].requests);
  time_.advance(seconds(3060));
  w = s.windows(time_.monotonicTime());
  EXPECT_EQ(0U, w[2].requests);
}

TEST_F(SlaRegistryTest, ReportJson) {
  registry_.configure({95, 0.2, 90}, {{"in", "r", "app"}, {"in", "idle", "app"}});
  SlaSeries& s = registry_.series("in", "r", "app");
  SlotScope w1(1);
  for (int i = 0; i < 90; ++i) {
    s.record(time_.monotonicTime(), 200, 0.0005);
  }
  for (int i = 0; i < 10; ++i) {
    s.record(time_.monotonicTime(), 503, 0.3);
  }
  const std::string j = registry_.reportJson(time_.monotonicTime());
  EXPECT_THAT(j, HasSubstr(R"("slo":{"availability_percent":95,"latency":{"threshold_seconds":0.2,"percent":90}})"));
  EXPECT_THAT(j, HasSubstr(R"("windows":["1m","5m","1h"])"));
  EXPECT_THAT(j, HasSubstr(R"({"listener":"in","route":"r","upstream":"app","windows":{"1m":{"requests":100,"errors":10,"availability":0.9,"error_rate":0.1,)"));
  // 10% errors against 5% allowed: burn rate 2, remaining -1 (not clamped).
  EXPECT_THAT(j, HasSubstr(R"("availability":{"allowed_ratio":0.05,"burn_rate":2,"remaining":-1})"));
  // 10% slow against 10% allowed: exactly the budget.
  EXPECT_THAT(j, HasSubstr(R"("slow_requests":10,"latency_within_threshold":0.9,)"));
  EXPECT_THAT(j, HasSubstr(R"("latency":{"allowed_ratio":0.1,"burn_rate":1,"remaining":0})"));
  // A configured route without traffic is listed with nulls, and an untouched budget.
  EXPECT_THAT(j, HasSubstr(R"({"listener":"in","route":"idle","upstream":"app","windows":{"1m":{"requests":0,"errors":0,"availability":null,"error_rate":null,"latency_seconds":{"p50":null,"p95":null,"p99":null})"));
  EXPECT_THAT(j, HasSubstr(R"("availability":{"allowed_ratio":0.05,"burn_rate":0,"remaining":1})"));
}

TEST_F(SlaRegistryTest, RoutesThatLeftThePolicyStayWhileTheirHourHasRequests) {
  registry_.configure({}, {{"in", "old", "app"}});
  {
    SlotScope w1(1);
    registry_.series("in", "old", "app").record(time_.monotonicTime(), 200, 0.01);
  }
  registry_.configure({}, {{"in", "new", "app"}});
  EXPECT_THAT(registry_.reportJson(time_.monotonicTime()), HasSubstr(R"("route":"old")"));
  EXPECT_THAT(registry_.reportJson(time_.monotonicTime()), HasSubstr(R"("route":"new")"));
  time_.advance(seconds(3700));
  const std::string later = registry_.reportJson(time_.monotonicTime());
  EXPECT_THAT(later, Not(HasSubstr(R"("route":"old")")));
  EXPECT_THAT(later, HasSubstr(R"("route":"new")"));
  // Without objectives: null SLO, no budgets.
  EXPECT_THAT(later, HasSubstr(R"("slo":{"availability_percent":null,"latency":null})"));
  EXPECT_THAT(later, HasSubstr(R"("error_budget":{})"));
}

TEST_F(SlaRegistryTest, Gauges) {
  Store store(3);
  registry_.registerGauges(store, time_);
  registry_.configure({99, 0.5, 99}, {{"in", "r", "app"}, {"in", "idle", "app"}});
  {
    SlotScope w1(1);
    SlaSeries& s = registry_.series("in", "r", "app");
    for (int i = 0; i < 99; ++i) {
      s.record(time_.monotonicTime(), 200, 0.01);
    }
    s.record(time_.monotonicTime(), 500, 0.01);
  }
  const std::string text = store.renderPrometheus();
  const std::string r = R"(listener="in",route="r",upstream="app",)";
  EXPECT_THAT(text, HasSubstr("# TYPE levee_sla_availability_ratio gauge\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_availability_ratio{" + r + "window=\"1m\"} 0.99\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_availability_ratio{" + r + "window=\"1h\"} 0.99\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_requests{" + r + "window=\"5m\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_latency_seconds{" + r + "window=\"1m\",percentile=\"99\"} "));
  EXPECT_THAT(text, HasSubstr("levee_sla_error_budget_remaining_ratio{" + r +
                              "window=\"1m\",slo=\"availability\"} 0"));
  EXPECT_THAT(text, HasSubstr("levee_sla_error_budget_burn_rate{" + r +
                              "window=\"1m\",slo=\"latency\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_latency_within_threshold_ratio{" + r + "window=\"1m\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_objective_ratio{" + r + "slo=\"availability\"} 0.99\n"));
  EXPECT_THAT(text, HasSubstr("levee_sla_latency_threshold_seconds 0.5\n"));
  // The idle route: a request count of 0, but no ratio or quantile of nothing.
  const std::string idle = R"(listener="in",route="idle",upstream="app",)";
  EXPECT_THAT(text, HasSubstr("levee_sla_requests{" + idle + "window=\"1m\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("levee_sla_availability_ratio{" + idle)));
  EXPECT_THAT(text, Not(HasSubstr("levee_sla_latency_seconds{" + idle)));
}

TEST_F(SlaRegistryTest, ConcurrentRecordingAndReading) {
  // Two writers on their own slots and a reader merging meanwhile (meaningful under TSan).
  registry_.configure({99.9, 0.1, 99}, {{"in", "r", "app"}});
  SlaSeries& s = registry_.series("in", "r", "app");
  const MonotonicTime t0 = time_.monotonicTime();
  constexpr int kPerThread = 20000;
  auto writer = [&](uint32_t slot) {
    setThreadSlot(slot);
    for (int i = 0; i < kPerThread; ++i) {
      // Walk through time so that buckets are recycled while the reader reads.
      s.record(t0 + std::chrono::milliseconds(i * 50), i % 100 == 0 ? 503 : 200, 0.001 * (i % 300));
    }
  };
  std::thread a(writer, 1);
  std::thread b(writer, 2);
  uint64_t max_seen = 0;
  for (int i = 0; i < 200; ++i) {
    auto w = s.windows(t0 + std::chrono::milliseconds(i * 5000));
    max_seen = std::max(max_seen, w[2].requests);
    EXPECT_LE(w[2].requests, 2U * kPerThread);
  }
  a.join();
  b.join();
  // Writers covered 1000 s; the 1h window at the end holds every request.
  auto w = s.windows(t0 + std::chrono::milliseconds(kPerThread * 50));
  EXPECT_EQ(2U * kPerThread, w[2].requests);
  EXPECT_EQ(2U * kPerThread / 100, w[2].errors);
  EXPECT_LE(max_seen, 2U * kPerThread);
}

}  // namespace
}  // namespace levee::stats
