#include "config/loader.h"
#include "config/loader_test_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/loader_context.h"

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test::errorsOf;
using test::load;

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  return h;
}

constexpr std::string_view kMinimal = R"(version: 1
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
)";

constexpr std::string_view kFull = R"(version: 1
service: orders.v2
admin: { address: 127.0.0.1:15100, token_file: /etc/levee/token }
probes: { address: 0.0.0.0:15121 }
listeners:
  - name: inbound
    address: 0.0.0.0:15006
    protocol: http
    trust_forwarded: true
    limits:
      max_header_bytes: 32KiB
      max_headers: 50
      header_timeout: 5s
      max_body_bytes: 1MB
      idle_timeout: 2m
    routes:
      - name: orders-read
        match:
          prefix: /api/v1/orders
          methods: [get, HEAD]
          headers: { X-Canary: "1" }
          host: "*.Example.com"
        upstream: app
        tier: noncore
        timeout: 1.5s
      - name: exact
        match: { path: /healthz }
        upstream: app
      - name: re
        match: { regex: "^/v[0-9]+/.*$" }
        upstream: app
      - name: any
        upstream: app
  - name: postgres
    address: "[::1]:5432"
    protocol: tcp
    upstream: pg
upstreams:
  app:
    endpoints:
      - { address: 127.0.0.1:8080, priority: 0, weight: 3 }
      - { address: app.secondary.svc:8080, priority: 1 }
    protocol: http1
    connect_timeout: 250ms
    idle_timeout: 30s
    load_balancer: least_request
    limits: { max_connections: 10, max_pending: 20, max_requests: 30 }
    dns_refresh: 1m
  pg:
    protocol: tcp
    endpoints:
      - address: 10.0.0.5:5432
metrics:
  latency_buckets: [0.01, 0.1, 1]
access_log: { path: /var/log/levee.json, format: json }
drain: { delay: 3s, grace: 20s }
)";

TEST(LoaderTest, FullPolicyFillsEveryField) {
  const Policy p = load(kFull);
  EXPECT_EQ(1, p.version);
  EXPECT_EQ("orders.v2", p.service);
  EXPECT_EQ("p.yaml", p.source_file);
  EXPECT_EQ(fnv1a(kFull), p.content_hash);
  EXPECT_EQ("127.0.0.1:15100", p.admin.address.toString());
  EXPECT_EQ("/etc/levee/token", p.admin.token_file);
  EXPECT_EQ("0.0.0.0:15121", p.probes.address.toString());

  ASSERT_EQ(2u, p.listeners.size());
  const Listener& in = p.listeners[0];
  EXPECT_EQ("inbound", in.name);
  EXPECT_EQ("0.0.0.0:15006", in.address.toString());
  EXPECT_EQ(ListenerProtocol::Http, in.protocol);
  EXPECT_TRUE(in.trust_forwarded);
  EXPECT_EQ(32u * 1024, in.limits.max_header_bytes);
  EXPECT_EQ(50u, in.limits.max_headers);
  EXPECT_EQ(milliseconds(5000), in.limits.header_timeout);
  EXPECT_EQ(1'000'000u, in.limits.max_body_bytes);
  EXPECT_EQ(milliseconds(120000), in.limits.idle_timeout);
  ASSERT_EQ(4u, in.routes.size());
  const Route& r0 = in.routes[0];
  EXPECT_EQ("orders-read", r0.name);
  EXPECT_EQ(RouteMatch::PathKind::Prefix, r0.match.path_kind);
  EXPECT_EQ("/api/v1/orders", r0.match.path);
  EXPECT_THAT(r0.match.methods, ElementsAre("GET", "HEAD"));
  ASSERT_EQ(1u, r0.match.headers.size());
  EXPECT_EQ("x-canary", r0.match.headers[0].name);
  EXPECT_EQ("1", r0.match.headers[0].value);
  EXPECT_EQ("*.example.com", r0.match.host);
  EXPECT_EQ("app", r0.upstream);
  EXPECT_EQ(RouteTier::NonCore, r0.tier);
  EXPECT_EQ(milliseconds(1500), r0.timeout);
  EXPECT_EQ(RouteMatch::PathKind::Exact, in.routes[1].match.path_kind);
  EXPECT_EQ("/healthz", in.routes[1].match.path);
  EXPECT_EQ(RouteTier::Core, in.routes[1].tier);
  EXPECT_EQ(milliseconds(0), in.routes[1].timeout);
  EXPECT_EQ(RouteMatch::PathKind::Regex, in.routes[2].match.path_kind);
  EXPECT_EQ("^/v[0-9]+/.*$", in.routes[2].match.path);
  EXPECT_EQ(RouteMatch::PathKind::Any, in.routes[3].match.path_kind);

  const Listener& pg = p.listeners[1];
  EXPECT_EQ(ListenerProtocol::Tcp, pg.protocol);
  EXPECT_EQ("[::1]:5432", pg.address.toString());
  EXPECT_EQ("pg", pg.upstream);
  EXPECT_TRUE(pg.routes.empty());

  ASSERT_EQ(2u, p.upstreams.size());
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ("app", app.name);
  ASSERT_EQ(2u, app.endpoints.size());
  EXPECT_EQ("127.0.0.1:8080", app.endpoints[0].address.toString());
  EXPECT_TRUE(app.endpoints[0].address.is_ip);
  EXPECT_EQ(0u, app.endpoints[0].priority);
  EXPECT_EQ(3u, app.endpoints[0].weight);
  EXPECT_EQ("app.secondary.svc", app.endpoints[1].address.host);
  EXPECT_FALSE(app.endpoints[1].address.is_ip);
  EXPECT_EQ(1u, app.endpoints[1].priority);
  EXPECT_EQ(1u, app.endpoints[1].weight);
  EXPECT_EQ(UpstreamProtocol::Http1, app.protocol);
  EXPECT_EQ(milliseconds(250), app.connect_timeout);
  EXPECT_EQ(milliseconds(30000), app.idle_timeout);
  EXPECT_EQ(LoadBalancerKind::LeastRequest, app.load_balancer);
  EXPECT_EQ(10u, app.limits.max_connections);
  EXPECT_EQ(20u, app.limits.max_pending);
  EXPECT_EQ(30u, app.limits.max_requests);
  EXPECT_EQ(milliseconds(60000), app.dns_refresh);
  EXPECT_EQ(UpstreamProtocol::Tcp, p.upstreams.at("pg").protocol);

  EXPECT_THAT(p.metrics.latency_buckets, ElementsAre(0.01, 0.1, 1.0));
  EXPECT_EQ("/var/log/levee.json", p.access_log.path);
  EXPECT_EQ("json", p.access_log.format);
  EXPECT_EQ(milliseconds(3000), p.drain.delay);
  EXPECT_EQ(milliseconds(20000), p.drain.grace);
}

