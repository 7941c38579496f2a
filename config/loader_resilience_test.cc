// Loader tests for the upstream resilience blocks (config/loader_resilience.cc): load_balancer
// random/hash and hash_on, circuit_breaker, outlier_detection, health_check, failover, and
// probes.ready_requires.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/loader_test_util.h"
#include "config/loader_context.h"

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::errorsOf;
using test::load;

// Lines 1-9; the upstreams given to withUpstreams start on line 10.
constexpr std::string_view kHead = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - name: r
        upstream: app
upstreams:
)";

std::string withUpstreams(std::string_view upstreams) {
  return std::string(kHead) + std::string(upstreams);
}

TEST(LoaderResilienceTest, FullUpstreamFillsEveryField) {
  const std::string yaml = withUpstreams(R"(  app:
    endpoints:
      - { address: 127.0.0.1:8080 }
      - { address: 127.0.0.1:8081, priority: 1 }
    load_balancer: hash
    hash_on: header:X-User-Id
    circuit_breaker:
      failure_on: [5xx, reset, 429]
      consecutive_failures: 7
      failure_rate: { threshold_percent: 40, minimum_requests: 50, window: 30s }
      slow_call: { duration: 2s, threshold_percent: 80 }
      open_for: 15s
      max_open_for: 2m
      half_open: { permitted: 5, successes_to_close: 4, max_wait: 3s }
      mode: shadow
    outlier_detection:
      consecutive_failures: 3
      consecutive_local_failures: 2
      interval: 5s
      failure_percentage: 60
      minimum_requests: 10
      base_ejection: 10s
      max_ejection: 1m
      max_ejection_percent: 30
    health_check:
      path: /ready?deep=1
      host: App.Internal:8080
      expected_statuses: [200, 204]
      interval: 3s
      jitter_percent: 0
      timeout: 500ms
      unhealthy_threshold: 4
      healthy_threshold: 1
    failover: { min_healthy_percent: 80, panic_threshold_percent: 0 }
  sticky:
    endpoints: [{ address: 127.0.0.1:9000 }]
    load_balancer: hash
    hash_on: cookie:Session
  rnd:
    endpoints: [{ address: 127.0.0.1:9001 }]
    load_balancer: random
  db:
    protocol: tcp
    endpoints: [{ address: 127.0.0.1:5432 }]
    circuit_breaker: { consecutive_failures: 3, failure_on: [connect-failure, timeout] }
    outlier_detection: { consecutive_local_failures: 1 }
probes:
  ready_requires: [app, db]
)");
  const Policy p = load(yaml);
  EXPECT_THAT(p.probes.ready_requires, ElementsAre("app", "db"));
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ(LoadBalancerKind::Hash, app.load_balancer);
  EXPECT_EQ(HashOn::Kind::Header, app.hash_on.kind);
  EXPECT_EQ("x-user-id", app.hash_on.name);

  const CircuitBreakerConfig& cb = app.circuit_breaker;
  EXPECT_TRUE(cb.enabled);
  EXPECT_TRUE(cb.failure_on.status_5xx);
  EXPECT_FALSE(cb.failure_on.connect_failure);
  EXPECT_TRUE(cb.failure_on.reset);
  EXPECT_FALSE(cb.failure_on.timeout);
  EXPECT_THAT(cb.failure_on.statuses, ElementsAre(429));
  EXPECT_EQ(7u, cb.consecutive_failures);
  EXPECT_EQ(40u, cb.failure_rate_threshold_percent);
  EXPECT_EQ(50u, cb.failure_rate_minimum_requests);
  EXPECT_EQ(milliseconds(30000), cb.failure_rate_window);
  EXPECT_EQ(milliseconds(2000), cb.slow_call_duration);
  EXPECT_EQ(80u, cb.slow_call_threshold_percent);
  EXPECT_EQ(milliseconds(15000), cb.open_for);
  EXPECT_EQ(milliseconds(120000), cb.max_open_for);
  EXPECT_EQ(5u, cb.half_open_permitted);
  EXPECT_EQ(4u, cb.half_open_successes_to_close);
  EXPECT_EQ(milliseconds(3000), cb.half_open_max_wait);
  EXPECT_TRUE(cb.shadow);

  const OutlierDetectionConfig& od = app.outlier_detection;
  EXPECT_TRUE(od.enabled);
  EXPECT_EQ(3u, od.consecutive_failures);
  EXPECT_EQ(2u, od.consecutive_local_failures);
  EXPECT_EQ(milliseconds(5000), od.interval);
  EXPECT_EQ(60u, od.failure_percentage);
  EXPECT_EQ(10u, od.minimum_requests);
  EXPECT_EQ(milliseconds(10000), od.base_ejection);
  EXPECT_EQ(milliseconds(60000), od.max_ejection);
  EXPECT_EQ(30u, od.max_ejection_percent);

  const HealthCheckConfig& hc = app.health_check;
  EXPECT_TRUE(hc.enabled);
  EXPECT_EQ("/ready?deep=1", hc.path);
  EXPECT_EQ("app.internal:8080", hc.host);
  EXPECT_THAT(hc.expected_statuses, ElementsAre(200, 204));
  EXPECT_EQ(milliseconds(3000), hc.interval);
  EXPECT_EQ(0u, hc.jitter_percent);
  EXPECT_EQ(milliseconds(500), hc.timeout);
  EXPECT_EQ(4u, hc.unhealthy_threshold);
  EXPECT_EQ(1u, hc.healthy_threshold);

  EXPECT_EQ(80u, app.failover.min_healthy_percent);
  EXPECT_EQ(0u, app.failover.panic_threshold_percent);

  const Upstream& sticky = p.upstreams.at("sticky");
  EXPECT_EQ(LoadBalancerKind::Hash, sticky.load_balancer);
  EXPECT_EQ(HashOn::Kind::Cookie, sticky.hash_on.kind);
  EXPECT_EQ("Session", sticky.hash_on.name);  // cookie names keep their case
  EXPECT_EQ(LoadBalancerKind::Random, p.upstreams.at("rnd").load_balancer);

  const Upstream& db = p.upstreams.at("db");
  EXPECT_TRUE(db.circuit_breaker.enabled);
  EXPECT_EQ(3u, db.circuit_breaker.consecutive_failures);
  EXPECT_FALSE(db.circuit_breaker.failure_on.status_5xx);
  EXPECT_TRUE(db.circuit_breaker.failure_on.connect_failure);
  EXPECT_FALSE(db.circuit_breaker.failure_on.reset);
  EXPECT_TRUE(db.circuit_breaker.failure_on.timeout);
  EXPECT_TRUE(db.outlier_detection.enabled);
  EXPECT_EQ(1u, db.outlier_detection.consecutive_local_failures);
  EXPECT_FALSE(db.health_check.enabled);
}

