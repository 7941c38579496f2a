#include "proxy/stats/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace levee::stats {
namespace {

// Resets this thread's slot when a test ends, so tests do not leak state into each other.
class SlotGuard {
public:
  explicit SlotGuard(uint32_t slot) : saved_(threadSlot()) { setThreadSlot(slot); }
  ~SlotGuard() { setThreadSlot(saved_); }

private:
  uint32_t saved_;
};

TEST(StoreTest, ThreadSlotDefaultsToZeroAndIsPerThread) {
  EXPECT_EQ(0U, threadSlot());
  std::thread t([] {
    EXPECT_EQ(0U, threadSlot());
    setThreadSlot(3);
    EXPECT_EQ(3U, threadSlot());
  });
  t.join();
  EXPECT_EQ(0U, threadSlot());
}

TEST(StoreTest, PerThreadSlotsSumAcrossRealThreads) {
  constexpr uint32_t kWorkers = 4;
  constexpr uint64_t kIters = 20000;
  Store store(kWorkers + 1);
  Counter& c = store.counter("levee_test_ops_total", "Ops.");
  Gauge& g = store.gauge("levee_test_active", "Active.");
  Histogram& h = store.histogram("levee_test_latency_seconds", "Latency.", {0.1, 1});

  std::atomic<bool> stop{false};
  // A concurrent scraper: sums must be race-free (TSan) and never exceed the final totals.
  std::thread scraper([&] {
    setThreadSlot(0);
    while (!stop.load()) {
      EXPECT_LE(c.value(), kIters * (kWorkers + 1));
      Histogram::Snapshot snap = h.snapshot();
      EXPECT_EQ(snap.count, snap.cumulative.back());
      (void)store.renderPrometheus();
    }
  });
  std::vector<std::thread> workers;
  for (uint32_t w = 1; w <= kWorkers; ++w) {
    workers.emplace_back([&, w] {
      setThreadSlot(w);
      for (uint64_t i = 0; i < kIters; ++i) {
        c.inc();
        g.add(2);
        g.sub(1);
        h.record(i % 2 == 0 ? 0.05 : 0.5);
      }
    });
  }
  {
    // The main thread (slot 0) writes too: its own slot, no interference.
    SlotGuard slot(0);
    for (uint64_t i = 0; i < kIters; ++i) {
      c.inc();
    }
  }
  for (auto& t : workers) {
    t.join();
  }
  stop.store(true);
  scraper.join();

  EXPECT_EQ(kIters * (kWorkers + 1), c.value());
  EXPECT_EQ(static_cast<int64_t>(kIters * kWorkers), g.value());
  Histogram::Snapshot snap = h.snapshot();
  EXPECT_EQ(kIters * kWorkers, snap.count);
  EXPECT_EQ(kIters * kWorkers / 2, snap.cumulative[0]);
  EXPECT_EQ(kIters * kWorkers, snap.cumulative[1]);
  EXPECT_NEAR(kWorkers * (kIters / 2) * 0.55, snap.sum, 1e-6);
}

TEST(StoreTest, ThreadsWithoutARegularSlotUseTheSharedSlot) {
  constexpr uint64_t kIters = 10000;
  Store store(2);
  Counter& c = store.counter("levee_test_ops_total", "Ops.");
  Gauge& g = store.gauge("levee_test_active", "Active.");
  Histogram& h = store.histogram("levee_test_latency_seconds", "Latency.", {1});
  std::vector<std::thread> threads;
  // Two threads on the shared slot and one whose slot is beyond this Store: atomic RMW, no loss.
  for (uint32_t slot : {kSharedThreadSlot, kSharedThreadSlot, uint32_t{7}}) {
    threads.emplace_back([&, slot] {
      setThreadSlot(slot);
      for (uint64_t i = 0; i < kIters; ++i) {
        c.inc(2);
        g.add(1);
        h.record(0.5);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(3 * kIters * 2, c.value());
  EXPECT_EQ(static_cast<int64_t>(3 * kIters), g.value());
  EXPECT_EQ(3 * kIters, h.snapshot().count);
  EXPECT_DOUBLE_EQ(3 * kIters * 0.5, h.snapshot().sum);
}

TEST(StoreTest, SameFamilyAndLabelsReturnTheSameObject) {
  Store store(1);
  Counter& a = store.counter("levee_x_total", "X.", {{"route", "r1"}, {"code", "200"}});
  Counter& b = store.counter("levee_x_total", "X.", {{"route", "r1"}, {"code", "200"}});
  Counter& reordered = store.counter("levee_x_total", "X.", {{"code", "200"}, {"route", "r1"}});
  Counter& other = store.counter("levee_x_total", "X.", {{"route", "r2"}, {"code", "200"}});
  Counter& fewer = store.counter("levee_x_total", "X.", {{"route", "r1"}});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a, &reordered);
  EXPECT_NE(&a, &other);
  EXPECT_NE(&a, &fewer);

  Gauge& g1 = store.gauge("levee_g", "G.");
  EXPECT_EQ(&g1, &store.gauge("levee_g", "G."));
  Histogram& h1 = store.histogram("levee_h_seconds", "H.", {1, 2}, {{"a", "b"}});
  EXPECT_EQ(&h1, &store.histogram("levee_h_seconds", "H.", {1, 2}, {{"a", "b"}}));

  a.inc(5);
  EXPECT_EQ(5U, b.value());
  EXPECT_EQ(0U, other.value());
}

TEST(StoreTest, GaugeSetIsABaseAndAddSubAreDeltas) {
  Store store(2);
  Gauge& g = store.gauge("levee_g", "G.");
  g.set(10);
  EXPECT_EQ(10, g.value());
  g.set(3);
  EXPECT_EQ(3, g.value());
  g.sub(5);
  EXPECT_EQ(-2, g.value());
  g.add(7);
  EXPECT_EQ(5, g.value());
}

TEST(StoreTest, HistogramBucketMath) {
  Store store(1);
  Histogram& h = store.histogram("levee_h_seconds", "H.", {0.005, 0.01, 0.1, 1});
  h.record(0.001);   // le 0.005
  h.record(0.005);   // le 0.005: bounds are inclusive
  h.record(0.0051);  // le 0.01
  h.record(0.1);     // le 0.1
  h.record(0.5);     // le 1
  h.record(1.0);     // le 1
  h.record(7);       // +Inf only
  h.record(std::numeric_limits<double>::infinity());  // +Inf only
  h.record(std::nan(""));                             // ignored
  Histogram::Snapshot snap = h.snapshot();
  ASSERT_EQ(4U, snap.bounds.size());
  ASSERT_EQ(5U, snap.cumulative.size());
  EXPECT_EQ(2U, snap.cumulative[0]);
  EXPECT_EQ(3U, snap.cumulative[1]);
  EXPECT_EQ(4U, snap.cumulative[2]);
  EXPECT_EQ(6U, snap.cumulative[3]);
  EXPECT_EQ(8U, snap.cumulative[4]);
  EXPECT_EQ(8U, snap.count);
  EXPECT_TRUE(std::isinf(snap.sum));

  // A trailing +Inf bound is implied and dropped; an empty layout has only +Inf.
  Histogram& h2 = store.histogram("levee_h2_seconds", "H.",
                                  {0.5, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(std::vector<double>{0.5}, h2.bounds());
  h2.record(0.25);
  h2.record(0.75);
  EXPECT_DOUBLE_EQ(1.0, h2.snapshot().sum);
  Histogram& h3 = store.histogram("levee_h3_seconds", "H.", {});
  h3.record(42);
  EXPECT_EQ(std::vector<uint64_t>{1}, h3.snapshot().cumulative);

  // Many buckets span several cache lines per slot.
  std::vector<double> many;
  for (int i = 1; i <= 20; ++i) {
    many.push_back(i);
  }
  Histogram& h4 = store.histogram("levee_h4_seconds", "H.", many);
  for (int i = 0; i <= 21; ++i) {
    h4.record(i);
  }
  Histogram::Snapshot s4 = h4.snapshot();
  EXPECT_EQ(2U, s4.cumulative[0]);    // 0 and 1
  EXPECT_EQ(21U, s4.cumulative[19]);  // 0..20
  EXPECT_EQ(22U, s4.count);
  EXPECT_DOUBLE_EQ(231.0, s4.sum);
}

TEST(StoreTest, RendersExactText) {
  Store store(2);
  store.counter("levee_http_requests_total", "Requests handled.", {{"route", "a"}, {"code", "200"}})
      .inc(3);
  store.counter("levee_http_requests_total", "ignored: first help wins",
                {{"route", "b\"x\\y\nz"}, {"code", "503"}})
      .inc();
  store.gauge("levee_degradation_level", "Current level.\nSecond line \\ backslash").set(2);
  Histogram& h = store.histogram("levee_http_request_duration_seconds", "Latency.",
                                 {0.005, 0.5, 1, 2.5}, {{"route", "a"}});
  h.record(0.001);
  h.record(0.75);
  h.record(3);
  store.histogram("levee_plain_seconds", "No labels.", {1}).record(0.5);
  store.gaugeCallback("levee_circuit_breaker_state", "Breaker state.", [](auto& out) {
    out.push_back({{{"upstream", "u1"}}, 2.0});
    out.push_back({{{"upstream", "u2"}}, 0.5});
  });
  store.gaugeCallback("levee_empty", "No samples: omitted.", [](auto&) {});
  store.gauge("levee_unused", "Zero.").add(0);
  store.counter("levee_never_total", "Never incremented.", {{"a", "b"}});

  const std::string expected =
      "# HELP levee_circuit_breaker_state Breaker state.\n"
      "# TYPE levee_circuit_breaker_state gauge\n"
      "levee_circuit_breaker_state{upstream=\"u1\"} 2\n"
      "levee_circuit_breaker_state{upstream=\"u2\"} 0.5\n"
      "# HELP levee_degradation_level Current level.\\nSecond line \\\\ backslash\n"
      "# TYPE levee_degradation_level gauge\n"
      "levee_degradation_level 2\n"
      "# HELP levee_http_request_duration_seconds Latency.\n"
      "# TYPE levee_http_request_duration_seconds histogram\n"
      "levee_http_request_duration_seconds_bucket{route=\"a\",le=\"0.005\"} 1\n"
      "levee_http_request_duration_seconds_bucket{route=\"a\",le=\"0.5\"} 1\n"
      "levee_http_request_duration_seconds_bucket{route=\"a\",le=\"1\"} 2\n"
      "levee_http_request_duration_seconds_bucket{route=\"a\",le=\"2.5\"} 2\n"
      "levee_http_request_duration_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"
      "levee_http_request_duration_seconds_sum{route=\"a\"} 3.751\n"
      "levee_http_request_duration_seconds_count{route=\"a\"} 3\n"
      "# HELP levee_http_requests_total Requests handled.\n"
      "# TYPE levee_http_requests_total counter\n"
      "levee_http_requests_total{route=\"a\",code=\"200\"} 3\n"
      "levee_http_requests_total{route=\"b\\\"x\\\\y\\nz\",code=\"503\"} 1\n"
      "# HELP levee_never_total Never incremented.\n"
      "# TYPE levee_never_total counter\n"
      "levee_never_total{a=\"b\"} 0\n"
      "# HELP levee_plain_seconds No labels.\n"
      "# TYPE levee_plain_seconds histogram\n"
      "levee_plain_seconds_bucket{le=\"1\"} 1\n"
      "levee_plain_seconds_bucket{le=\"+Inf\"} 1\n"
      "levee_plain_seconds_sum 0.5\n"
      "levee_plain_seconds_count 1\n"
      "# HELP levee_unused Zero.\n"
      "# TYPE levee_unused gauge\n"
      "levee_unused 0\n";
  EXPECT_EQ(expected, store.renderPrometheus());
}

TEST(StoreTest, EmptyStoreRendersNothing) {
  Store store(1);
  store.gaugeCallback("levee_nothing", "Nothing.", [](auto&) {});
  EXPECT_EQ("", store.renderPrometheus());
}

TEST(StoreTest, GaugeCallbackMayUseTheStore) {
  Store store(1);
  Counter& c = store.counter("levee_c_total", "C.");
  c.inc(4);
  store.gaugeCallback("levee_cb", "Reads the store while rendering.", [&store](auto& out) {
    out.push_back({{}, static_cast<double>(store.counter("levee_c_total", "C.").value())});
  });
  EXPECT_NE(std::string::npos, store.renderPrometheus().find("\nlevee_cb 4\n"));
}

// ---------------------------------------------------------------------------------------------
// promtool: the rendered text of a store with every metric type passes `promtool check metrics`.

constexpr const char* kPromtool = "/usr/bin/promtool";

struct CommandResult {
  int exit_code{-1};
  std::string output;
};

CommandResult pipeThroughPromtool(const std::string& text) {
  char out_path[] = "/tmp/levee_promtool_XXXXXX";
  int fd = mkstemp(out_path);
  if (fd < 0) {
    return {};
  }
  close(fd);
  std::string cmd = std::string(kPromtool) + " check metrics > " + out_path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  if (p == nullptr) {
    unlink(out_path);
    return {};
  }
  std::fwrite(text.data(), 1, text.size(), p);
  int status = pclose(p);
  CommandResult res;
  res.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  std::ifstream in(out_path);
  std::stringstream ss;
  ss << in.rdbuf();
  res.output = ss.str();
  unlink(out_path);
  return res;
}

TEST(StoreTest, PromtoolAcceptsEveryMetricType) {
  ASSERT_EQ(0, access(kPromtool, X_OK))
      << kPromtool << " is missing: install the Debian package `prometheus` (promtool) to run "
      << "this test; it is required, not optional";
  Store store(3);
  store.counter("levee_http_requests_total", "Requests handled.",
                {{"listener", "in"}, {"route", "r\"1"}, {"code", "200"}})
      .inc(7);
  store.counter("levee_config_reloads_total", "Config reloads.", {{"result", "success"}}).inc();
  store.gauge("levee_downstream_connections", "Open downstream connections.",
              {{"listener", "in\nx\\y"}})
      .add(3);
  store.gauge("levee_degradation_level", "Degradation level, 0 = normal.\nMulti-line \\ help.")
      .set(1);
  Histogram& h = store.histogram("levee_http_request_duration_seconds", "Request duration.",
                                 {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
                                 {{"route", "r1"}});
  for (double v : {0.001, 0.02, 0.3, 4.0, 100.0}) {
    h.record(v);
  }
  store.histogram("levee_upstream_connect_seconds", "Connect time.", {1e-05, 0.001}).record(2e-6);
  store.gaugeCallback("levee_circuit_breaker_state", "0 closed, 1 half-open, 2 open.",
                      [](auto& out) {
                        out.push_back({{{"upstream", "u1"}}, 0});
                        out.push_back({{{"upstream", "u2"}}, 2});
                      });
  store.gaugeCallback("levee_db_replication_lag_seconds", "Replication lag.", [](auto& out) {
    out.push_back({{{"member", "a"}}, 0.125});
    out.push_back({{{"member", "b"}}, std::nan("")});
    out.push_back({{{"member", "c"}}, std::numeric_limits<double>::infinity()});
  });
  const std::string text = store.renderPrometheus();
  CommandResult res = pipeThroughPromtool(text);
  EXPECT_EQ(0, res.exit_code) << "promtool output:\n" << res.output << "\ninput:\n" << text;
}

// ---------------------------------------------------------------------------------------------
// Programming errors abort with a message.

class StoreDeathTest : public ::testing::Test {
protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(StoreDeathTest, FamilyKeepsOneType) {
  Store store(1);
  store.gauge("levee_thing", "G.");
  EXPECT_DEATH(store.histogram("levee_thing", "H.", {1}), "already registered as a gauge");
  store.counter("levee_c_total", "C.");
  EXPECT_DEATH(store.gauge("levee_c_total", "G."), "already registered as a counter");
  store.gaugeCallback("levee_cb", "CB.", [](auto&) {});
  EXPECT_DEATH(store.gaugeCallback("levee_cb", "CB.", [](auto&) {}), "registered once");
  EXPECT_DEATH(store.gauge("levee_cb", "G."), "already registered as a gauge \\(callback\\)");
  EXPECT_DEATH(store.gaugeCallback("levee_thing", "CB.", [](auto&) {}), "registered once");
}

TEST_F(StoreDeathTest, InvalidNamesAbort) {
  Store store(1);
  EXPECT_DEATH(store.counter("levee_requests", "C."), "must end with _total");
  EXPECT_DEATH(store.gauge("levee-bad", "G."), "invalid metric name");
  EXPECT_DEATH(store.gauge("levee_g", "G.", {{"bad-label", "x"}}), "invalid label name");
  EXPECT_DEATH(store.gauge("levee_g", "G.", {{"__name", "x"}}), "invalid label name");
  EXPECT_DEATH(store.gauge("levee_g", "G.", {{"a", "x"}, {"a", "y"}}), "duplicate label name");
  EXPECT_DEATH(store.histogram("levee_h_seconds", "H.", {1}, {{"le", "x"}}), "reserved");
}

TEST_F(StoreDeathTest, InvalidBucketsAbort) {
  Store store(1);
  EXPECT_DEATH(store.histogram("levee_h_seconds", "H.", {1, 1}), "strictly increasing");
  EXPECT_DEATH(store.histogram("levee_h_seconds", "H.", {2, 1}), "strictly increasing");
  EXPECT_DEATH(store.histogram("levee_h_seconds", "H.", {std::nan("")}), "finite");
  store.histogram("levee_h_seconds", "H.", {1, 2});
  EXPECT_DEATH(store.histogram("levee_h_seconds", "H.", {1, 3}), "different buckets");
}

}  // namespace
}  // namespace levee::stats