TEST(LoaderTest, MinimalPolicyUsesDefaults) {
  const Policy p = load(kMinimal);
  const Policy defaults;
  EXPECT_EQ("svc", p.service);
  EXPECT_EQ("127.0.0.1:15000", p.admin.address.toString());
  EXPECT_TRUE(p.admin.token_file.empty());
  EXPECT_EQ("0.0.0.0:15021", p.probes.address.toString());
  const Listener& in = p.listeners.at(0);
  EXPECT_EQ(ListenerProtocol::Http, in.protocol);
  EXPECT_FALSE(in.trust_forwarded);
  EXPECT_EQ(HttpLimits{}.max_header_bytes, in.limits.max_header_bytes);
  EXPECT_EQ(HttpLimits{}.idle_timeout, in.limits.idle_timeout);
  EXPECT_EQ(RouteMatch::PathKind::Any, in.routes.at(0).match.path_kind);
  const Upstream& app = p.upstreams.at("app");
  EXPECT_EQ(LoadBalancerKind::RoundRobin, app.load_balancer);
  EXPECT_EQ(milliseconds(1000), app.connect_timeout);
  EXPECT_EQ(1024u, app.limits.max_connections);
  EXPECT_EQ(defaults.metrics.latency_buckets, p.metrics.latency_buckets);
  EXPECT_EQ("stdout", p.access_log.path);
  EXPECT_EQ(milliseconds(25000), p.drain.grace);
  EXPECT_EQ(fnv1a(kMinimal), p.content_hash);
}

TEST(LoaderTest, FormatErrorsOneLinePerError) {
  const Errors errors{Error{"bad", "p.yaml", 3, 7, "listeners[0].name"},
                      Error{"worse", "p.yaml", 9, 1, ""}};
  EXPECT_EQ("p.yaml:3:7: listeners[0].name: bad\np.yaml:9:1: worse\n", formatErrors(errors));
}

