// Loader tests for fault injection (config/loader_fault.cc): a route's `fault` block, the
// top-level `faults` limits and the POST /admin/faults body.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/fault_experiment.h"
#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using test::errorsOf;
using test::load;

using test::withRoute;
constexpr auto& at = test::routeErrorAt;

// `fault: <block>` on line 9: the block starts at column 16.
std::vector<std::string> faultErrors(std::string_view b) { return test::routeBlockErrors("fault", b); }

TEST(LoaderFaultTest, DesignExampleLoads) {
  const Policy p = load(withRoute(R"(        fault:                               # usually set at run time through the admin API
          delay: { percent: 10, duration: 2s }
          abort: { percent: 5, status: 503 }
)"));
  const FaultConfig& f = p.listeners.at(0).routes.at(0).fault;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(100000u, f.delay_ppm);
  EXPECT_EQ(milliseconds(2000), f.delay);
  EXPECT_EQ(50000u, f.abort_ppm);
  EXPECT_EQ(503, f.abort_status);
  EXPECT_EQ(0u, f.reset_ppm);
}

TEST(LoaderFaultTest, KindsAndBounds) {
  const Policy p = load(withRoute("        fault: { reset: { percent: 0.5 }, abort: { percent: 100, status: 400 } }\n"));
  const FaultConfig& f = p.listeners.at(0).routes.at(0).fault;
  EXPECT_EQ(5000u, f.reset_ppm);
  EXPECT_EQ(1000000u, f.abort_ppm);
  EXPECT_EQ(400, f.abort_status);
  EXPECT_EQ(milliseconds(0), f.delay);
  EXPECT_THAT(faultErrors("{ delay: { percent: 0, duration: 10m } }"), IsEmpty());
  // No fault block: off, and the defaults of `faults`.
  const Policy none = load(withRoute(""));
  EXPECT_FALSE(none.listeners.at(0).routes.at(0).fault.enabled);
  EXPECT_EQ(10u, none.faults.max_active);
  EXPECT_EQ(milliseconds(300000), none.faults.default_ttl);
  EXPECT_EQ(milliseconds(3600000), none.faults.max_ttl);
}

TEST(LoaderFaultTest, FieldErrors) {
  EXPECT_THAT(faultErrors("{}"),
              ElementsAre(at(16, "fault", "no fault given: set at least one of delay, abort or reset")));
  EXPECT_THAT(faultErrors("[]"), ElementsAre(at(16, "fault", "expected a mapping, got a sequence")));
  EXPECT_THAT(faultErrors("{ abort: { percent: 5, status: 200 } }"),
              ElementsAre(at(47, "fault.abort.status", "expected an integer in [400,599], got \"200\"")));
  EXPECT_THAT(faultErrors("{ abort: { percent: 101, status: 503 } }"),
              ElementsAre(at(36, "fault.abort.percent", "expected a number in [0,100], got 101")));
  EXPECT_THAT(faultErrors("{ abort: { percent: -1, status: 503 } }"),
              ElementsAre(at(36, "fault.abort.percent", "expected a number in [0,100], got -1")));
  EXPECT_THAT(faultErrors("{ abort: { percent: \"5\", status: 503 } }"),
              ElementsAre(at(36, "fault.abort.percent", "expected a number, got the string \"5\"")));
  EXPECT_THAT(faultErrors("{ abort: { status: 503 } }"),
              ElementsAre(at(25, "fault.abort.percent", "missing required key \"percent\"")));
  EXPECT_THAT(faultErrors("{ delay: { percent: 10, duration: 0s } }"),
              ElementsAre(at(50, "fault.delay.duration",
                             "must be greater than 0 and at most 10m, got \"0s\"")));
  EXPECT_THAT(faultErrors("{ delay: { percent: 10, duration: 11m } }"),
              ElementsAre(at(50, "fault.delay.duration",
                             "must be greater than 0 and at most 10m, got \"11m\"")));
  EXPECT_THAT(faultErrors("{ delay: { percent: 10, duration: soon } }"),
              ElementsAre(HasSubstr("p.yaml:9:50: listeners[0].routes[0].fault.delay.duration: ")));
  EXPECT_THAT(faultErrors("{ delay: { percent: 10 } }"),
              ElementsAre(at(25, "fault.delay.duration", "missing required key \"duration\"")));
  EXPECT_THAT(faultErrors("{ dealy: { percent: 10, duration: 1s } }"),
              ElementsAre(at(16, "fault", "no fault given: set at least one of delay, abort or reset"),
                          at(18, "fault.dealy", "unknown key \"dealy\" (did you mean \"delay\"?)")));
  // Every error of the file in one pass.
  EXPECT_THAT(faultErrors("{ abort: { percent: 200, status: 700 }, reset: { percent: x } }"),
              ElementsAre(at(36, "fault.abort.percent", "expected a number in [0,100], got 200"),
                          at(49, "fault.abort.status", "expected an integer in [400,599], got \"700\""),
                          at(74, "fault.reset.percent", "expected a number, got \"x\"")));
}

TEST(LoaderFaultTest, FaultsSection) {
  const Policy p = load(withRoute("", "faults: { max_active: 3, default_ttl: 1m, max_ttl: 2h }\n"));
  EXPECT_EQ(3u, p.faults.max_active);
  EXPECT_EQ(milliseconds(60000), p.faults.default_ttl);
  EXPECT_EQ(milliseconds(7200000), p.faults.max_ttl);
  // Line 12 (after the 3 tail lines).
  EXPECT_THAT(errorsOf(withRoute("", "faults: { max_active: 1001 }\n")),
              ElementsAre("p.yaml:12:23: faults.max_active: expected an integer in [0,1000], got \"1001\""));
  EXPECT_THAT(errorsOf(withRoute("", "faults: { default_ttl: 2h }\n")),
              ElementsAre(HasSubstr("p.yaml:12:24: faults.default_ttl: default_ttl (2h) must not exceed "
                                    "max_ttl (1h, the default)")));
  EXPECT_THAT(errorsOf(withRoute("", "faults: { max_actve: 1 }\n")),
              ElementsAre(HasSubstr("unknown key \"max_actve\" (did you mean \"max_active\"?)")));
}

class FaultExperimentTest : public ::testing::Test {
protected:
  Policy policy_ = load(withRoute("", "faults: { max_ttl: 30m, default_ttl: 5m }\n"));

  std::vector<std::string> errors(std::string_view body) {
    auto r = parseFaultExperiment(body, policy_);
    std::vector<std::string> out;
    if (!r) {
      for (const auto& e : r.error()) {
        out.push_back(e.toString());
      }
    }
    return out;
  }
};

TEST_F(FaultExperimentTest, DesignBodyParses) {
  auto r = parseFaultExperiment(
      R"({"route":"r","upstream":"app","header":{"X-Drill":"1"},"delay":{"percent":10,"duration":"2s"},)"
      R"("abort":{"percent":5,"status":503},"ttl":"10m"})",
      policy_);
  ASSERT_TRUE(r.has_value()) << formatErrors(r.error());
  EXPECT_EQ("r", r->route);
  EXPECT_EQ("app", r->upstream);
  ASSERT_EQ(1u, r->headers.size());
  EXPECT_EQ("x-drill", r->headers[0].name);
  EXPECT_EQ("1", r->headers[0].value);
  EXPECT_EQ(100000u, r->fault.delay_ppm);
  EXPECT_EQ(milliseconds(2000), r->fault.delay);
  EXPECT_EQ(503, r->fault.abort_status);
  EXPECT_EQ(milliseconds(600000), r->ttl);
}

TEST_F(FaultExperimentTest, TargetsOptionalTtlDefaults) {
  auto r = parseFaultExperiment(R"({ "reset": { "percent": 1 } })", policy_);
  ASSERT_TRUE(r.has_value()) << formatErrors(r.error());
  EXPECT_TRUE(r->route.empty());
  EXPECT_TRUE(r->headers.empty());
  EXPECT_EQ(10000u, r->fault.reset_ppm);
  EXPECT_EQ(milliseconds(300000), r->ttl);
}

TEST_F(FaultExperimentTest, BadBodies) {
  EXPECT_THAT(errors(""), ElementsAre("body:1:1: expected a JSON object"));
  EXPECT_THAT(errors("[1]"), ElementsAre("body:1:1: expected a JSON object"));
  EXPECT_THAT(errors("{\"abort\": "), ElementsAre(HasSubstr("body:1:")));
  EXPECT_THAT(errors("{}"), ElementsAre("body:1:1: no fault given: set at least one of delay, abort or reset"));
  EXPECT_THAT(errors(R"({"route":"nope","abort":{"percent":1,"status":503}})"),
              ElementsAre("body:1:10: route: unknown route \"nope\""));
  EXPECT_THAT(errors(R"({"upstream":"db","abort":{"percent":1,"status":503}})"),
              ElementsAre("body:1:13: upstream: unknown upstream \"db\""));
  EXPECT_THAT(errors(R"({"abort":{"percent":1,"status":503},"ttl":"1h"})"),
              ElementsAre("body:1:43: ttl: must be greater than 0 and at most faults.max_ttl (30m), got "
                          "the string \"1h\""));
  EXPECT_THAT(errors(R"({"abort":{"percent":1,"status":99}})"),
              ElementsAre("body:1:32: abort.status: expected an integer in [400,599], got \"99\""));
  EXPECT_THAT(errors(R"({"header":{},"abort":{"percent":1,"status":503}})"),
              ElementsAre("body:1:11: header: must name at least one header (leave the key out to "
                          "match any request)"));
  EXPECT_THAT(errors(R"({"colour":"red","abort":{"percent":1,"status":503}})"),
              ElementsAre(HasSubstr("body:1:2: colour: unknown key \"colour\"")));
}

}  // namespace
}  // namespace levee::config