TEST(LoaderResilienceTest, AbsentBlocksAreOff) {
  const Policy p = load(withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"));
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ(LoadBalancerKind::RoundRobin, app.load_balancer);
  EXPECT_FALSE(app.circuit_breaker.enabled);
  EXPECT_FALSE(app.outlier_detection.enabled);
  EXPECT_FALSE(app.health_check.enabled);
  EXPECT_EQ(70u, app.failover.min_healthy_percent);
  EXPECT_EQ(50u, app.failover.panic_threshold_percent);
  EXPECT_THAT(p.probes.ready_requires, IsEmpty());
}

TEST(LoaderResilienceTest, PresentBlocksUseDefaults) {
  const Policy p = load(withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    load_balancer: hash
    circuit_breaker: { consecutive_failures: 5 }
    outlier_detection: {}
    health_check: {}
    failover: {}
probes: { ready_requires: [] }
)"));
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ(HashOn::Kind::Path, app.hash_on.kind);  // hash without hash_on: the path
  EXPECT_TRUE(app.hash_on.name.empty());

  const CircuitBreakerConfig& cb = app.circuit_breaker;
  EXPECT_TRUE(cb.enabled);
  EXPECT_TRUE(cb.failure_on.status_5xx);
  EXPECT_TRUE(cb.failure_on.connect_failure);
  EXPECT_TRUE(cb.failure_on.reset);
  EXPECT_TRUE(cb.failure_on.timeout);
  EXPECT_THAT(cb.failure_on.statuses, IsEmpty());
  EXPECT_EQ(5u, cb.consecutive_failures);
  EXPECT_EQ(0u, cb.failure_rate_threshold_percent);
  EXPECT_EQ(20u, cb.failure_rate_minimum_requests);
  EXPECT_EQ(milliseconds(10000), cb.failure_rate_window);
  EXPECT_EQ(milliseconds(0), cb.slow_call_duration);
  EXPECT_EQ(0u, cb.slow_call_threshold_percent);
  EXPECT_EQ(milliseconds(30000), cb.open_for);
  EXPECT_EQ(milliseconds(300000), cb.max_open_for);
  EXPECT_EQ(3u, cb.half_open_permitted);
  EXPECT_EQ(2u, cb.half_open_successes_to_close);
  EXPECT_EQ(milliseconds(10000), cb.half_open_max_wait);
  EXPECT_FALSE(cb.shadow);

  const OutlierDetectionConfig& od = app.outlier_detection;
  EXPECT_TRUE(od.enabled);
  EXPECT_EQ(5u, od.consecutive_failures);
  EXPECT_EQ(5u, od.consecutive_local_failures);
  EXPECT_EQ(milliseconds(10000), od.interval);
  EXPECT_EQ(0u, od.failure_percentage);
  EXPECT_EQ(20u, od.minimum_requests);
  EXPECT_EQ(milliseconds(30000), od.base_ejection);
  EXPECT_EQ(milliseconds(300000), od.max_ejection);
  EXPECT_EQ(50u, od.max_ejection_percent);

  const HealthCheckConfig& hc = app.health_check;
  EXPECT_TRUE(hc.enabled);
  EXPECT_EQ("/healthz", hc.path);
  EXPECT_TRUE(hc.host.empty());
  EXPECT_THAT(hc.expected_statuses, IsEmpty());
  EXPECT_EQ(milliseconds(5000), hc.interval);
  EXPECT_EQ(10u, hc.jitter_percent);
  EXPECT_EQ(milliseconds(1000), hc.timeout);
  EXPECT_EQ(3u, hc.unhealthy_threshold);
  EXPECT_EQ(2u, hc.healthy_threshold);

  EXPECT_EQ(70u, app.failover.min_healthy_percent);
  EXPECT_EQ(50u, app.failover.panic_threshold_percent);
  EXPECT_THAT(p.probes.ready_requires, IsEmpty());
}

// A single probe may close the breaker: the default successes_to_close (2) follows permitted.
TEST(LoaderResilienceTest, SuccessesToCloseDefaultFollowsPermitted) {
  const Policy p = load(withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    circuit_breaker: { consecutive_failures: 5, half_open: { permitted: 1 } }
)"));
  EXPECT_EQ(1u, p.upstreams.at("app").circuit_breaker.half_open_permitted);
  EXPECT_EQ(1u, p.upstreams.at("app").circuit_breaker.half_open_successes_to_close);
}

TEST(LoaderResilienceTest, InvalidCircuitBreakerFields) {
  const std::string yaml = withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    circuit_breaker:
      failure_on: [5xx, rest, 503, 300, reset, reset, "429", {}]
      consecutive_failures: 0
      failure_rate: { threshold_percent: 101, minimum_requests: 0, window: 0s }
      slow_call: { threshold_percent: 0 }
      open_for: 0s
      max_open_for: 10
      half_open: { permitted: 0, successes_to_close: x, max_wait: -1s, probes: 2 }
      mode: dry-run
)");
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:13:25: upstreams.app.circuit_breaker.failure_on[1]: expected 5xx, "
          "connect-failure, reset, timeout or a status code in [400,599], got \"rest\" (did you "
          "mean \"reset\"?)",
          "p.yaml:13:31: upstreams.app.circuit_breaker.failure_on[2]: status 503 is already "
          "covered by \"5xx\"",
          "p.yaml:13:36: upstreams.app.circuit_breaker.failure_on[3]: expected an integer in "
          "[400,599], got \"300\"",
          "p.yaml:13:48: upstreams.app.circuit_breaker.failure_on[5]: duplicate entry \"reset\" "
          "(first listed at upstreams.app.circuit_breaker.failure_on[4])",
          "p.yaml:13:55: upstreams.app.circuit_breaker.failure_on[6]: expected 5xx, "
          "connect-failure, reset, timeout or a status code in [400,599], got the string "
          "\"429\"",
          "p.yaml:13:62: upstreams.app.circuit_breaker.failure_on[7]: expected 5xx, "
          "connect-failure, reset, timeout or a status code in [400,599], got a mapping",
          "p.yaml:14:29: upstreams.app.circuit_breaker.consecutive_failures: expected an integer "
          ">= 1, got \"0\"",
          "p.yaml:15:42: upstreams.app.circuit_breaker.failure_rate.threshold_percent: expected "
          "an integer in [1,100], got \"101\"",
          "p.yaml:15:65: upstreams.app.circuit_breaker.failure_rate.minimum_requests: expected "
          "an integer >= 1, got \"0\"",
          "p.yaml:15:76: upstreams.app.circuit_breaker.failure_rate.window: must be greater "
          "than 0",
          "p.yaml:16:18: upstreams.app.circuit_breaker.slow_call.duration: missing required key "
          "\"duration\"",
          "p.yaml:16:39: upstreams.app.circuit_breaker.slow_call.threshold_percent: expected an "
          "integer in [1,100], got \"0\"",
          "p.yaml:17:17: upstreams.app.circuit_breaker.open_for: must be greater than 0",
          "p.yaml:18:21: upstreams.app.circuit_breaker.max_open_for: invalid duration \"10\": "
          "missing unit (write \"10s\" or \"10ms\")",
          "p.yaml:19:31: upstreams.app.circuit_breaker.half_open.permitted: expected an integer "
          ">= 1, got \"0\"",
          "p.yaml:19:54: upstreams.app.circuit_breaker.half_open.successes_to_close: expected an "
          "integer >= 1, got \"x\"",
          "p.yaml:19:67: upstreams.app.circuit_breaker.half_open.max_wait: invalid duration "
          "\"-1s\": must not be negative",
          "p.yaml:19:72: upstreams.app.circuit_breaker.half_open.probes: unknown key \"probes\" "
          "(expected one of: permitted, successes_to_close, max_wait)",
          "p.yaml:20:13: upstreams.app.circuit_breaker.mode: expected one of enforce, shadow, "
          "got \"dry-run\""));
}

