// Degradation: what each level does to a request (pure decision), and the controller's level
// bookkeeping (operator level, TTL, policy level, automatic level) on simulated time.

#include <gtest/gtest.h>

#include "filters/degradation/degradation_controller.h"
#include "filters/degradation/degradation_filter.h"

namespace levee::filters::degradation {
namespace {

using Action = DegradationFilter::Action;

config::Route route(config::RouteTier tier) {
  config::Route r;
  r.name = "r";
  r.tier = tier;
  return r;
}

TEST(DegradationDecideTest, EachLevelAddsToTheOneBelow) {
  const config::DegradationConfig cfg;  // read_only_methods GET, HEAD, OPTIONS
  const config::Route core = route(config::RouteTier::Core);
  const config::Route noncore = route(config::RouteTier::NonCore);
  struct Case {
    uint32_t level;
    const config::Route* route;
    const char* method;
    Action want;
  } cases[] = {
      {0, &noncore, "POST", Action::Pass},
      {1, &core, "POST", Action::Pass},
      {1, &noncore, "GET", Action::RefuseOrFallback},
      {2, &core, "GET", Action::Pass},
      {2, &core, "HEAD", Action::Pass},
      {2, &core, "POST", Action::Refuse},
      {2, &core, "DELETE", Action::Refuse},
      {2, &noncore, "GET", Action::RefuseOrFallback},
      {2, &noncore, "POST", Action::Refuse},
      {3, &core, "GET", Action::RefuseOrFallback},
      {3, &core, "PUT", Action::Refuse},
      {4, &core, "GET", Action::Maintenance},
      {4, nullptr, "GET", Action::Maintenance},
      {3, nullptr, "GET", Action::Pass},  // no route: the router's 404
  };
  for (const Case& c : cases) {
    EXPECT_EQ(DegradationFilter::decide(c.level, cfg, c.route, c.method), c.want)
        << "level " << c.level << " " << c.method;
  }
  config::DegradationConfig custom;
  custom.read_only_methods = {"GET", "POST"};
  EXPECT_EQ(DegradationFilter::decide(2, custom, &core, "POST"), Action::Pass);
}

class DegradationControllerTest : public ::testing::Test {
protected:
  event::Dispatcher loop_;
  SimulatedTimeSource time_;
  DegradationState state_{2};
  DegradationController ctl_{loop_, state_, time_};

  int put(std::string_view body, std::string* out = nullptr) {
    std::string o, audit;
    int status = ctl_.put(body, o, audit);
    if (out != nullptr) {
      *out = o;
    }
    return status;
  }
};

TEST_F(DegradationControllerTest, OperatorLevelWinsAndTtlRestoresThePreviousOne) {
  config::DegradationConfig cfg;
  cfg.level = 1;
  ctl_.configure(cfg);
  EXPECT_EQ(state_.level(), 1u);
  ASSERT_EQ(put(R"({"level":3,"reason":"db incident"})"), 200);
  EXPECT_EQ(state_.level(), 3u);
  ASSERT_EQ(put(R"({"level":4,"reason":"drill","ttl":"30s"})"), 200);
  EXPECT_EQ(state_.level(), 4u);
  time_.advance(std::chrono::seconds(29));
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 4u);
  time_.advance(std::chrono::seconds(1));
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 3u) << "the operator's previous level returns";
  std::string out, audit;
  ASSERT_EQ(ctl_.clear(out, audit), 200);
  EXPECT_EQ(state_.level(), 1u) << "back to the policy's level";
}

TEST_F(DegradationControllerTest, BadBodiesAreRefusedWithAMessage) {
  std::string out;
  EXPECT_EQ(put("", &out), 400);
  EXPECT_EQ(put("[1]", &out), 400);
  EXPECT_NE(out.find("expected a JSON object"), std::string::npos) << out;
  EXPECT_EQ(put(R"({"reason":"x"})", &out), 400);
  EXPECT_NE(out.find("missing \\\"level\\\""), std::string::npos) << out;
  EXPECT_EQ(put(R"({"level":5})", &out), 400);
  EXPECT_EQ(put(R"({"level":1.5})", &out), 400);
  EXPECT_EQ(put(R"({"level":"2"})", &out), 400);
  EXPECT_EQ(put(R"({"level":2,"ttl":"soon"})", &out), 400);
  EXPECT_EQ(put(R"({"level":2,"ttl":"0s"})", &out), 400);
  EXPECT_EQ(put(R"({"level":2,"lvel":3})", &out), 400);
  EXPECT_NE(out.find("unknown key"), std::string::npos) << out;
  EXPECT_EQ(state_.level(), 0u) << "nothing changed";
}

TEST_F(DegradationControllerTest, OpenBreakersRaiseTheLevelWithHysteresisAndCooldown) {
  config::DegradationConfig cfg;
  cfg.automatic.enabled = true;
  cfg.automatic.max_level = 2;
  cfg.automatic.breaker_open_percent = 50;
  cfg.automatic.hysteresis_percent = 50;
  cfg.automatic.cooldown = std::chrono::seconds(60);
  ctl_.configure(cfg);
  ctl_.tick(50);
  EXPECT_EQ(state_.level(), 1u) << "the first step is immediate";
  time_.advance(std::chrono::seconds(10));
  ctl_.tick(100);
  EXPECT_EQ(state_.level(), 1u) << "held for the cooldown";
  time_.advance(std::chrono::seconds(50));
  ctl_.tick(100);
  EXPECT_EQ(state_.level(), 2u);
  time_.advance(std::chrono::seconds(120));
  ctl_.tick(100);
  EXPECT_EQ(state_.level(), 2u) << "max_level";
  ctl_.tick(30);
  EXPECT_EQ(state_.level(), 2u) << "30% is not below 50% x (1 - 50%)";
  ctl_.tick(20);
  EXPECT_EQ(state_.level(), 1u);
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 1u) << "one step per cooldown";
  time_.advance(std::chrono::seconds(60));
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 0u);
  // The operator's explicit level always wins over automation.
  ASSERT_EQ(put(R"({"level":0})"), 200);
  ctl_.tick(100);
  EXPECT_EQ(ctl_.automaticLevel(), 1u);
  EXPECT_EQ(state_.level(), 0u);
}

TEST_F(DegradationControllerTest, BurnRateOverTheWindowRaisesTheLevel) {
  config::DegradationConfig cfg;
  cfg.automatic.enabled = true;
  cfg.automatic.burn_rate = 10;        // 10x the allowed error rate
  cfg.automatic.availability = 99.0;   // 1% of errors allowed
  cfg.automatic.window = std::chrono::seconds(10);
  cfg.automatic.minimum_requests = 100;
  ctl_.configure(cfg);
  EXPECT_TRUE(state_.recording());
  ctl_.tick(0);
  for (int i = 0; i < 95; ++i) {
    state_.recordResponse(200);
  }
  for (int i = 0; i < 5; ++i) {
    state_.recordResponse(503);  // 5% errors: burn rate 5
  }
  time_.advance(std::chrono::seconds(1));
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 0u);
  for (int i = 0; i < 10; ++i) {
    state_.recordResponse(503);  // 15 / 110: burn rate ~13.6
  }
  time_.advance(std::chrono::seconds(1));
  ctl_.tick(0);
  EXPECT_EQ(state_.level(), 1u);
}

}  // namespace
}  // namespace levee::filters::degradation