TEST(LoaderTest, YamlSyntaxErrorHasLocation) {
  EXPECT_THAT(errorsOf("version: 1\nservice: [a, b\n"),
              ElementsAre(HasSubstr("p.yaml:3:1: YAML syntax error: ")));
  EXPECT_THAT(errorsOf("version: 1\n  service: x\n"),
              ElementsAre("p.yaml:2:10: YAML syntax error: illegal map value"));
  EXPECT_THAT(errorsOf("version: 1\nlisteners:\n\t- name: x\n"),
              ElementsAre("p.yaml:3:2: YAML syntax error: illegal block entry (tabs are not "
                          "allowed in YAML indentation; use spaces)"));
  EXPECT_THAT(errorsOf("a: 1\n---\nb: 2\n"),
              ElementsAre("p.yaml:3:1: expected a single YAML document, found 2"));
}

TEST(LoaderTest, EmptyOrNonMappingDocument) {
  EXPECT_THAT(errorsOf(""), ElementsAre("p.yaml:1:1: the policy is empty (expected at least "
                                        "\"version\", \"service\" and \"listeners\")"));
  EXPECT_THAT(errorsOf("- a\n"), ElementsAre("p.yaml:1:1: expected a mapping, got a sequence"));
}

TEST(LoaderTest, MissingRequiredTopLevelKeys) {
  EXPECT_THAT(errorsOf("admin: { address: 127.0.0.1:15000 }\n"),
              ElementsAre("p.yaml:1:1: version: missing required key \"version\"",
                          "p.yaml:1:1: service: missing required key \"service\"",
                          "p.yaml:1:1: listeners: missing required key \"listeners\""));
}

TEST(LoaderTest, UnknownKeyGetsDidYouMeanHint) {
  std::string yaml(kMinimal);
  yaml.replace(yaml.find("        upstream: app"), 0, "        timout: 3s\n");
  EXPECT_THAT(errorsOf(yaml),
              ElementsAre("p.yaml:8:9: listeners[0].routes[0].timout: unknown key \"timout\" "
                          "(did you mean \"timeout\"?)"));
}

TEST(LoaderTest, MisspeltNotYetSupportedKeyIsStillHinted) {
  std::string yaml(kMinimal);
  yaml.replace(yaml.find("        upstream: app"), 0, "        fallbak: {}\n");
  EXPECT_THAT(errorsOf(yaml),
              ElementsAre("p.yaml:8:9: listeners[0].routes[0].fallbak: unknown key \"fallbak\" "
                          "(did you mean \"fallback\"?)"));
}

TEST(LoaderTest, UnknownKeyWithoutCloseMatchListsAllowedKeys) {
  EXPECT_THAT(errorsOf(std::string(kMinimal) + "drain: { grace: 1s, zzz: 1 }\n"),
              ElementsAre("p.yaml:13:21: drain.zzz: unknown key \"zzz\" (expected one of: delay, "
                          "grace)"));
}

TEST(LoaderTest, DuplicateKey) {
  EXPECT_THAT(errorsOf(std::string(kMinimal) + "service: again\n"),
              ElementsAre("p.yaml:13:1: service: duplicate key \"service\" (first defined at line "
                          "2)"));
}

TEST(LoaderTest, VersionAndService) {
  EXPECT_THAT(errorsOf("version: 2\nservice: a b\nlisteners: []\n"),
              ElementsAre("p.yaml:1:10: version: unsupported policy version 2 (this build reads "
                          "version 1)",
                          "p.yaml:2:10: service: must match [a-zA-Z0-9_.-]+ (it is a label on "
                          "every metric), got \"a b\"",
                          "p.yaml:3:12: listeners: at least one listener is required"));
  EXPECT_THAT(errorsOf("version: one\nservice:\nlisteners: {}\n"),
              ElementsAre("p.yaml:1:10: version: expected an integer >= 0, got \"one\"",
                          "p.yaml:2:1: service: expected a string, got null",
                          "p.yaml:3:12: listeners: expected a sequence, got a mapping"));
}