TEST(LoaderResilienceTest, CircuitBreakerWithoutTrigger) {
  EXPECT_THAT(
      errorsOf(withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    circuit_breaker:
      failure_on: [5xx]
      open_for: 10s
)")),
      ElementsAre("p.yaml:13:7: upstreams.app.circuit_breaker: a circuit breaker needs at least "
                  "one trigger: consecutive_failures, failure_rate or slow_call (e.g. "
                  "consecutive_failures: 5)"));
  EXPECT_THAT(
      errorsOf(withUpstreams(
          "  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n    circuit_breaker: {}\n")),
      ElementsAre("p.yaml:12:22: upstreams.app.circuit_breaker: a circuit breaker needs at least "
                  "one trigger: consecutive_failures, failure_rate or slow_call (e.g. "
                  "consecutive_failures: 5)"));
  // A misspelt trigger: the unknown key and the missing trigger are both reported.
  EXPECT_THAT(
      errorsOf(withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                             "    circuit_breaker: { consecutive_failure: 5 }\n")),
      ElementsAre("p.yaml:12:22: upstreams.app.circuit_breaker: a circuit breaker needs at "
                  "least one trigger: consecutive_failures, failure_rate or slow_call (e.g. "
                  "consecutive_failures: 5)",
                  "p.yaml:12:24: upstreams.app.circuit_breaker.consecutive_failure: unknown key "
                  "\"consecutive_failure\" (did you mean \"consecutive_failures\"?)"));
}

