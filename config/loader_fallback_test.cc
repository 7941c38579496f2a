// Loader tests for the route `fallback` block (config/loader_fallback.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::errorsOf;
using test::load;

// Lines 1-8; the keys given to withRoute start on line 9.
constexpr std::string_view kHead = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - name: r
        upstream: app
)";

constexpr std::string_view kTail = R"(upstreams:
  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
  backup:
    endpoints: [{ address: 127.0.0.1:8081 }]
  db:
    protocol: tcp
    endpoints: [{ address: 127.0.0.1:5432 }]
)";

std::string withRoute(std::string_view keys) {
  return std::string(kHead) + std::string(keys) + std::string(kTail);
}

// `fallback: <block>` on line 9: the block starts at column 19.
std::vector<std::string> fallbackErrors(std::string_view block) {
  return errorsOf(withRoute("        fallback: " + std::string(block) + "\n"));
}

std::string at(int line, int column, std::string_view path, std::string_view message) {
  return "p.yaml:" + std::to_string(line) + ":" + std::to_string(column) +
         ": listeners[0].routes[0]." + std::string(path) + ": " + std::string(message);
}

// DESIGN.md section 5's fallback block, verbatim.
TEST(LoaderFallbackTest, DesignExampleLoads) {
  const Policy p = load(withRoute(R"(        fallback:                            # tried in order when the upstream path fails
          on: [breaker_open, no_healthy_upstream, timeout, upstream_5xx, degraded]
          chain:
            - stale: { max_stale: 10m }      # last good GET response for this key (RFC 5861 style)
            - static: { status: 200, headers: {content-type: application/json}, body: '{"items":[],"isFallback":true}' }
)"));
  const FallbackConfig& f = p.listeners.at(0).routes.at(0).fallback;
  ASSERT_TRUE(f.enabled);
  EXPECT_TRUE(f.wants(FallbackReason::BreakerOpen));
  EXPECT_TRUE(f.wants(FallbackReason::Degraded));
  EXPECT_FALSE(f.wants(FallbackReason::ConnectFailure));
  EXPECT_FALSE(f.wants(FallbackReason::RateLimited));
  ASSERT_EQ(2u, f.chain.size());
  EXPECT_EQ(FallbackEntry::Kind::Stale, f.chain[0].kind);
  EXPECT_EQ(std::chrono::minutes(10), f.chain[0].stale.max_stale);
  EXPECT_EQ(16u * 1024 * 1024, f.chain[0].stale.max_bytes);
  EXPECT_EQ(FallbackEntry::Kind::Static, f.chain[1].kind);
  EXPECT_EQ(200, f.chain[1].static_response.status);
  EXPECT_THAT(f.chain[1].static_response.headers,
              ElementsAre(std::pair<std::string, std::string>("content-type", "application/json")));
  EXPECT_EQ(R"({"items":[],"isFallback":true})", f.chain[1].static_response.body);
}

TEST(LoaderFallbackTest, DefaultsAndUpstreamForms) {
  const Policy p = load(withRoute(R"(        fallback:
          chain:
            - upstream: backup
            - stale: { max_bytes: 1MiB, max_entries: 50, max_entry_bytes: 64KiB, allow_authorized: true }
)"));
  const FallbackConfig& f = p.listeners.at(0).routes.at(0).fallback;
  // Default `on`: every reason except rate_limited.
  EXPECT_TRUE(f.wants(FallbackReason::ConnectFailure));
  EXPECT_TRUE(f.wants(FallbackReason::Upstream5xx));
  EXPECT_TRUE(f.wants(FallbackReason::Overflow));
  EXPECT_FALSE(f.wants(FallbackReason::RateLimited));
  ASSERT_EQ(2u, f.chain.size());
  EXPECT_EQ("backup", f.chain[0].upstream);
  EXPECT_EQ(std::chrono::milliseconds(0), f.chain[0].timeout);
  EXPECT_EQ(1024u * 1024, f.chain[1].stale.max_bytes);
  EXPECT_EQ(50u, f.chain[1].stale.max_entries);
  EXPECT_TRUE(f.chain[1].stale.allow_authorized);

  const Policy q = load(withRoute(R"(        fallback:
          on: [rate_limited]
          chain: [{ upstream: { name: backup, timeout: 2s } }]
)"));
  const FallbackConfig& g = q.listeners.at(0).routes.at(0).fallback;
  EXPECT_TRUE(g.wants(FallbackReason::RateLimited));
  EXPECT_FALSE(g.wants(FallbackReason::Timeout));
  EXPECT_EQ(std::chrono::seconds(2), g.chain.at(0).timeout);
}

TEST(LoaderFallbackTest, ChainsThatLoopOrCannotBeReachedAreErrors) {
  EXPECT_THAT(fallbackErrors("{ chain: [{ upstream: app }] }"),
              ElementsAre(at(9, 29, "fallback.chain[0]",
                             "fallback to the route's own upstream \"app\" would loop (retries "
                             "are the route's \"retry\" block)")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ upstream: backup }, { upstream: { name: backup } }] }"),
              ElementsAre(at(9, 51, "fallback.chain[1]",
                             "upstream \"backup\" is already tried at "
                             "listeners[0].routes[0].fallback.chain[0] (a chain may not loop)")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ static: {} }, { stale: {} }] }"),
              ElementsAre(at(9, 45, "fallback.chain[1]",
                             "unreachable: listeners[0].routes[0].fallback.chain[0] is a static "
                             "response, which always answers; put static last")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ stale: {} }, { stale: {} }] }"),
              ElementsAre(at(9, 44, "fallback.chain[1]",
                             "a second stale entry never answers (first at "
                             "listeners[0].routes[0].fallback.chain[0])")));
}