// One YAML document with one mistake per line, reported all at once in document order.
TEST(LoaderTest, ReportsEverySchemaErrorInOnePass) {
  const std::string_view yaml = R"(version: 1
service: svc
admin: { address: localhost:15000 }
listeners:
  - name: in
    address: 127.0.0.1:99999
    limits: { max_headers: 0, max_header_bytes: 0, header_timeout: 10, max_body_bytes: 1XB }
    trust_forwarded: yes
    routes:
      - name: r
        match: { prefix: api, regex: "(" , methods: ["G T"], headers: { "bad name": x }, host: "a:1" }
        upstream: app
        tier: gold
        timeout: [1s]
      - name: r
        upstream: app
upstreams:
  app:
    endpoints:
      - { address: 127.0.0.1:8080, weight: 0, priority: -1 }
      - { address: 127.0.0.1:8080 }
    protocol: grpc
    load_balancer: round_robbin
    limits: { max_connections: 0, max_pending: lots }
    connect_timeout: 1
metrics: { latency_buckets: [0.1, 0.1, -1, x] }
access_log: { path: "", format: text }
drain: { delay: 30s, grace: 5s }
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:3:19: admin.address: invalid address \"localhost:15000\": \"localhost\" is not "
          "an IP address (DNS names are allowed only for upstream endpoints; use e.g. "
          "\"127.0.0.1\" or \"0.0.0.0\")",
          "p.yaml:6:14: listeners[0].address: invalid address \"127.0.0.1:99999\": port must be "
          "an integer in [1,65535], got \"99999\"",
          "p.yaml:7:28: listeners[0].limits.max_headers: expected an integer >= 1, got \"0\"",
          "p.yaml:7:49: listeners[0].limits.max_header_bytes: must be greater than 0",
          "p.yaml:7:68: listeners[0].limits.header_timeout: invalid duration \"10\": missing "
          "unit (write \"10s\" or \"10ms\")",
          "p.yaml:7:88: listeners[0].limits.max_body_bytes: invalid size \"1XB\": unknown unit "
          "\"XB\" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
          "p.yaml:8:22: listeners[0].trust_forwarded: expected true or false, got \"yes\"",
          "p.yaml:11:26: listeners[0].routes[0].match.prefix: must start with \"/\", got \"api\"",
          "p.yaml:11:38: listeners[0].routes[0].match.regex: at most one of \"path\", \"prefix\" "
          "and \"regex\" may be set (\"prefix\" is already set)",
          "p.yaml:11:54: listeners[0].routes[0].match.methods[0]: invalid HTTP method \"G T\"",
          "p.yaml:11:73: listeners[0].routes[0].match.headers.bad name: invalid header name "
          "\"bad name\"",
          "p.yaml:11:96: listeners[0].routes[0].match.host: must not include a port, got \"a:1\"",
          "p.yaml:13:15: listeners[0].routes[0].tier: expected one of core, noncore, got \"gold\"",
          "p.yaml:14:18: listeners[0].routes[0].timeout: expected a duration (e.g. \"3s\"), got "
          "a sequence",
          "p.yaml:15:15: listeners[0].routes[1].name: duplicate route name \"r\" (first used at "
          "listeners[0].routes[0])",
          "p.yaml:20:44: upstreams.app.endpoints[0].weight: expected an integer in [1,1000], got "
          "\"0\"",
          "p.yaml:20:57: upstreams.app.endpoints[0].priority: expected an integer >= 0, got "
          "\"-1\"",
          "p.yaml:21:20: upstreams.app.endpoints[1].address: duplicate endpoint "
          "\"127.0.0.1:8080\" (first listed at upstreams.app.endpoints[0])",
          "p.yaml:22:15: upstreams.app.protocol: expected one of http1, tcp, got \"grpc\"",
          "p.yaml:23:20: upstreams.app.load_balancer: expected one of round_robin, "
          "least_request, random, hash, got \"round_robbin\" (did you mean \"round_robin\"?)",
          "p.yaml:24:32: upstreams.app.limits.max_connections: expected an integer >= 1, got "
          "\"0\"",
          "p.yaml:24:48: upstreams.app.limits.max_pending: expected an integer >= 1, got "
          "\"lots\"",
          "p.yaml:25:22: upstreams.app.connect_timeout: invalid duration \"1\": missing unit "
          "(write \"1s\" or \"1ms\")",
          "p.yaml:26:35: metrics.latency_buckets[1]: bucket bounds must be strictly increasing, "
          "got 0.1 after 0.1",
          "p.yaml:26:40: metrics.latency_buckets[2]: bucket bounds must be positive (seconds), "
          "got -1",
          "p.yaml:26:44: metrics.latency_buckets[3]: expected a number, got \"x\"",
          "p.yaml:27:21: access_log.path: must not be empty",
          "p.yaml:27:33: access_log.format: expected one of json, got \"text\"",
          "p.yaml:28:17: drain.delay: the drain delay (30000ms) must not exceed the grace period "
          "(5000ms)"));
}

TEST(LoaderTest, InvalidRegex) {
  std::string yaml(kMinimal);
  yaml.replace(yaml.find("        upstream: app"), 0, "        match: { regex: \"([a-z]\" }\n");
  EXPECT_THAT(errorsOf(yaml),
              ElementsAre(HasSubstr("p.yaml:8:25: listeners[0].routes[0].match.regex: invalid "
                                    "regex \"([a-z]\": ")));
}