TEST(LoaderResilienceTest, MaxOpenForBelowOpenFor) {
  const auto breaker = [](std::string_view fields) {
    return withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                         "    circuit_breaker: { consecutive_failures: 5, " +
                         std::string(fields) + " }\n");
  };
  EXPECT_THAT(errorsOf(breaker("open_for: 2m, max_open_for: 1m")),
              ElementsAre("p.yaml:12:77: upstreams.app.circuit_breaker.max_open_for: "
                          "max_open_for (1m) must not be less than open_for (2m)"));
  EXPECT_THAT(errorsOf(breaker("max_open_for: 20s")),
              ElementsAre("p.yaml:12:63: upstreams.app.circuit_breaker.max_open_for: "
                          "max_open_for (20s) must not be less than open_for (30s, the "
                          "default)"));
  EXPECT_THAT(errorsOf(breaker("open_for: 10m")),
              ElementsAre("p.yaml:12:59: upstreams.app.circuit_breaker.open_for: open_for (10m) "
                          "must not exceed max_open_for (5m, the default); set max_open_for as "
                          "well"));
  EXPECT_THAT(errorsOf(breaker("open_for: 1m, max_open_for: 1m")), IsEmpty());
}

TEST(LoaderResilienceTest, SuccessesToCloseAbovePermitted) {
  const auto breaker = [](std::string_view half_open) {
    return withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                         "    circuit_breaker:\n      consecutive_failures: 5\n      half_open: " +
                         std::string(half_open) + "\n");
  };
  EXPECT_THAT(errorsOf(breaker("{ permitted: 2, successes_to_close: 3 }")),
              ElementsAre("p.yaml:14:54: upstreams.app.circuit_breaker.half_open."
                          "successes_to_close: successes_to_close (3) must not exceed permitted "
                          "(2)"));
  EXPECT_THAT(errorsOf(breaker("{ successes_to_close: 4 }")),
              ElementsAre("p.yaml:14:40: upstreams.app.circuit_breaker.half_open."
                          "successes_to_close: successes_to_close (4) must not exceed permitted "
                          "(3, the default)"));
  EXPECT_THAT(errorsOf(breaker("{ permitted: 3, successes_to_close: 3 }")), IsEmpty());
}

