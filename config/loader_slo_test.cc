// metrics.slo: parsing, defaults and every error with FILE:LINE:COL and the YAML path.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using test::errorsOf;
using test::load;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Line 13 is the metrics block.
std::string withMetrics(std::string_view metrics) {
  return std::string(R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - name: r
        upstream: app
upstreams:
  app:
    endpoints:
      - address: 127.0.0.1:8080
)") + std::string(metrics);
}

TEST(LoaderSloTest, DefaultIsNoObjective) {
  const Policy p = load(withMetrics(""));
  EXPECT_EQ(0, p.metrics.slo.availability_percent);
  EXPECT_EQ(milliseconds(0), p.metrics.slo.latency_threshold);
  EXPECT_EQ(0, p.metrics.slo.latency_percent);
}

TEST(LoaderSloTest, DesignExample) {
  const Policy p = load(withMetrics(
      "metrics:\n  slo: { availability: 99.9, latency: { threshold: 500ms, percent: 99 } }\n"));
  EXPECT_DOUBLE_EQ(99.9, p.metrics.slo.availability_percent);
  EXPECT_EQ(milliseconds(500), p.metrics.slo.latency_threshold);
  EXPECT_DOUBLE_EQ(99, p.metrics.slo.latency_percent);
  // latency_buckets keep their default next to slo.
  EXPECT_EQ(MetricsConfig{}.latency_buckets, p.metrics.latency_buckets);
}

TEST(LoaderSloTest, EitherObjectiveAlone) {
  const Policy a = load(withMetrics("metrics:\n  slo: { availability: 99.95 }\n"));
  EXPECT_DOUBLE_EQ(99.95, a.metrics.slo.availability_percent);
  EXPECT_EQ(0, a.metrics.slo.latency_percent);
  const Policy l = load(withMetrics(
      "metrics:\n  latency_buckets: [0.1, 1]\n  slo:\n    latency: { threshold: 2s, percent: 90 }\n"));
  EXPECT_EQ(0, l.metrics.slo.availability_percent);
  EXPECT_EQ(milliseconds(2000), l.metrics.slo.latency_threshold);
  EXPECT_THAT(l.metrics.latency_buckets, ElementsAre(0.1, 1.0));
}

TEST(LoaderSloTest, Errors) {
  struct Case {
    std::string metrics;
    std::vector<std::string> errors;
  };
  const Case cases[] = {
      {"metrics:\n  slo: {}\n",
       {"p.yaml:14:8: metrics.slo: set availability, latency or both (e.g. { availability: 99.9, "
        "latency: { threshold: 500ms, percent: 99 } })"}},
      {"metrics:\n  slo: 99.9\n", {"p.yaml:14:8: metrics.slo: expected a mapping, got \"99.9\""}},
      {"metrics:\n  slo: { availability: 100 }\n",
       {"p.yaml:14:24: metrics.slo.availability: expected a percentage above 0 and below 100 "
        "(e.g. 99.9; 100 leaves no error budget), got 100"}},
      {"metrics:\n  slo: { availability: 0 }\n",
       {"p.yaml:14:24: metrics.slo.availability: expected a percentage above 0 and below 100 "
        "(e.g. 99.9; 100 leaves no error budget), got 0"}},
      {"metrics:\n  slo: { availability: high }\n",
       {"p.yaml:14:24: metrics.slo.availability: expected a number, got \"high\""}},
      {"metrics:\n  slo: { availabilty: 99.9 }\n",
       {"p.yaml:14:10: metrics.slo.availabilty: unknown key \"availabilty\" (did you mean "
        "\"availability\"?)"}},
      // Every error of the latency block in one pass.
      {"metrics:\n  slo:\n    latency: { threshold: 0s, percent: 120 }\n",
       {"p.yaml:15:27: metrics.slo.latency.threshold: must be greater than 0",
        "p.yaml:15:40: metrics.slo.latency.percent: expected a percentage above 0 and below 100 "
        "(e.g. 99.9; 100 leaves no error budget), got 120"}},
      {"metrics:\n  slo:\n    latency: { threshold: 500ms }\n",
       {"p.yaml:15:14: metrics.slo.latency.percent: missing required key \"percent\""}},
      {"metrics:\n  slo:\n    latency: { percent: 99, threshold: soon }\n",
       {"p.yaml:15:40: metrics.slo.latency.threshold: invalid duration \"soon\" (expected e.g. "
        "\"250ms\", \"3s\", \"5m\", \"1h\")"}},
      {"metrics:\n  slo:\n    latency: { threshold: 1s, percent: 99, p99: 1s }\n",
       {"p.yaml:15:44: metrics.slo.latency.p99: unknown key \"p99\" (expected one of: threshold, "
        "percent)"}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.errors, errorsOf(withMetrics(c.metrics))) << c.metrics;
  }
}

TEST(LoaderSloTest, SloIsNoLongerListedAsNotSupported) {
  EXPECT_THAT(errorsOf(withMetrics("metrics:\n  slo: { availability: 99 }\n")), IsEmpty());
}

}  // namespace
}  // namespace levee::config