TEST(LoaderFallbackTest, FieldErrors) {
  EXPECT_THAT(fallbackErrors("{}"),
              ElementsAre(at(9, 19, "fallback.chain", "missing required key \"chain\"")));
  EXPECT_THAT(fallbackErrors("{ chain: [] }"),
              ElementsAre(at(9, 28, "fallback.chain",
                             "must list at least one entry (stale, static or upstream); leave "
                             "fallback out for none")));
  EXPECT_THAT(fallbackErrors("{ on: [timeuot], chain: [{ static: {} }] }"),
              ElementsAre(at(9, 26, "fallback.on[0]",
                             "expected one of breaker_open, no_healthy_upstream, "
                             "connect_failure, reset, timeout, upstream_5xx, overflow, "
                             "rate_limited, degraded, got \"timeuot\" (did you mean "
                             "\"timeout\"?)")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ cache: {} }] }"),
              ElementsAre(at(9, 31, "fallback.chain[0].cache",
                             "unknown fallback kind \"cache\" (expected stale, static or "
                             "upstream)")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ static: {}, stale: {} }] }"),
              ElementsAre(at(9, 29, "fallback.chain[0]",
                             "one kind per chain entry: make each of stale, static and upstream "
                             "its own \"- \" item")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ static: { status: 99 } }] }"),
              ElementsAre(at(9, 49, "fallback.chain[0].static.status",
                             "expected an integer in [200,599], got \"99\"")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ static: { headers: { content-length: '3' } } }] }"),
              ElementsAre(at(9, 52, "fallback.chain[0].static.headers.content-length",
                             "\"content-length\" is set by levee from the body; remove it")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ static: { body: x, body_file: y } }] }"),
              ElementsAre(at(9, 61, "fallback.chain[0].static.body_file",
                             "set either \"body\" or \"body_file\", not both")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ stale: { max_stale: 0s } }] }"),
              ElementsAre(at(9, 51, "fallback.chain[0].stale.max_stale",
                             "must be greater than 0")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ stale: { max_bytes: 1KiB, max_entry_bytes: 2KiB } }] }"),
              ElementsAre(at(9, 74, "fallback.chain[0].stale.max_entry_bytes",
                             "must not exceed max_bytes (1024 bytes): no response could be "
                             "stored")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ upstream: nope }] }"),
              ElementsAre(::testing::HasSubstr("fallback.chain[0].upstream: unknown upstream \"nope\"")));
  EXPECT_THAT(fallbackErrors("{ chain: [{ upstream: db }] }"),
              ElementsAre(::testing::HasSubstr("fallback.chain[0].upstream")));
}

TEST(LoaderFallbackTest, BodyFileIsReadAtLoadTimeRelativeToThePolicy) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("levee-fallback-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "sorry.html") << "<h1>back soon</h1>";
  }
  const std::string yaml = withRoute(R"(        fallback:
          chain: [{ static: { status: 503, body_file: sorry.html } }]
)");
  auto p = loadPolicyString(yaml, (dir / "policy.yaml").string());
  ASSERT_TRUE(p.has_value()) << formatErrors(p.error());
  EXPECT_EQ("<h1>back soon</h1>", p->listeners.at(0).routes.at(0).fallback.chain.at(0).static_response.body);

  auto missing = loadPolicyString(
      withRoute("        fallback: { chain: [{ static: { body_file: missing.html } }] }\n"),
      (dir / "policy.yaml").string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(formatErrors(missing.error()), ::testing::HasSubstr("cannot read"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace levee::config
