// Loader tests for the request resilience blocks of a route (config/loader_routes_resilience.cc):
// `retry` and `rate_limit`, and retry.per_try_timeout against the route timeout.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::errorsOf;
using test::load;

using test::withRoute;
constexpr auto& at = test::routeErrorAt;

// Blocks on line 9: `retry: ` puts the block at column 16, `rate_limit: ` at column 21.
std::vector<std::string> retryErrors(std::string_view b) { return test::routeBlockErrors("retry", b); }
std::vector<std::string> rateLimitErrors(std::string_view b) { return test::routeBlockErrors("rate_limit", b); }

TEST(LoaderRequestResilienceTest, FullBlocksFillEveryField) {
  const Policy p = load(withRoute(R"(        timeout: 5s
        retry:
          max_retries: 3
          on: [connect-failure, reset, gateway-error, retriable-status, 5xx, timeout]
          statuses: [429, 503]
          per_try_timeout: 800ms
          backoff: { base: 10ms, max: 1s }
          methods: [get, PUT, Delete, GET]
          budget: { ratio: 0.5, min_per_second: 4, ttl: 30s }
          honor_retry_after: false
          max_body_bytes: 1MiB
        rate_limit:
          rate: 6000/m
          burst: 50
          key: header:X-Api-Key
          mode: shadow
          max_keys: 500
      - name: percent-budget
        upstream: app
        retry:
          on: [reset]
          budget: { percent: 30, min_concurrency: 0 }
        rate_limit: { rate: 10/h, burst: 1, key: route, mode: enforce, max_keys: 10000000 }
      - name: fractional
        upstream: app
        rate_limit: { rate: "0.5/s", burst: 2, key: client_ip }
)"));
  const std::vector<Route>& routes = p.listeners.at(0).routes;
  ASSERT_EQ(3u, routes.size());

  const RetryConfig& retry = routes[0].retry;
  EXPECT_TRUE(retry.enabled);
  EXPECT_EQ(3u, retry.max_retries);
  EXPECT_TRUE(retry.on_connect_failure);
  EXPECT_TRUE(retry.on_reset);
  EXPECT_TRUE(retry.on_gateway_error);
  EXPECT_TRUE(retry.on_retriable_status);
  EXPECT_TRUE(retry.on_5xx);
  EXPECT_TRUE(retry.on_timeout);
  EXPECT_THAT(retry.statuses, ElementsAre(429, 503));
  EXPECT_EQ(milliseconds(800), retry.per_try_timeout);
  EXPECT_EQ(milliseconds(10), retry.backoff_base);
  EXPECT_EQ(milliseconds(1000), retry.backoff_max);
  EXPECT_THAT(retry.methods, ElementsAre("GET", "PUT", "DELETE"));
  EXPECT_EQ(RetryBudgetConfig::Kind::Ratio, retry.budget.kind);
  EXPECT_DOUBLE_EQ(0.5, retry.budget.ratio);
  EXPECT_EQ(4u, retry.budget.min_per_second);
  EXPECT_EQ(milliseconds(30000), retry.budget.ttl);
  EXPECT_FALSE(retry.honor_retry_after);
  EXPECT_EQ(1024u * 1024u, retry.max_body_bytes);

  const RateLimitConfig& rl = routes[0].rate_limit;
  EXPECT_TRUE(rl.enabled);
  EXPECT_DOUBLE_EQ(100.0, rl.rate_per_second);
  EXPECT_EQ("6000/m", rl.rate_text);
  EXPECT_EQ(50u, rl.burst);
  EXPECT_EQ(RateLimitConfig::Key::Header, rl.key);
  EXPECT_EQ("x-api-key", rl.header);
  EXPECT_TRUE(rl.shadow);
  EXPECT_EQ(500u, rl.max_keys);

  const RetryConfig& only_reset = routes[1].retry;
  EXPECT_TRUE(only_reset.enabled);
  EXPECT_FALSE(only_reset.on_connect_failure);  // `on` replaces the default
  EXPECT_TRUE(only_reset.on_reset);
  EXPECT_FALSE(only_reset.on_5xx);
  EXPECT_EQ(RetryBudgetConfig::Kind::Percent, only_reset.budget.kind);
  EXPECT_EQ(30u, only_reset.budget.percent);
  EXPECT_EQ(0u, only_reset.budget.min_concurrency);
  const RateLimitConfig& per_route = routes[1].rate_limit;
  EXPECT_DOUBLE_EQ(10.0 / 3600.0, per_route.rate_per_second);
  EXPECT_EQ("10/h", per_route.rate_text);
  EXPECT_EQ(1u, per_route.burst);
  EXPECT_EQ(RateLimitConfig::Key::Route, per_route.key);
  EXPECT_FALSE(per_route.shadow);
  EXPECT_EQ(10'000'000u, per_route.max_keys);

  EXPECT_FALSE(routes[2].retry.enabled);
  EXPECT_DOUBLE_EQ(0.5, routes[2].rate_limit.rate_per_second);
  EXPECT_EQ("0.5/s", routes[2].rate_limit.rate_text);
  EXPECT_EQ(RateLimitConfig::Key::ClientIp, routes[2].rate_limit.key);
}

TEST(LoaderRequestResilienceTest, Defaults) {
  const Policy absent = load(withRoute(""));
  const Route& plain = absent.listeners.at(0).routes.at(0);
  EXPECT_FALSE(plain.retry.enabled);
  EXPECT_FALSE(plain.rate_limit.enabled);

  const Policy p =
      load(withRoute("        retry: {}\n        rate_limit: { rate: 100/s, burst: 200 }\n"));
  const Route& route = p.listeners.at(0).routes.at(0);
  const RetryConfig& retry = route.retry;
  EXPECT_TRUE(retry.enabled);
  EXPECT_EQ(1u, retry.max_retries);
  EXPECT_TRUE(retry.on_connect_failure);
  EXPECT_FALSE(retry.on_reset);
  EXPECT_FALSE(retry.on_timeout);
  EXPECT_FALSE(retry.on_5xx);
  EXPECT_FALSE(retry.on_gateway_error);
  EXPECT_FALSE(retry.on_retriable_status);
  EXPECT_THAT(retry.statuses, IsEmpty());
  EXPECT_EQ(milliseconds(0), retry.per_try_timeout);
  EXPECT_EQ(milliseconds(25), retry.backoff_base);
  EXPECT_EQ(milliseconds(250), retry.backoff_max);
  EXPECT_THAT(retry.methods, IsEmpty());
  EXPECT_EQ(RetryBudgetConfig::Kind::None, retry.budget.kind);
  EXPECT_TRUE(retry.honor_retry_after);
  EXPECT_EQ(64u * 1024u, retry.max_body_bytes);

  const RateLimitConfig& rl = route.rate_limit;
  EXPECT_TRUE(rl.enabled);
  EXPECT_DOUBLE_EQ(100.0, rl.rate_per_second);
  EXPECT_EQ("100/s", rl.rate_text);
  EXPECT_EQ(200u, rl.burst);
  EXPECT_EQ(RateLimitConfig::Key::ClientIp, rl.key);
  EXPECT_EQ("", rl.header);
  EXPECT_FALSE(rl.shadow);
  EXPECT_EQ(100000u, rl.max_keys);

  // A budget of one form keeps the defaults of its other keys.
  const Policy b = load(withRoute("        retry: { budget: { ttl: 5s }, max_retries: 0 }\n"));
  const RetryConfig& budget_only = b.listeners.at(0).routes.at(0).retry;
  EXPECT_EQ(0u, budget_only.max_retries);
  EXPECT_EQ(RetryBudgetConfig::Kind::Ratio, budget_only.budget.kind);
  EXPECT_DOUBLE_EQ(0.2, budget_only.budget.ratio);
  EXPECT_EQ(10u, budget_only.budget.min_per_second);
  EXPECT_EQ(milliseconds(5000), budget_only.budget.ttl);
}

// DESIGN.md section 5's route, verbatim except `fallback` (not supported yet).
TEST(LoaderRequestResilienceTest, DesignRouteExampleLoads) {
  const Policy p = load(withRoute(R"(        timeout: 3s                          # whole request, retries included
        retry:
          max_retries: 2
          on: [connect-failure, reset, gateway-error, retriable-status]   # also 5xx, timeout
          statuses: [503]
          per_try_timeout: 800ms
          backoff: { base: 25ms, max: 250ms }             # full jitter
          methods: [GET, HEAD, OPTIONS, PUT, DELETE]      # default: idempotent only; POST only
                                                          # if listed or Idempotency-Key present
          budget: { percent: 20, min_concurrency: 3 }     # or { ratio: 0.2, min_per_second: 10, ttl: 10s }
          honor_retry_after: true
        rate_limit:
          rate: 100/s                        # token bucket: refill rate
          burst: 200                         # bucket size
          key: client_ip                     # client_ip | header:NAME | route
          mode: enforce                      # enforce | shadow
        fault:                               # usually set at run time through the admin API
          delay: { percent: 10, duration: 2s }
          abort: { percent: 5, status: 503 }
)"));
  const Route& route = p.listeners.at(0).routes.at(0);
  EXPECT_EQ(2u, route.retry.max_retries);
  EXPECT_THAT(route.retry.statuses, ElementsAre(503));
  EXPECT_THAT(route.retry.methods, ElementsAre("GET", "HEAD", "OPTIONS", "PUT", "DELETE"));
  EXPECT_EQ(RetryBudgetConfig::Kind::Percent, route.retry.budget.kind);
  EXPECT_EQ(20u, route.retry.budget.percent);
  EXPECT_EQ(3u, route.retry.budget.min_concurrency);
  EXPECT_DOUBLE_EQ(100.0, route.rate_limit.rate_per_second);
  EXPECT_EQ(200u, route.rate_limit.burst);
  EXPECT_EQ(std::chrono::milliseconds(2000), route.fault.delay);
  EXPECT_EQ(503, route.fault.abort_status);
}

TEST(LoaderRequestResilienceTest, RetryFieldErrors) {
  EXPECT_THAT(retryErrors("[]"),
              ElementsAre(at(16, "retry", "expected a mapping, got a sequence")));
  EXPECT_THAT(retryErrors("{ max_retires: 2 }"),
              ElementsAre(at(18, "retry.max_retires",
                             "unknown key \"max_retires\" (did you mean \"max_retries\"?)")));
  EXPECT_THAT(retryErrors("{ max_retries: 11 }"),
              ElementsAre(at(31, "retry.max_retries",
                             "expected an integer in [0,10], got \"11\"")));
  EXPECT_THAT(retryErrors("{ honor_retry_after: yes }"),
              ElementsAre(at(37, "retry.honor_retry_after",
                             "expected true or false, got \"yes\"")));
  EXPECT_THAT(retryErrors("{ max_body_bytes: 1XB }"),
              ElementsAre(at(34, "retry.max_body_bytes",
                             "invalid size \"1XB\": unknown unit \"XB\" (use B, KB, MB, GB, TB, "
                             "KiB, MiB, GiB or TiB)")));
  EXPECT_THAT(retryErrors("{ methods: [GET, \"BAD METHOD\"] }"),
              ElementsAre(at(33, "retry.methods[1]", "invalid HTTP method \"BAD METHOD\"")));
  EXPECT_THAT(retryErrors("{ methods: [] }"),
              ElementsAre(at(27, "retry.methods",
                             "must not be empty (leave the key out to retry idempotent methods "
                             "only)")));
}

TEST(LoaderRequestResilienceTest, RetryOnErrors) {
  EXPECT_THAT(retryErrors("{ on: [reset, rset, reset] }"),
              ElementsAre(at(30, "retry.on[1]",
                             "expected connect-failure, reset, gateway-error, retriable-status, "
                             "5xx or timeout, got \"rset\" (did you mean \"reset\"?)"),
                          at(36, "retry.on[2]",
                             "duplicate condition \"reset\" (first listed at "
                             "listeners[0].routes[0].retry.on[0])")));
  EXPECT_THAT(retryErrors("{ on: [] }"),
              ElementsAre(at(22, "retry.on",
                             "must list at least one condition (leave the key out for the "
                             "default: connect-failure)")));
}

TEST(LoaderRequestResilienceTest, StatusesAndRetriableStatusNeedEachOther) {
  EXPECT_THAT(retryErrors("{ on: [retriable-status] }"),
              ElementsAre(at(16, "retry.statuses",
                             "missing required key \"statuses\" (\"retriable-status\" in \"on\" "
                             "retries the statuses listed there, e.g. statuses: [503])")));
  // Without `on`, the default [connect-failure] has no retriable-status either.
  EXPECT_THAT(retryErrors("{ statuses: [503] }"),
              ElementsAre(at(28, "retry.statuses",
                             "statuses apply only with \"retriable-status\" in \"on\" (add it to "
                             "\"on\", or remove statuses)")));
  EXPECT_THAT(retryErrors("{ on: [retriable-status], statuses: [399, 503, 503, x] }"),
              ElementsAre(at(53, "retry.statuses[0]",
                             "expected an integer in [400,599], got \"399\""),
                          at(63, "retry.statuses[2]",
                             "duplicate status 503 (first listed at "
                             "listeners[0].routes[0].retry.statuses[1])"),
                          at(68, "retry.statuses[3]",
                             "expected an integer in [400,599], got \"x\"")));
  EXPECT_THAT(retryErrors("{ statuses: [], on: [retriable-status] }"),
              ElementsAre(at(28, "retry.statuses",
                             "must list at least one status (e.g. statuses: [503])")));
}

TEST(LoaderRequestResilienceTest, BackoffErrors) {
  EXPECT_THAT(retryErrors("{ backoff: { base: 100ms, max: 50ms } }"),
              ElementsAre(at(47, "retry.backoff.max",
                             "max (50ms) must not be less than base (100ms)")));
  EXPECT_THAT(retryErrors("{ backoff: { base: 1s } }"),
              ElementsAre(at(35, "retry.backoff.base",
                             "base (1s) must not exceed max (250ms, the default); set max as "
                             "well")));
  EXPECT_THAT(retryErrors("{ backoff: { base: 0s, bsae: 1s } }"),
              ElementsAre(at(35, "retry.backoff.base", "must be greater than 0"),
                          at(39, "retry.backoff.bsae",
                             "unknown key \"bsae\" (did you mean \"base\"?)")));
}

TEST(LoaderRequestResilienceTest, BudgetErrors) {
  const std::string forms =
      "a budget is either { percent, min_concurrency } or { ratio, min_per_second, ttl }";
  EXPECT_THAT(retryErrors("{ budget: { percent: 20, ratio: 0.2, ttl: 5s } }"),
              ElementsAre(at(41, "retry.budget.ratio",
                             "\"ratio\" cannot be combined with \"percent\": " + forms),
                          at(53, "retry.budget.ttl",
                             "\"ttl\" cannot be combined with \"percent\": " + forms)));
  EXPECT_THAT(retryErrors("{ budget: { min_per_second: 1, min_concurrency: 3 } }"),
              ElementsAre(at(47, "retry.budget.min_concurrency",
                             "\"min_concurrency\" cannot be combined with \"min_per_second\": " +
                                 forms)));
  EXPECT_THAT(retryErrors("{ budget: {} }"),
              ElementsAre(at(26, "retry.budget",
                             "an empty budget: " + forms +
                                 " (e.g. { percent: 20, min_concurrency: 3 }); leave budget out "
                                 "for none")));
  EXPECT_THAT(retryErrors("{ budget: { percent: 0 } }"),
              ElementsAre(at(37, "retry.budget.percent",
                             "expected an integer in [1,100], got \"0\"")));
  EXPECT_THAT(retryErrors("{ budget: { ratio: 0, ttl: 500ms } }"),
              ElementsAre(at(35, "retry.budget.ratio", "expected a number in (0,10], got \"0\""),
                          at(43, "retry.budget.ttl",
                             "must be between 1s and 60s, got \"500ms\"")));
  EXPECT_THAT(retryErrors("{ budget: { ratio: 10.5, ttl: 61s } }"),
              ElementsAre(at(35, "retry.budget.ratio",
                             "expected a number in (0,10], got \"10.5\""),
                          at(46, "retry.budget.ttl", "must be between 1s and 60s, got \"61s\"")));
  EXPECT_THAT(retryErrors("{ budget: { precent: 20 } }"),
              ElementsAre(at(28, "retry.budget.precent",
                             "unknown key \"precent\" (did you mean \"percent\"?)")));
}

TEST(LoaderRequestResilienceTest, PerTryTimeoutMustBeLessThanRouteTimeout) {
  const std::string message_tail =
      "): the route timeout bounds all attempts, so no retry would fit";
  EXPECT_THAT(errorsOf(withRoute("        timeout: 3s\n        retry: { per_try_timeout: 3s }\n")),
              ElementsAre("p.yaml:10:35: listeners[0].routes[0].retry.per_try_timeout: "
                          "per_try_timeout (3s) must be less than the route timeout (3s" +
                          message_tail));
  // Reported at per_try_timeout even when the route timeout comes after the retry block.
  EXPECT_THAT(errorsOf(withRoute(
                  "        retry: { per_try_timeout: 5s }\n        timeout: 1500ms\n")),
              ElementsAre("p.yaml:9:35: listeners[0].routes[0].retry.per_try_timeout: "
                          "per_try_timeout (5s) must be less than the route timeout (1500ms" +
                          message_tail));
  EXPECT_THAT(errorsOf(withRoute("        timeout: 3s\n        retry: { per_try_timeout: 1s }\n")),
              IsEmpty());
  // No route timeout: nothing to compare with.
  EXPECT_THAT(errorsOf(withRoute("        retry: { per_try_timeout: 1m }\n")), IsEmpty());
}

TEST(LoaderRequestResilienceTest, RateStrings) {
  const auto rate = [](std::string_view text) {
    return rateLimitErrors("{ rate: " + std::string(text) + ", burst: 10 }");
  };
  EXPECT_THAT(rate("100"),
              ElementsAre(at(29, "rate_limit.rate",
                             "expected a rate NUMBER/UNIT (e.g. \"100/s\"; unit s, m or h), got "
                             "\"100\" (write \"100/s\", \"100/m\" or \"100/h\")")));
  EXPECT_THAT(rate("x/s"),
              ElementsAre(at(29, "rate_limit.rate",
                             "invalid rate \"x/s\": expected a number before \"/\" (e.g. "
                             "\"100/s\")")));
  EXPECT_THAT(rate("10/d"),
              ElementsAre(at(29, "rate_limit.rate",
                             "invalid rate \"10/d\": the unit must be s, m or h (per second, "
                             "minute or hour), got \"d\"")));
  EXPECT_THAT(rate("-1/s"),
              ElementsAre(at(29, "rate_limit.rate",
                             "invalid rate \"-1/s\": the number must be greater than 0")));
  EXPECT_THAT(rate("0/m"),
              ElementsAre(at(29, "rate_limit.rate",
                             "invalid rate \"0/m\": the number must be greater than 0")));
  EXPECT_THAT(rate("/s"),
              ElementsAre(at(29, "rate_limit.rate",
                             "invalid rate \"/s\": expected a number before \"/\" (e.g. "
                             "\"100/s\")")));
  EXPECT_THAT(rate("fast"),
              ElementsAre(at(29, "rate_limit.rate",
                             "expected a rate NUMBER/UNIT (e.g. \"100/s\"; unit s, m or h), got "
                             "\"fast\"")));
  EXPECT_THAT(rate("[100/s]"),
              ElementsAre(at(29, "rate_limit.rate",
                             "expected a rate NUMBER/UNIT (e.g. \"100/s\"; unit s, m or h), got "
                             "a sequence")));
}

TEST(LoaderRequestResilienceTest, RateLimitFieldErrors) {
  EXPECT_THAT(rateLimitErrors("{}"),
              ElementsAre(at(21, "rate_limit.rate", "missing required key \"rate\""),
                          at(21, "rate_limit.burst", "missing required key \"burst\"")));
  EXPECT_THAT(rateLimitErrors("{ rate: 100/s, burst: 0 }"),
              ElementsAre(at(43, "rate_limit.burst", "expected an integer >= 1, got \"0\"")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, key: header }"),
              ElementsAre(at(49, "rate_limit.key",
                             "key \"header\" needs a name: header:NAME (e.g. header:x-api-key)")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, key: \"header:a b\" }"),
              ElementsAre(at(49, "rate_limit.key",
                             "expected a header name (RFC 9110 token characters) after "
                             "\"header:\", got the string \"header:a b\"")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, key: clientip }"),
              ElementsAre(at(49, "rate_limit.key",
                             "expected client_ip, route or header:NAME, got \"clientip\" (did you "
                             "mean \"client_ip\"?)")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, key: hedaer:x-id }"),
              ElementsAre(at(49, "rate_limit.key",
                             "expected client_ip, route or header:NAME, got \"hedaer:x-id\" (did "
                             "you mean \"header:x-id\"?)")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, mode: shadw }"),
              ElementsAre(at(50, "rate_limit.mode",
                             "expected one of enforce, shadow, got \"shadw\" (did you mean "
                             "\"shadow\"?)")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, max_keys: 0 }"),
              ElementsAre(at(54, "rate_limit.max_keys",
                             "expected an integer in [1,10000000], got \"0\"")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, max_keys: 10000001 }"),
              ElementsAre(at(54, "rate_limit.max_keys",
                             "expected an integer in [1,10000000], got \"10000001\"")));
  EXPECT_THAT(rateLimitErrors("{ rate: 1/s, burst: 1, limit: 5 }"),
              ElementsAre(at(44, "rate_limit.limit",
                             "unknown key \"limit\" (expected one of: rate, burst, key, mode, "
                             "max_keys)")));
}

std::string readDocs() {
  const std::filesystem::path file =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "docs" / "policy.md";
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

// docs/policy.md "A resilient route" loads as written.
TEST(LoaderRequestResilienceTest, DocsResilientRouteExampleLoads) {
  const std::string docs = readDocs();
  const std::string marker = "<!-- example: resilient-route -->\n```yaml\n";
  const size_t begin = docs.find(marker);
  ASSERT_NE(std::string::npos, begin) << "marker missing in docs/policy.md";
  const size_t end = docs.find("```", begin + marker.size());
  ASSERT_NE(std::string::npos, end);
  const Policy p = load(docs.substr(begin + marker.size(), end - begin - marker.size()));
  const std::vector<Route>& routes = p.listeners.at(0).routes;
  ASSERT_EQ(2u, routes.size());
  EXPECT_TRUE(routes[0].retry.enabled);
  EXPECT_TRUE(routes[0].retry.on_retriable_status);
  EXPECT_EQ(RetryBudgetConfig::Kind::Percent, routes[0].retry.budget.kind);
  EXPECT_TRUE(routes[0].rate_limit.enabled);
  EXPECT_EQ(RateLimitConfig::Key::Header, routes[0].rate_limit.key);
  EXPECT_TRUE(routes[1].retry.enabled);
  EXPECT_EQ(RetryBudgetConfig::Kind::Ratio, routes[1].retry.budget.kind);
  EXPECT_TRUE(routes[1].rate_limit.shadow);
}

}  // namespace
}  // namespace levee::config