TEST(LoaderResilienceTest, InvalidOutlierDetectionFields) {
  EXPECT_THAT(
      errorsOf(withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    outlier_detection:
      consecutive_failures: 0
      consecutive_local_failures: -1
      interval: 0ms
      failure_percentage: 101
      minimum_requests: 0
      base_ejection: 1m
      max_ejection: 30s
      max_ejection_percent: 200
      max_ejection_percnt: 5
)")),
      ElementsAre(
          "p.yaml:13:29: upstreams.app.outlier_detection.consecutive_failures: expected an "
          "integer >= 1, got \"0\"",
          "p.yaml:14:35: upstreams.app.outlier_detection.consecutive_local_failures: expected an "
          "integer >= 1, got \"-1\"",
          "p.yaml:15:17: upstreams.app.outlier_detection.interval: must be greater than 0",
          "p.yaml:16:27: upstreams.app.outlier_detection.failure_percentage: expected an integer "
          "in [0,100], got \"101\"",
          "p.yaml:17:25: upstreams.app.outlier_detection.minimum_requests: expected an integer "
          ">= 1, got \"0\"",
          "p.yaml:19:21: upstreams.app.outlier_detection.max_ejection: max_ejection (30s) must "
          "not be less than base_ejection (1m)",
          "p.yaml:20:29: upstreams.app.outlier_detection.max_ejection_percent: expected an "
          "integer in [0,100], got \"200\"",
          "p.yaml:21:7: upstreams.app.outlier_detection.max_ejection_percnt: unknown key "
          "\"max_ejection_percnt\" (did you mean \"max_ejection_percent\"?)"));
  EXPECT_THAT(errorsOf(withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                                     "    outlier_detection: { base_ejection: 10m }\n")),
              ElementsAre("p.yaml:12:41: upstreams.app.outlier_detection.base_ejection: "
                          "base_ejection (10m) must not exceed max_ejection (5m, the default); "
                          "set max_ejection as well"));
}