TEST(LoaderTest, RouteMatchDetails) {
  const std::string_view yaml = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - match: { path: healthz, methods: [], headers: { X-A: "1", x-a: "2", x-b: [1] } }
      - name: r2
        match: { host: "a.*.com" }
        upstream: app
      - name: r3
        match: [ /x ]
        upstream: app
upstreams:
  app:
    endpoints:
      - address: 127.0.0.1:8080
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:7:9: listeners[0].routes[0].name: missing required key \"name\"",
          "p.yaml:7:9: listeners[0].routes[0].upstream: missing required key \"upstream\"",
          "p.yaml:7:24: listeners[0].routes[0].match.path: must start with \"/\", got "
          "\"healthz\"",
          "p.yaml:7:42: listeners[0].routes[0].match.methods: must not be empty (omit "
          "\"methods\" to match any method)",
          "p.yaml:7:67: listeners[0].routes[0].match.headers.x-a: duplicate header \"x-a\" "
          "(header names are case-insensitive)",
          "p.yaml:7:82: listeners[0].routes[0].match.headers.x-b: expected the exact header value "
          "as a string, got a sequence",
          "p.yaml:9:24: listeners[0].routes[1].match.host: invalid host \"a.*.com\" (expected a "
          "host name, optionally with a leading \"*.\" wildcard)",
          "p.yaml:12:16: listeners[0].routes[2].match: expected a mapping, got a sequence"));
}

TEST(LoaderTest, ListenerProtocolRules) {
  const std::string_view yaml = R"(version: 1
service: svc
listeners:
  - name: web
    address: 127.0.0.1:1001
    upstream: app
  - name: web2
    address: 127.0.0.1:1002
    routes: []
  - name: db
    address: 127.0.0.1:1003
    protocol: tcp
    routes: []
    limits: { max_headers: 10 }
    trust_forwarded: true
  - name: db2
    address: 127.0.0.1:1004
    protocol: udp
upstreams:
  app:
    endpoints:
      - address: 127.0.0.1:8080
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:4:5: listeners[0].routes: missing required key \"routes\"",
          "p.yaml:6:15: listeners[0].upstream: an http listener forwards through \"routes\", not "
          "\"upstream\" (\"upstream\" is for protocol: tcp)",
          "p.yaml:9:13: listeners[1].routes: an http listener needs at least one route",
          "p.yaml:10:5: listeners[2].upstream: missing required key \"upstream\"",
          "p.yaml:13:13: listeners[2].routes: \"routes\" applies to http listeners only (this "
          "listener is tcp)",
          "p.yaml:14:13: listeners[2].limits: \"limits\" applies to http listeners only (this "
          "listener is tcp)",
          "p.yaml:15:22: listeners[2].trust_forwarded: \"trust_forwarded\" applies to http "
          "listeners only (this listener is tcp)",
          "p.yaml:18:15: listeners[3].protocol: expected one of http, tcp, got \"udp\" (did you "
          "mean \"tcp\"?)"));
}

TEST(LoaderTest, ListenerDirection) {
  auto ok = load(R"(version: 1
service: svc
listeners:
  - { name: in, address: 127.0.0.1:1001, routes: [ { name: r, upstream: app } ] }
  - { name: out, address: 127.0.0.1:1002, direction: outbound, routes: [ { name: r, upstream: app } ] }
  - { name: db, address: 127.0.0.1:1003, protocol: tcp, direction: inbound, upstream: pg }
upstreams:
  app: { endpoints: [ { address: 127.0.0.1:8080 } ] }
  pg: { protocol: tcp, endpoints: [ { address: 127.0.0.1:5432 } ] }
)");
  ASSERT_EQ(3u, ok.listeners.size());
  EXPECT_EQ(ListenerDirection::Inbound, ok.listeners[0].direction);  // the default
  EXPECT_EQ(ListenerDirection::Outbound, ok.listeners[1].direction);
  EXPECT_EQ(ListenerDirection::Inbound, ok.listeners[2].direction);
  EXPECT_THAT(errorsOf(R"(version: 1
service: svc
listeners:
  - { name: in, address: 127.0.0.1:1001, direction: egress, routes: [ { name: r, upstream: app } ] }
upstreams:
  app: { endpoints: [ { address: 127.0.0.1:8080 } ] }
)"),
              ElementsAre("p.yaml:4:53: listeners[0].direction: expected one of inbound, outbound, got "
                          "\"egress\""));
}

