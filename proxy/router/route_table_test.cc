#include "proxy/router/route_table.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace levee::router {
namespace {

using config::RouteMatch;
using PathKind = config::RouteMatch::PathKind;

config::Route route(std::string name, PathKind kind, std::string path) {
  config::Route r;
  r.name = std::move(name);
  r.match.path_kind = kind;
  r.match.path = std::move(path);
  r.upstream = "up";
  return r;
}

config::PolicyConstSharedPtr policyWith(std::vector<config::Route> routes) {
  auto p = std::make_shared<config::Policy>();
  config::Listener other;
  other.name = "other";
  other.routes.push_back(route("other-any", PathKind::Any, ""));
  p->listeners.push_back(other);
  config::Listener l;
  l.name = "main";
  l.routes = std::move(routes);
  p->listeners.push_back(std::move(l));
  return p;
}

http::RequestHead request(std::string method, std::string target, std::string_view host = "",
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  if (!host.empty()) {
    h.headers.add("Host", host);
  }
  for (const auto& [k, v] : headers) {
    h.headers.add(k, v);
  }
  return h;
}

// Name of the matching route, or "<none>".
std::string matchName(const RouteTable& t, const http::RequestHead& h) {
  const CompiledRoute* r = t.match(h);
  return r == nullptr ? "<none>" : r->route->name;
}

TEST(RouteTableTest, CompilesEveryRouteInOrder) {
  auto regex = route("re", PathKind::Regex, "/u/[0-9]+");
  RouteTable t(policyWith({route("a", PathKind::Exact, "/a"), regex, route("any", PathKind::Any, "")}), 1);
  ASSERT_EQ(3U, t.routes().size());
  EXPECT_EQ("main", t.listener().name);
  for (size_t i = 0; i < t.routes().size(); ++i) {
    EXPECT_EQ(i, t.routes()[i].index);
    EXPECT_EQ(&t.listener().routes[i], t.routes()[i].route);
  }
  EXPECT_FALSE(t.routes()[0].regex.has_value());
  EXPECT_TRUE(t.routes()[1].regex.has_value());
  EXPECT_FALSE(t.routes()[2].regex.has_value());
}

TEST(RouteTableTest, KeepsThePolicyAlive) {
  std::weak_ptr<const config::Policy> weak;
  std::unique_ptr<RouteTable> t;
  {
    auto p = policyWith({route("a", PathKind::Exact, "/a")});
    weak = p;
    t = std::make_unique<RouteTable>(std::move(p), 1);
  }
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ("a", matchName(*t, request("GET", "/a")));
  t.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(RouteTableTest, PathKinds) {
  RouteTable t(policyWith({
                   route("exact", PathKind::Exact, "/exact"),
                   route("prefix", PathKind::Prefix, "/api/"),
                   route("regex", PathKind::Regex, "/users/[0-9]+(/profile)?"),
               }),
               1);
  struct Case {
    std::string target;
    std::string expected;
  };
  const Case cases[] = {
      {"/exact", "exact"},
      {"/exact?x=1", "exact"},        // the query is not part of the path
      {"/exact/", "<none>"},
      {"/exac", "<none>"},
      {"/EXACT", "<none>"},           // paths are case-sensitive
      {"/api/", "prefix"},
      {"/api/v1/things?q", "prefix"},
      {"/api", "<none>"},
      {"/apiv1", "<none>"},
      {"/users/42", "regex"},
      {"/users/42/profile", "regex"},
      {"/users/42?tab=x", "regex"},
      {"/users/42/other", "<none>"},  // regex must match the whole path
      {"/x/users/42", "<none>"},
      {"/users/", "<none>"},
      {"/", "<none>"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.expected, matchName(t, request("GET", c.target, "h"))) << c.target;
  }
}

TEST(RouteTableTest, FirstMatchWins) {
  RouteTable t(policyWith({
                   route("exact-health", PathKind::Exact, "/api/health"),
                   route("api", PathKind::Prefix, "/api"),
                   route("api-v2-never", PathKind::Prefix, "/api/v2"),  // shadowed by "api"
                   route("catch-all", PathKind::Any, ""),
               }),
               1);
  EXPECT_EQ("exact-health", matchName(t, request("GET", "/api/health")));
  EXPECT_EQ("api", matchName(t, request("GET", "/api/health/deep")));
  EXPECT_EQ("api", matchName(t, request("GET", "/api/v2/x")));
  EXPECT_EQ("catch-all", matchName(t, request("GET", "/other")));
  EXPECT_EQ("catch-all", matchName(t, request("GET", "*")));
  const CompiledRoute* r = t.match(request("GET", "/api/v2/x"));
  ASSERT_NE(nullptr, r);
  EXPECT_EQ(1U, r->index);
}

TEST(RouteTableTest, NoRoutesNoMatch) {
  RouteTable t(policyWith({}), 1);
  EXPECT_EQ(nullptr, t.match(request("GET", "/")));
}

TEST(RouteTableTest, Methods) {
  auto writes = route("writes", PathKind::Prefix, "/items");
  writes.match.methods = {"POST", "PUT", "DELETE"};
  auto reads = route("reads", PathKind::Prefix, "/items");
  reads.match.methods = {"GET"};
  RouteTable t(policyWith({writes, reads}), 1);
  struct Case {
    std::string method;
    std::string expected;
  };
  const Case cases[] = {
      {"POST", "writes"}, {"PUT", "writes"},  {"DELETE", "writes"},
      {"GET", "reads"},   {"HEAD", "<none>"}, {"PATCH", "<none>"},
      {"get", "<none>"},  // methods are case-sensitive (RFC 9110 9.1)
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.expected, matchName(t, request(c.method, "/items/1"))) << c.method;
  }
}

TEST(RouteTableTest, HeadersMustAllMatchExactly) {
  auto canary = route("canary", PathKind::Any, "");
  canary.match.headers = {{"x-canary", "1"}, {"x-tenant", "acme"}};
  auto tenant = route("tenant", PathKind::Any, "");
  tenant.match.headers = {{"x-tenant", "acme"}};
  auto fallback = route("fallback", PathKind::Any, "");
  RouteTable t(policyWith({canary, tenant, fallback}), 1);
  using H = std::vector<std::pair<std::string, std::string>>;
  struct Case {
    H headers;
    std::string expected;
  };
  const Case cases[] = {
      {{{"X-Canary", "1"}, {"X-Tenant", "acme"}}, "canary"},
      {{{"x-tenant", "acme"}, {"x-canary", "1"}}, "canary"},  // any order
      {{{"X-Tenant", "acme"}}, "tenant"},
      {{{"X-Canary", "1"}}, "fallback"},
      {{{"X-Canary", "2"}, {"X-Tenant", "acme"}}, "tenant"},
      {{{"X-Tenant", "ACME"}}, "fallback"},  // values are exact
      {{{"X-Tenant", "acme "}}, "fallback"},
      {{{"X-Tenant", ""}}, "fallback"},
      {{}, "fallback"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.expected, matchName(t, request("GET", "/", "h", c.headers)));
  }
}

TEST(RouteTableTest, HeaderMatchWithEmptyValueRequiresPresence) {
  auto r = route("empty", PathKind::Any, "");
  r.match.headers = {{"x-flag", ""}};
  RouteTable t(policyWith({r}), 1);
  EXPECT_EQ("empty", matchName(t, request("GET", "/", "h", {{"X-Flag", ""}})));
  EXPECT_EQ("<none>", matchName(t, request("GET", "/", "h")));
}

TEST(RouteTableTest, Host) {
  auto api = route("api", PathKind::Any, "");
  api.match.host = "api.example.com";
  auto wild = route("wild", PathKind::Any, "");
  wild.match.host = "*.example.com";
  auto ip = route("ip", PathKind::Any, "");
  ip.match.host = "10.1.2.3";
  RouteTable t(policyWith({api, wild, ip}), 1);
  struct Case {
    std::string_view host_header;
    std::string expected;
  };
  const Case cases[] = {
      {"api.example.com", "api"},
      {"API.Example.COM", "api"},
      {"api.example.com:8080", "api"},   // the port in Host is ignored
      {"www.example.com", "wild"},
      {"a.b.example.com:443", "wild"},
      {"WWW.EXAMPLE.COM", "wild"},
      {"example.com", "<none>"},         // the wildcard needs a label before the suffix
      {"badexample.com", "<none>"},
      {"example.com.evil", "<none>"},
      {"10.1.2.3:80", "ip"},
      {"10.1.2.3", "ip"},
      {"", "<none>"},                    // no Host header
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.expected, matchName(t, request("GET", "/", c.host_header))) << c.host_header;
  }
}