TEST(LoaderResilienceTest, InvalidHealthCheckFields) {
  EXPECT_THAT(
      errorsOf(withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
    health_check:
      path: healthz
      host: "a b"
      expected_statuses: [200, 99, 600, 200, "204"]
      interval: 2s
      jitter_percent: 101
      timeout: 2s
      unhealthy_threshold: 0
      healthy_threshold: 0
      method: GET
)")),
      ElementsAre(
          "p.yaml:13:13: upstreams.app.health_check.path: must start with \"/\", got "
          "\"healthz\"",
          "p.yaml:14:13: upstreams.app.health_check.host: expected a host name or address, with "
          "an optional port (e.g. app.internal or app.internal:8080), got \"a b\"",
          "p.yaml:15:32: upstreams.app.health_check.expected_statuses[1]: expected an integer in "
          "[100,599], got \"99\"",
          "p.yaml:15:36: upstreams.app.health_check.expected_statuses[2]: expected an integer in "
          "[100,599], got \"600\"",
          "p.yaml:15:41: upstreams.app.health_check.expected_statuses[3]: duplicate status 200 "
          "(first listed at upstreams.app.health_check.expected_statuses[0])",
          "p.yaml:15:46: upstreams.app.health_check.expected_statuses[4]: expected an integer in "
          "[100,599], got the string \"204\"",
          "p.yaml:17:23: upstreams.app.health_check.jitter_percent: expected an integer in "
          "[0,100], got \"101\"",
          "p.yaml:18:16: upstreams.app.health_check.timeout: timeout (2s) must be less than "
          "interval (2s)",
          "p.yaml:19:28: upstreams.app.health_check.unhealthy_threshold: expected an integer >= "
          "1, got \"0\"",
          "p.yaml:20:26: upstreams.app.health_check.healthy_threshold: expected an integer >= 1, "
          "got \"0\"",
          "p.yaml:21:7: upstreams.app.health_check.method: unknown key \"method\" (expected one "
          "of: path, host, expected_statuses, interval, jitter_percent, timeout, "
          "unhealthy_threshold, healthy_threshold)"));
  const auto health = [](std::string_view fields) {
    return withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                         "    health_check: { " +
                         std::string(fields) + " }\n");
  };
  EXPECT_THAT(errorsOf(health("interval: 500ms")),
              ElementsAre("p.yaml:12:31: upstreams.app.health_check.interval: interval (500ms) "
                          "must be greater than timeout (1s, the default); set timeout as well"));
  EXPECT_THAT(errorsOf(health("timeout: 5s")),
              ElementsAre("p.yaml:12:30: upstreams.app.health_check.timeout: timeout (5s) must "
                          "be less than interval (5s, the default)"));
  EXPECT_THAT(errorsOf(health("expected_statuses: []")),
              ElementsAre("p.yaml:12:40: upstreams.app.health_check.expected_statuses: must list "
                          "at least one status (leave the key out for the default)"));
  EXPECT_THAT(errorsOf(health("path: \"/a b\"")),
              ElementsAre("p.yaml:12:27: upstreams.app.health_check.path: must not contain "
                          "spaces or control characters, got \"/a b\""));
}