TEST(LoaderTest, ListenerNamesAndAddresses) {
  const std::string_view yaml = R"(version: 1
service: svc
probes: { address: 127.0.0.1:15021 }
listeners:
  - name: a
    address: 0.0.0.0:8000
    routes: [ { name: r, upstream: app } ]
  - name: a
    address: 127.0.0.1:8000
    routes: [ { name: r, upstream: app } ]
  - name: ""
    address: app.local:8001
    routes: [ { name: r, upstream: app } ]
  - address: 127.0.0.1:15021
    routes: [ { name: r, upstream: app } ]
  - name: e
    address: 127.0.0.1:15000
    routes: [ { name: r, upstream: app } ]
upstreams:
  app:
    endpoints:
      - address: 127.0.0.1:8080
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:8:11: listeners[1].name: duplicate listener name \"a\" (first used at "
          "listeners[0])",
          "p.yaml:11:11: listeners[2].name: must not be empty",
          "p.yaml:12:14: listeners[2].address: invalid address \"app.local:8001\": "
          "\"app.local\" is not an IP address (DNS names are allowed only for upstream "
          "endpoints; use e.g. \"127.0.0.1\" or \"0.0.0.0\")",
          "p.yaml:14:5: listeners[3].name: missing required key \"name\"",
          // Cross-validation, after the schema errors.
          "p.yaml:9:14: listeners[1].address: address 127.0.0.1:8000 conflicts with 0.0.0.0:8000 "
          "of listener \"a\" at line 6",
          "p.yaml:14:14: listeners[3].address: address 127.0.0.1:15021 conflicts with "
          "127.0.0.1:15021 of probes at line 3",
          "p.yaml:17:14: listeners[4].address: address 127.0.0.1:15000 conflicts with "
          "127.0.0.1:15000 of admin (default address)"));
}

TEST(LoaderTest, DanglingUpstreamsAndProtocolMismatch) {
  const std::string_view yaml = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - name: a
        upstream: ap
      - name: b
        upstream: pg
  - name: db
    address: 127.0.0.1:5432
    protocol: tcp
    upstream: app
upstreams:
  app:
    endpoints:
      - address: 127.0.0.1:8080
  pg:
    protocol: tcp
    endpoints: []
)";
  EXPECT_THAT(
      errorsOf(yaml),
      ElementsAre(
          "p.yaml:21:16: upstreams.pg.endpoints: an upstream needs at least one endpoint",
          "p.yaml:8:19: listeners[0].routes[0].upstream: unknown upstream \"ap\" (known "
          "upstreams: \"app\", \"pg\")",
          "p.yaml:10:19: listeners[0].routes[1].upstream: upstream \"pg\" has protocol tcp, but "
          "a route needs an upstream with protocol: http1",
          "p.yaml:14:15: listeners[1].upstream: upstream \"app\" has protocol http1, but a tcp "
          "listener needs an upstream with protocol: tcp"));
}

TEST(LoaderTest, NoUpstreamsDefined) {
  std::string yaml(kMinimal);
  yaml.resize(yaml.find("upstreams:"));
  EXPECT_THAT(errorsOf(yaml), ElementsAre("p.yaml:8:19: listeners[0].routes[0].upstream: unknown "
                                          "upstream \"app\" (no upstreams are defined)"));
  EXPECT_THAT(errorsOf(yaml + "upstreams: [app]\n"),
              ElementsAre("p.yaml:9:12: upstreams: expected a mapping of upstream name to "
                          "upstream, got a sequence"));
  EXPECT_THAT(errorsOf(yaml + "upstreams:\n  app: { protocol: http1 }\n"),
              ElementsAre("p.yaml:10:8: upstreams.app.endpoints: missing required key "
                          "\"endpoints\""));
}

