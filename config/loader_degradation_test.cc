// Loader tests for the `degradation` section (config/loader_degradation.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/loader.h"
#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test::errorsOf;
using test::load;

constexpr std::string_view kBase = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes: [{ name: r, upstream: app }]
upstreams:
  app: { endpoints: [{ address: 127.0.0.1:8080 }] }
)";

// The section header is on line 9; its first key on line 10.
std::string with(std::string_view degradation) { return std::string(kBase) + "degradation:\n" + std::string(degradation); }

TEST(LoaderDegradationTest, DesignExampleAndDefaults) {
  const Policy d = load(kBase);
  EXPECT_EQ(0u, d.degradation.level);
  EXPECT_THAT(d.degradation.read_only_methods, ElementsAre("GET", "HEAD", "OPTIONS"));
  EXPECT_FALSE(d.degradation.automatic.enabled);
  // DESIGN.md section 5, minus body_file (read at load time; tested below through errors).
  const Policy p = load(with(R"(  level: 0                                   # 0 normal .. 4 maintenance; admin API changes it
  state_file: /var/lib/levee/state.json      # survives restarts
  read_only_methods: [GET, HEAD, OPTIONS]
  maintenance: { status: 503, retry_after: 300s }
  auto: { max_level: 2, breaker_open_percent: 50, burn_rate: { threshold: 14.4, window: 5m }, cooldown: 2m }
)"));
  EXPECT_EQ("/var/lib/levee/state.json", p.degradation.state_file);
  EXPECT_EQ(503, p.degradation.maintenance.status);
  EXPECT_EQ(std::chrono::seconds(300), p.degradation.maintenance.retry_after);
  EXPECT_TRUE(p.degradation.automatic.enabled);
  EXPECT_EQ(50u, p.degradation.automatic.breaker_open_percent);
  EXPECT_DOUBLE_EQ(14.4, p.degradation.automatic.burn_rate);
  EXPECT_EQ(std::chrono::minutes(5), p.degradation.automatic.window);
  EXPECT_EQ(std::chrono::minutes(2), p.degradation.automatic.cooldown);
}

TEST(LoaderDegradationTest, Errors) {
  EXPECT_THAT(errorsOf(with("  level: 5\n")),
              ElementsAre("p.yaml:10:10: degradation.level: expected an integer in [0,4], got \"5\""));
  EXPECT_THAT(errorsOf(with("  auto: { max_level: 4, breaker_open_percent: 10 }\n")),
              ElementsAre(HasSubstr("degradation.auto.max_level: expected an integer in [1,3]")));
  EXPECT_THAT(errorsOf(with("  auto: { max_level: 2 }\n")),
              ElementsAre(HasSubstr("automatic degradation needs a trigger")));
  EXPECT_THAT(errorsOf(with("  auto: { burn_rate: { window: 1m } }\n")),
              ElementsAre(HasSubstr("degradation.auto.burn_rate.threshold: missing required key")));
  EXPECT_THAT(errorsOf(with("  maintenance: { body_file: /nonexistent/levee-maint.html }\n")),
              ElementsAre(HasSubstr("degradation.maintenance.body_file: cannot read")));
  EXPECT_THAT(errorsOf(with("  read_only_methods: []\n")),
              ElementsAre(HasSubstr("degradation.read_only_methods")));
  EXPECT_THAT(errorsOf(with("  levle: 1\n")),
              ElementsAre(HasSubstr("unknown key \"levle\" (did you mean \"level\"?)")));
}

}  // namespace
}  // namespace levee::config