TEST(LoaderResilienceTest, HealthCheckOnTcpUpstream) {
  const std::string yaml = R"(version: 1
service: svc
listeners:
  - name: db
    address: 127.0.0.1:5432
    protocol: tcp
    upstream: pg
upstreams:
  pg:
    protocol: tcp
    endpoints: [{ address: 10.0.0.5:5432 }]
    health_check: { path: /healthz }
    load_balancer: hash
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre("p.yaml:12:19: upstreams.pg.health_check: \"health_check\" applies to http1 "
                  "upstreams only (this upstream is tcp; outlier_detection ejects tcp endpoints "
                  "on connect failures, resets and timeouts)",
                  "p.yaml:13:20: upstreams.pg.load_balancer: load_balancer \"hash\" applies to "
                  "http1 upstreams only (this upstream is tcp: it has no path, header or cookie "
                  "to hash on; use round_robin, least_request or random)"));
}

TEST(LoaderResilienceTest, InvalidFailoverFields) {
  EXPECT_THAT(
      errorsOf(withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                             "    failover: { min_healthy_percent: 0, panic_threshold_percent: "
                             "101, spill: true }\n")),
      ElementsAre("p.yaml:12:38: upstreams.app.failover.min_healthy_percent: expected an integer "
                  "in [1,100], got \"0\"",
                  "p.yaml:12:66: upstreams.app.failover.panic_threshold_percent: expected an "
                  "integer in [0,100], got \"101\"",
                  "p.yaml:12:71: upstreams.app.failover.spill: unknown key \"spill\" (expected "
                  "one of: min_healthy_percent, panic_threshold_percent)"));
  EXPECT_THAT(errorsOf(withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n"
                                     "    failover: 70\n")),
              ElementsAre("p.yaml:12:15: upstreams.app.failover: expected a mapping, got \"70\""));
}

TEST(LoaderResilienceTest, HashOnRules) {
  const auto upstream = [](std::string_view fields) {
    return withUpstreams("  app:\n    endpoints: [{ address: 127.0.0.1:8080 }]\n" +
                         std::string(fields));
  };
  EXPECT_THAT(errorsOf(upstream("    hash_on: header:x-user\n")),
              ElementsAre("p.yaml:12:14: upstreams.app.hash_on: hash_on needs load_balancer: "
                          "hash (load_balancer is round_robin, the default)"));
  EXPECT_THAT(errorsOf(upstream("    load_balancer: random\n    hash_on: path\n")),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: hash_on needs load_balancer: "
                          "hash (load_balancer is random)"));
  // A wrong load_balancer is reported once; hash_on is not blamed for it.
  EXPECT_THAT(errorsOf(upstream("    load_balancer: hsah\n    hash_on: path\n")),
              ElementsAre("p.yaml:12:20: upstreams.app.load_balancer: expected one of "
                          "round_robin, least_request, random, hash, got \"hsah\" (did you mean "
                          "\"hash\"?)"));
  const auto hashOn = [&](std::string_view value) {
    return errorsOf(upstream("    load_balancer: hash\n    hash_on: " + std::string(value) + "\n"));
  };
  EXPECT_THAT(hashOn("header"),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: hash_on \"header\" needs a name: "
                          "header:NAME (e.g. header:x-user-id)"));
  EXPECT_THAT(hashOn("\"cookie:\""),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: expected a cookie name (RFC 9110 "
                          "token characters) after \"cookie:\", got the string \"cookie:\""));
  EXPECT_THAT(hashOn("\"header:x y\""),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: expected a header name (RFC 9110 "
                          "token characters) after \"header:\", got the string \"header:x y\""));
  EXPECT_THAT(hashOn("haeder:x-user"),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: expected path, header:NAME or "
                          "cookie:NAME, got \"haeder:x-user\" (did you mean \"header:x-user\"?)"));
  EXPECT_THAT(hashOn("client_ip"),
              ElementsAre("p.yaml:13:14: upstreams.app.hash_on: expected path, header:NAME or "
                          "cookie:NAME, got \"client_ip\""));
  EXPECT_THAT(hashOn("path"), IsEmpty());
}