// Every entry of the not-supported-yet table is refused by name, at the key, with its path.
TEST(LoaderTest, NotSupportedYetKeysAreRejected) {
  for (const detail::NotSupportedYet& n : detail::notSupportedYet()) {
    const std::string key(n.key);
    const std::string value = n.value.empty() ? "{}" : std::string(n.value);
    std::string yaml(kMinimal);
    std::string path;
    int line = 0;
    int column = 0;
    const auto insertAfter = [&](std::string_view anchor, const std::string& text) {
      const size_t at = yaml.find(anchor);
      ASSERT_NE(std::string::npos, at) << anchor;
      yaml.insert(at + anchor.size(), text);
    };
    if (n.section == "policy") {
      yaml += key + ": " + value + "\n";
      path = key, line = 13, column = 1;
    } else if (n.section == "listener") {
      insertAfter("127.0.0.1:15006\n", "    " + key + ": " + value + "\n");
      path = "listeners[0]." + key, line = 6, column = 5;
    } else if (n.section == "route") {
      insertAfter("upstream: app\n", "        " + key + ": " + value + "\n");
      path = "listeners[0].routes[0]." + key, line = 9, column = 9;
    } else if (n.section == "upstream") {
      insertAfter("  app:\n", "    " + key + ": " + value + "\n");
      path = "upstreams.app." + key, line = 11, column = 5;
    } else if (n.section == "lease") {
      yaml += "companion:\n  failover:\n    postgres:\n      members: [ { name: a, dsn: "
              "\"host=127.0.0.1\" }, { name: b, dsn: \"host=127.0.0.2\" } ]\n      lease:\n";
      line = 18, column = 9;
      if (key != "backend") {
        yaml += "        backend: none\n";
        ++line;
      }
      yaml += "        " + key + ": " + value + "\n";
      path = "companion.failover.postgres.lease." + key;
    } else if (n.section == "backup") {
      yaml += "companion:\n  backup:\n    dir: /b\n    targets: { files: { paths: [/x] } }\n    " + key +
              ": " + value + "\n";
      path = "companion.backup." + key, line = 17, column = 5;
    } else if (n.section == "metrics" || n.section == "probes" || n.section == "companion") {
      yaml += std::string(n.section) + ":\n  " + key + ": " + value + "\n";
      path = std::string(n.section) + "." + key, line = 14, column = 3;
    } else {
      ADD_FAILURE() << "no test snippet for section " << n.section;
      continue;
    }
    if (!n.value.empty()) {
      column += static_cast<int>(key.size()) + 2;  // the error points at the value
    }
    const std::string expected_message =
        n.value.empty() ? "\"" + key + "\" is not supported yet by this build"
                        : key + " \"" + value + "\" is not supported yet by this build";
    EXPECT_THAT(errorsOf(yaml), ElementsAre(HasSubstr("p.yaml:" + std::to_string(line) + ":" +
                                                      std::to_string(column) + ": " + path + ": " +
                                                      expected_message)))
        << yaml;
  }
}

TEST(LoaderTest, LoadsPolicyFileWithSourceAndHash) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "levee_loader";
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "policy.yaml").string();
  {
    std::ofstream out(file, std::ios::binary);
    out << kMinimal;
  }
  auto policy = loadPolicyFile(file);
  ASSERT_TRUE(policy.has_value()) << formatErrors(policy.error());
  EXPECT_EQ(file, policy->source_file);
  EXPECT_EQ(fnv1a(kMinimal), policy->content_hash);

  {
    std::ofstream out(file, std::ios::binary);
    out << "version: 1\nservice: x\nlistener: []\n";
  }
  auto bad = loadPolicyFile(file);
  ASSERT_FALSE(bad.has_value());
  // Document order: the missing key is reported at the start of the mapping.
  EXPECT_EQ(file + ":1:1: listeners: missing required key \"listeners\"\n" + file +
                ":3:1: listener: unknown key \"listener\" (did you mean \"listeners\"?)\n",
            formatErrors(bad.error()));
  std::filesystem::remove_all(dir);
}

TEST(LoaderTest, MissingFile) {
  auto policy = loadPolicyFile("/nonexistent/levee.yaml");
  ASSERT_FALSE(policy.has_value());
  EXPECT_EQ("/nonexistent/levee.yaml: cannot read policy file: No such file or directory\n",
            formatErrors(policy.error()));
}

TEST(LoaderTest, QuickstartExampleLoads) {
  const std::string file =
      (std::filesystem::path(__FILE__).parent_path() / "examples" / "quickstart.yaml").string();
  auto loaded = loadPolicyFile(file);
  ASSERT_TRUE(loaded.has_value()) << formatErrors(loaded.error());
  const Policy& p = *loaded;
  EXPECT_EQ("quickstart", p.service);
  EXPECT_EQ("127.0.0.1:15000", p.admin.address.toString());
  EXPECT_TRUE(p.admin.token_file.empty());
  EXPECT_EQ("127.0.0.1:15021", p.probes.address.toString());
  ASSERT_EQ(1u, p.listeners.size());
  const Listener& in = p.listeners[0];
  EXPECT_EQ("inbound", in.name);
  EXPECT_EQ("127.0.0.1:15006", in.address.toString());
  ASSERT_EQ(3u, in.routes.size());
  EXPECT_EQ("api", in.routes[0].name);
  EXPECT_EQ(RouteMatch::PathKind::Prefix, in.routes[0].match.path_kind);
  EXPECT_EQ("/api", in.routes[0].match.path);
  EXPECT_EQ(milliseconds(5000), in.routes[0].timeout);
  EXPECT_EQ("health", in.routes[1].name);
  EXPECT_EQ(RouteMatch::PathKind::Exact, in.routes[1].match.path_kind);
  EXPECT_EQ("/healthz", in.routes[1].match.path);
  EXPECT_EQ("default", in.routes[2].name);
  EXPECT_EQ("/", in.routes[2].match.path);
  for (const Route& r : in.routes) {
    EXPECT_EQ("demo", r.upstream);
  }
  const Upstream& demo = p.upstreams.at("demo");
  ASSERT_EQ(1u, demo.endpoints.size());
  EXPECT_EQ("127.0.0.1:18080", demo.endpoints[0].address.toString());
  EXPECT_EQ(LoadBalancerKind::LeastRequest, demo.load_balancer);
  EXPECT_EQ(milliseconds(1000), demo.connect_timeout);
  EXPECT_EQ("stdout", p.access_log.path);
  EXPECT_EQ("json", p.access_log.format);
}

