#include "filters/fault/fault_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "proxy/http/header_map.h"

namespace levee::filters::fault {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

config::FaultExperimentSpec abortSpec(std::chrono::milliseconds ttl) {
  config::FaultExperimentSpec s;
  s.fault.enabled = true;
  s.fault.abort_ppm = 1'000'000;
  s.fault.abort_status = 503;
  s.ttl = ttl;
  return s;
}

class FaultRegistryTest : public ::testing::Test {
protected:
  SimulatedTimeSource time_;
  FaultRegistry registry_{time_};
  FaultRule added_;
  std::string error_;
};

TEST_F(FaultRegistryTest, IdsAndMaxActive) {
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(10)), 2, added_, error_));
  EXPECT_EQ("f-1", added_.id);
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(10)), 2, added_, error_));
  EXPECT_EQ("f-2", added_.id);
  EXPECT_FALSE(registry_.add(abortSpec(std::chrono::seconds(10)), 2, added_, error_));
  EXPECT_THAT(error_, HasSubstr("max_active (2)"));
  FaultRule removed;
  EXPECT_TRUE(registry_.remove("f-1", &removed));
  EXPECT_EQ("f-1", removed.id);
  EXPECT_FALSE(registry_.remove("f-1"));
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(10)), 2, added_, error_));
  EXPECT_EQ("f-3", added_.id);  // ids are never reused
  EXPECT_THAT(registry_.toJson(), HasSubstr(R"("active":2)"));
  EXPECT_THAT(registry_.toJson(), HasSubstr(R"("id":"f-2")"));
}

TEST_F(FaultRegistryTest, MaxActiveZeroDisablesExperiments) {
  EXPECT_FALSE(registry_.add(abortSpec(std::chrono::seconds(10)), 0, added_, error_));
  EXPECT_THAT(error_, HasSubstr("disabled"));
  EXPECT_THAT(registry_.toJson(), HasSubstr(R"("active":0)"));
}

TEST_F(FaultRegistryTest, ExpireRemovesOnlyWhatIsDue) {
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(1)), 10, added_, error_));
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(5)), 10, added_, error_));
  FaultView view(&registry_);
  EXPECT_EQ(2u, view.current().rules.size());
  EXPECT_TRUE(registry_.expire().empty());
  time_.advance(std::chrono::seconds(1));
  EXPECT_THAT(registry_.expire(), ElementsAre("f-1"));
  EXPECT_EQ(1u, view.current().rules.size());
  EXPECT_EQ("f-2", view.current().rules[0].id);
  time_.advance(std::chrono::seconds(4));
  EXPECT_THAT(registry_.expire(), ElementsAre("f-2"));
  EXPECT_TRUE(view.current().rules.empty());
}

TEST_F(FaultRegistryTest, ViewSeesEveryPublishAndNoRegistryIsEmpty) {
  FaultView none(nullptr);
  EXPECT_TRUE(none.current().rules.empty());
  FaultView view(&registry_);
  uint64_t v0 = registry_.version();
  ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(10)), 10, added_, error_));
  EXPECT_GT(registry_.version(), v0);
  EXPECT_EQ(1u, view.current().rules.size());
  EXPECT_EQ(1u, registry_.clear());
  EXPECT_EQ(0u, registry_.clear());
  EXPECT_TRUE(view.current().rules.empty());
}

TEST_F(FaultRegistryTest, MatchesTargets) {
  FaultRule r;
  r.route = "orders";
  r.headers.push_back({"x-drill", "1"});
  http::RequestHead h;
  EXPECT_FALSE(r.matches("orders", "app", h));
  h.headers.add("X-Drill", "1");
  EXPECT_TRUE(r.matches("orders", "app", h));
  EXPECT_FALSE(r.matches("payments", "app", h));
  r.upstream = "app";
  EXPECT_TRUE(r.matches("orders", "app", h));
  EXPECT_FALSE(r.matches("orders", "db", h));
}

// Readers on other threads while the main thread publishes (meaningful under TSan).
TEST_F(FaultRegistryTest, ConcurrentReadersSeeConsistentSnapshots) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  std::atomic<uint64_t> reads{0};
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      FaultView view(&registry_);
      while (!stop.load()) {
        const ActiveFaults& a = view.current();
        for (const FaultRule& r : a.rules) {
          EXPECT_EQ(503, r.fault.abort_status);
        }
        reads.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(registry_.add(abortSpec(std::chrono::seconds(10)), 1000, added_, error_));
    if (i % 3 == 0) {
      registry_.clear();
    }
  }
  while (reads.load() < 100) {  // the readers ran (they spin without blocking)
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : readers) {
    t.join();
  }
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
}  // namespace levee::filters::fault