TEST(LoaderResilienceTest, ReadyRequiresNamesExistingUpstreams) {
  std::string yaml = withUpstreams(R"(  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
  pg:
    protocol: tcp
    endpoints: [{ address: 127.0.0.1:5432 }]
probes:
  address: 0.0.0.0:15021
  ready_requires: [app, pgg, app, 7, {}]
)");
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre("p.yaml:17:30: probes.ready_requires[2]: duplicate upstream \"app\" (first "
                  "listed at probes.ready_requires[0])",
                  "p.yaml:17:38: probes.ready_requires[4]: expected a string, got a mapping",
                  "p.yaml:17:25: probes.ready_requires[1]: unknown upstream \"pgg\" (known "
                  "upstreams: \"app\", \"pg\")",
                  "p.yaml:17:35: probes.ready_requires[3]: unknown upstream \"7\" (known "
                  "upstreams: \"app\", \"pg\")"));
  EXPECT_THAT(errorsOf(std::string(kHead) + "  app:\n    endpoints: [{ address: 127.0.0.1:8080 "
                                            "}]\nprobes: { ready_requires: app }\n"),
              ElementsAre("p.yaml:12:27: probes.ready_requires: expected a sequence, got \"app\""));
}

std::string readDocs() {
  const std::filesystem::path file =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "docs" / "policy.md";
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

// docs/policy.md "A resilient upstream" loads as written.
TEST(LoaderResilienceTest, DocsResilientUpstreamExampleLoads) {
  const std::string docs = readDocs();
  const std::string marker = "<!-- example: resilient-upstream -->\n```yaml\n";
  const size_t begin = docs.find(marker);
  ASSERT_NE(std::string::npos, begin) << "marker missing in docs/policy.md";
  const size_t end = docs.find("```", begin + marker.size());
  ASSERT_NE(std::string::npos, end);
  const Policy p = load(docs.substr(begin + marker.size(), end - begin - marker.size()));
  EXPECT_THAT(p.probes.ready_requires, ElementsAre("app"));
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ(LoadBalancerKind::Hash, app.load_balancer);
  EXPECT_EQ("x-user-id", app.hash_on.name);
  EXPECT_TRUE(app.circuit_breaker.enabled);
  EXPECT_TRUE(app.circuit_breaker.shadow);
  EXPECT_THAT(app.circuit_breaker.failure_on.statuses, ElementsAre(429));
  EXPECT_TRUE(app.outlier_detection.enabled);
  EXPECT_TRUE(app.health_check.enabled);
  EXPECT_EQ(70u, app.failover.min_healthy_percent);
}

// docs/policy.md "Not supported yet" names every entry of the table, and nothing that landed.
TEST(LoaderResilienceTest, DocsNotSupportedListMatchesTable) {
  const std::string docs = readDocs();
  const size_t begin = docs.find("## Not supported yet");
  const size_t end = docs.find("## Errors", begin);
  ASSERT_NE(std::string::npos, begin);
  ASSERT_NE(std::string::npos, end);
  const std::string section = docs.substr(begin, end - begin);
  for (const detail::NotSupportedYet& n : detail::notSupportedYet()) {
    const std::string entry = n.value.empty()
                                  ? "`" + std::string(n.key) + "`"
                                  : "`" + std::string(n.key) + ": " + std::string(n.value) + "`";
    EXPECT_NE(std::string::npos, section.find(entry)) << entry;
  }
  for (std::string_view landed : {"circuit_breaker", "outlier_detection", "health_check",
                                  "hash_on", "ready_requires", "random", "retry",
                                  "rate_limit", "fallback", "degradation", "fault"}) {
    EXPECT_EQ(std::string::npos, section.find(landed)) << landed;
  }
}

}  // namespace
}  // namespace levee::config