// DESIGN.md section 5's `app` upstream, verbatim: every resilience block of the example loads.
TEST(LoaderTest, DesignUpstreamExampleLoads) {
  const Policy p = load(std::string(kMinimal.substr(0, kMinimal.find("upstreams:"))) + R"(upstreams:
  app:
    endpoints:
      - { address: 127.0.0.1:8080, priority: 0, weight: 1 }    # priority 1.. = failover groups
      - { address: app.secondary.svc:8080, priority: 1 }
    protocol: http1                          # http1 | http2 | tcp
    connect_timeout: 1s
    idle_timeout: 60s
    load_balancer: least_request             # round_robin | least_request | random | hash
    limits: { max_connections: 1024, max_pending: 1024, max_requests: 1024 }
    circuit_breaker:
      failure_on: [5xx, connect-failure, reset, timeout]
      consecutive_failures: 5
      failure_rate: { threshold_percent: 50, minimum_requests: 20, window: 10s }
      slow_call: { duration: 2s, threshold_percent: 80 }
      open_for: 30s                          # doubles on each re-open, up to max_open_for
      max_open_for: 5m
      half_open: { permitted: 3, successes_to_close: 2, max_wait: 10s }
      mode: enforce                          # enforce | shadow
    outlier_detection: { consecutive_failures: 5, interval: 10s, base_ejection: 30s, max_ejection_percent: 50 }
    health_check: { path: /healthz, interval: 5s, timeout: 1s, unhealthy_threshold: 3, healthy_threshold: 2 }
    failover: { min_healthy_percent: 70 }    # spill to the next priority below this
probes: { ready_requires: [app] }
)");
  const Upstream& app = p.upstreams.at("app");
  EXPECT_TRUE(app.circuit_breaker.enabled);
  EXPECT_EQ(5u, app.circuit_breaker.consecutive_failures);
  EXPECT_EQ(50u, app.circuit_breaker.failure_rate_threshold_percent);
  EXPECT_EQ(milliseconds(2000), app.circuit_breaker.slow_call_duration);
  EXPECT_FALSE(app.circuit_breaker.shadow);
  EXPECT_TRUE(app.outlier_detection.enabled);
  EXPECT_EQ(milliseconds(30000), app.outlier_detection.base_ejection);
  EXPECT_TRUE(app.health_check.enabled);
  EXPECT_EQ("/healthz", app.health_check.path);
  EXPECT_EQ(70u, app.failover.min_healthy_percent);
  EXPECT_THAT(p.probes.ready_requires, ElementsAre("app"));
}

// The example of docs/policy.md "Errors", kept in step with the loader.
TEST(LoaderTest, DocsErrorExample) {
  const std::string_view yaml = R"(version: 1
service: shop
listeners:
  - name: inbound
    address: 0.0.0.0:15006
    routes:
      - name: api
        match: { prefix: /api }
        upstream: ap
        timout: 3s
upstreams:
  app:
    endpoints:
      - { address: 127.0.0.1:8080, weight: 0 }
)";
  auto policy = loadPolicyString(yaml, "shop.yaml");
  ASSERT_FALSE(policy.has_value());
  EXPECT_EQ(
      "shop.yaml:10:9: listeners[0].routes[0].timout: unknown key \"timout\" (did you mean "
      "\"timeout\"?)\n"
      "shop.yaml:14:44: upstreams.app.endpoints[0].weight: expected an integer in [1,1000], got "
      "\"0\"\n"
      "shop.yaml:9:19: listeners[0].routes[0].upstream: unknown upstream \"ap\" (known "
      "upstreams: \"app\")\n",
      formatErrors(policy.error()));
}

}  // namespace
}  // namespace levee::config