TEST(RouteTableTest, AllConditionsCombine) {
  auto r = route("full", PathKind::Prefix, "/v1/");
  r.match.methods = {"POST"};
  r.match.host = "*.svc.local";
  r.match.headers = {{"content-type", "application/json"}};
  auto fallback = route("fallback", PathKind::Any, "");
  RouteTable t(policyWith({r, fallback}), 1);
  const std::vector<std::pair<std::string, std::string>> json = {{"Content-Type", "application/json"}};
  EXPECT_EQ("full", matchName(t, request("POST", "/v1/x", "a.svc.local:8080", json)));
  EXPECT_EQ("fallback", matchName(t, request("GET", "/v1/x", "a.svc.local", json)));
  EXPECT_EQ("fallback", matchName(t, request("POST", "/v2/x", "a.svc.local", json)));
  EXPECT_EQ("fallback", matchName(t, request("POST", "/v1/x", "a.svc.remote", json)));
  EXPECT_EQ("fallback", matchName(t, request("POST", "/v1/x", "a.svc.local")));
}

TEST(RouteTableTest, ListenerIndexSelectsTheRoutes) {
  auto p = policyWith({route("main-exact", PathKind::Exact, "/x")});
  RouteTable other(p, 0);
  RouteTable main_table(p, 1);
  EXPECT_EQ("other-any", matchName(other, request("GET", "/x")));
  EXPECT_EQ("main-exact", matchName(main_table, request("GET", "/x")));
  EXPECT_EQ("<none>", matchName(main_table, request("GET", "/y")));
}

TEST(HostMatchesTest, Table) {
  struct Case {
    std::string_view pattern, host;
    bool match;
  };
  const Case cases[] = {
      {"example.com", "example.com", true},
      {"example.com", "EXAMPLE.com", true},
      {"Example.com", "example.COM", true},
      {"example.com", "www.example.com", false},
      {"example.com", "example.co", false},
      {"example.com", "", false},
      {"*.example.com", "a.example.com", true},
      {"*.example.com", "A.EXAMPLE.COM", true},
      {"*.example.com", "a.b.example.com", true},
      {"*.example.com", "example.com", false},
      {"*.example.com", ".example.com", false},
      {"*.example.com", "aexample.com", false},
      {"*.example.com", "example.com.evil", false},
      {"*.example.com", "", false},
      {"*.", "a.", false},  // not a wildcard (no suffix): compared literally
      {"*.", "*.", true},
      {"", "", true},
      {"", "a", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.match, hostMatches(c.pattern, c.host)) << c.pattern << " vs " << c.host;
  }
}

}  // namespace
}  // namespace levee::router
