#include "proxy/admin/admin_handlers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

namespace levee::admin {
namespace {

using testing::_;
using testing::AllOf;
using testing::DoAll;
using testing::Field;
using testing::HasSubstr;
using testing::NiceMock;
using testing::Return;
using testing::SetArgReferee;
using testing::StrictMock;

class MockAdminContext : public AdminContext {
public:
  MOCK_METHOD(bool, ready, (std::string & components_json), (override));
  MOCK_METHOD(bool, started, (), (override));
  MOCK_METHOD(std::string, metricsText, (), (override));
  MOCK_METHOD(std::string, configJson, (), (override));
  MOCK_METHOD(std::string, clustersJson, (), (override));
  MOCK_METHOD(void, reload, (std::function<void(bool ok, std::string body_json)> done), (override));
  MOCK_METHOD(int, drain, (const DrainRequest& request, std::string& body_json), (override));
  MOCK_METHOD(std::string, adminToken, (), (override));
  MOCK_METHOD(void, audit, (const AdminRequest& req, int status, std::string_view detail), (override));
  MOCK_METHOD(std::string, circuitBreakersJson, (), (override));
  MOCK_METHOD(std::string, slaJson, (), (override));
  MOCK_METHOD(int, circuitBreakerAction,
              (const std::string& upstream, const std::string& action, std::string& body_json), (override));
};

// With the fault experiment endpoints (AdminContext's defaults answer 404 "not available").
class MockFaultAdminContext : public MockAdminContext {
public:
  MOCK_METHOD(std::string, faultsJson, (), (override));
  MOCK_METHOD(int, createFault, (const std::string& body, std::string& body_json), (override));
  MOCK_METHOD(int, deleteFault, (const std::string& id, std::string& body_json), (override));
};

AdminRequest req(std::string method, std::string path, std::string authorization = "", std::string body = "") {
  AdminRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authorization = std::move(authorization);
  r.body = std::move(body);
  r.peer = "127.0.0.1";
  return r;
}

// A request whose deferred answer lands in *out.
AdminRequest deferredReq(std::string method, std::string path, std::string authorization,
                         std::optional<AdminResponse>* out) {
  AdminRequest r = req(std::move(method), std::move(path), std::move(authorization));
  r.respond_later = [out](AdminResponse resp) { *out = std::move(resp); };
  return r;
}

// reload() that completes at once with (ok, body).
auto completeReload(bool ok, std::string body) {
  return [ok, body](std::function<void(bool, std::string)> done) { done(ok, body); };
}

std::string header(const AdminResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "<absent>";
}

// === Probes ===

TEST(HandleProbeTest, LiveIsAlways200) {
  StrictMock<MockAdminContext> ctx;
  for (const char* method : {"GET", "HEAD"}) {
    AdminResponse r = handleProbe(ctx, req(method, "/health/live"));
    EXPECT_EQ(200, r.status);
    EXPECT_EQ("application/json", r.content_type);
    EXPECT_EQ("{\"status\":\"live\"}\n", r.body);
  }
}

TEST(HandleProbeTest, ReadyReflectsTheContext) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, ready(_))
      .WillOnce(DoAll(SetArgReferee<0>(std::string(R"({"config":"healthy","upstreams":"healthy"})")), Return(true)))
      .WillOnce(DoAll(SetArgReferee<0>(std::string(R"({"config":"healthy","upstreams":"no_healthy_endpoint"})")),
                      Return(false)));
  AdminResponse ok = handleProbe(ctx, req("GET", "/health/ready"));
  EXPECT_EQ(200, ok.status);
  EXPECT_EQ("application/json", ok.content_type);
  EXPECT_EQ("{\"status\":\"ready\",\"components\":{\"config\":\"healthy\",\"upstreams\":\"healthy\"}}\n", ok.body);

  AdminResponse not_ready = handleProbe(ctx, req("GET", "/health/ready"));
  EXPECT_EQ(503, not_ready.status);
  EXPECT_EQ(
      "{\"status\":\"not_ready\",\"components\":{\"config\":\"healthy\",\"upstreams\":\"no_healthy_endpoint\"}}\n",
      not_ready.body);
}

TEST(HandleProbeTest, StartupReflectsTheContext) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, started()).WillOnce(Return(false)).WillOnce(Return(true));
  AdminResponse starting = handleProbe(ctx, req("GET", "/health/startup"));
  EXPECT_EQ(503, starting.status);
  EXPECT_EQ("{\"status\":\"starting\"}\n", starting.body);
  AdminResponse started = handleProbe(ctx, req("HEAD", "/health/startup"));
  EXPECT_EQ(200, started.status);
  EXPECT_EQ("{\"status\":\"started\"}\n", started.body);
}

TEST(HandleProbeTest, MetricsIsPrometheusText) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, metricsText()).WillOnce(Return("# TYPE levee_up gauge\nlevee_up 1\n"));
  AdminResponse r = handleProbe(ctx, req("GET", "/metrics"));
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("text/plain; version=0.0.4; charset=utf-8", r.content_type);
  EXPECT_EQ("# TYPE levee_up gauge\nlevee_up 1\n", r.body);
}

TEST(HandleProbeTest, UnknownPathsAre404) {
  StrictMock<MockAdminContext> ctx;
  for (const char* path : {"/", "/health", "/health/", "/health/live/", "/HEALTH/LIVE", "/metricsx", "/admin/config",
                           "/admin/reload"}) {
    AdminResponse r = handleProbe(ctx, req("GET", path));
    EXPECT_EQ(404, r.status) << path;
    EXPECT_EQ("application/json", r.content_type);
    EXPECT_EQ("{\"error\":\"not found\",\"status\":404}\n", r.body) << path;
  }
}

TEST(HandleProbeTest, WritesAre405WithAllow) {
  StrictMock<MockAdminContext> ctx;  // no context call for a refused method
  for (const char* path : {"/health/live", "/health/ready", "/health/startup", "/metrics"}) {
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
      AdminResponse r = handleProbe(ctx, req(method, path));
      EXPECT_EQ(405, r.status) << method << " " << path;
      EXPECT_EQ("GET, HEAD", header(r, "allow")) << method << " " << path;
      EXPECT_EQ("{\"error\":\"method not allowed\",\"status\":405}\n", r.body);
    }
  }
}

// === Admin ===

TEST(HandleAdminTest, ConfigAndClustersAreReads) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, configJson()).WillOnce(Return(R"({"service":"svc"})"));
  EXPECT_CALL(ctx, clustersJson()).WillOnce(Return("{\"clusters\":[]}\n"));
  AdminResponse config = handleAdmin(ctx, req("GET", "/admin/config"));
  EXPECT_EQ(200, config.status);
  EXPECT_EQ("{\"service\":\"svc\"}\n", config.body);  // newline added
  EXPECT_EQ("application/json", config.content_type);
  AdminResponse clusters = handleAdmin(ctx, req("HEAD", "/admin/clusters"));
  EXPECT_EQ(200, clusters.status);
  EXPECT_EQ("{\"clusters\":[]}\n", clusters.body);  // not doubled
}

TEST(HandleAdminTest, ReadEndpointsRefuseWrites) {
  StrictMock<MockAdminContext> ctx;
  for (const char* path : {"/admin/config", "/admin/clusters"}) {
    AdminResponse r = handleAdmin(ctx, req("POST", path, "Bearer t"));
    EXPECT_EQ(405, r.status) << path;
    EXPECT_EQ("GET, HEAD", header(r, "allow"));
  }
}

TEST(HandleAdminTest, SlaIsAReadWithoutToken) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, slaJson()).WillOnce(Return(R"({"routes":[]})"));
  AdminResponse r = handleAdmin(ctx, req("GET", "/admin/sla"));
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("{\"routes\":[]}\n", r.body);
  EXPECT_EQ("application/json", r.content_type);
  AdminResponse post = handleAdmin(ctx, req("POST", "/admin/sla", "Bearer t"));
  EXPECT_EQ(405, post.status);
  EXPECT_EQ("GET, HEAD", header(post, "allow"));
}

TEST(HandleAdminTest, MutationEndpointsRefuseReads) {
  StrictMock<MockAdminContext> ctx;
  for (const char* path : {"/admin/reload", "/admin/drain", "/admin/quit"}) {
    for (const char* method : {"GET", "HEAD", "PUT", "DELETE"}) {
      AdminResponse r = handleAdmin(ctx, req(method, path, "Bearer t"));
      EXPECT_EQ(405, r.status) << method << " " << path;
      EXPECT_EQ("POST", header(r, "allow"));
    }
  }
}

TEST(HandleAdminTest, UnknownPathsAre404) {
  StrictMock<MockAdminContext> ctx;
  for (const char* path : {"/", "/admin", "/admin/", "/admin/reload/", "/admin/unknown", "/stats"}) {
    AdminResponse r = handleAdmin(ctx, req("GET", path));
    EXPECT_EQ(404, r.status) << path;
    EXPECT_EQ("{\"error\":\"not found\",\"status\":404}\n", r.body);
  }
}

TEST(HandleAdminTest, ProbesAreServedOnTheAdminListenerToo) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, metricsText()).WillOnce(Return("m 1\n"));
  EXPECT_EQ(200, handleAdmin(ctx, req("GET", "/health/live")).status);
  AdminResponse m = handleAdmin(ctx, req("GET", "/metrics"));
  EXPECT_EQ("m 1\n", m.body);
  EXPECT_EQ("text/plain; version=0.0.4; charset=utf-8", m.content_type);
  EXPECT_EQ(404, handleAdmin(ctx, req("GET", "/health/nope")).status);
}

TEST(HandleAdminTest, NoTokenConfiguredRefusesMutationsWith403) {
  for (const char* path : {"/admin/reload", "/admin/drain", "/admin/quit", "/admin/circuit-breakers/app/open"}) {
    StrictMock<MockAdminContext> ctx;
    EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return(""));
    EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, path), 403, _));
    // Even a bearer token must not unlock mutations when none is configured.
    AdminResponse r = handleAdmin(ctx, req("POST", path, "Bearer "));
    EXPECT_EQ(403, r.status) << path;
    EXPECT_THAT(r.body, HasSubstr("\"status\":403"));
  }
}

struct AuthCase {
  std::string authorization;
  int status;
};

class ReloadAuthTest : public testing::TestWithParam<AuthCase> {};

TEST_P(ReloadAuthTest, BearerTokenIsChecked) {
  const AuthCase& c = GetParam();
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("s3cret-token"));
  if (c.status == 200) {
    EXPECT_CALL(ctx, reload(_)).WillOnce(completeReload(true, R"({"result":"reloaded"})"));
  }
  EXPECT_CALL(ctx, audit(AllOf(Field(&AdminRequest::path, "/admin/reload"),
                               Field(&AdminRequest::authorization, c.authorization)),
                         c.status, _));
  std::optional<AdminResponse> later;
  AdminResponse r = handleAdmin(ctx, deferredReq("POST", "/admin/reload", c.authorization, &later));
  if (c.status == 401) {
    EXPECT_EQ(401, r.status);
    EXPECT_FALSE(r.deferred);
    EXPECT_EQ("Bearer", header(r, "www-authenticate"));
    EXPECT_THAT(r.body, HasSubstr("\"status\":401"));
    EXPECT_FALSE(later.has_value());
  } else {
    EXPECT_TRUE(r.deferred);  // answered by the completion
    ASSERT_TRUE(later.has_value());
    EXPECT_EQ(200, later->status);
    EXPECT_EQ("{\"result\":\"reloaded\"}\n", later->body);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReloadAuthTest,
    testing::Values(AuthCase{"", 401}, AuthCase{"Bearer", 401}, AuthCase{"Bearer ", 401},
                    AuthCase{"Bearer wrong", 401}, AuthCase{"Bearer s3cret-toke", 401},
                    AuthCase{"Bearer s3cret-token2", 401}, AuthCase{"Bearer S3CRET-TOKEN", 401},
                    AuthCase{"Basic s3cret-token", 401}, AuthCase{"s3cret-token", 401},
                    AuthCase{"bearer s3cret-token", 401}, AuthCase{"Bearer  s3cret-token", 401},
                    AuthCase{"Bearer s3cret-token", 200}));

TEST(HandleAdminTest, FailedReloadIs400AndAuditedWithTheErrors) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
  EXPECT_CALL(ctx, reload(_)).WillOnce(completeReload(false, R"({"result":"failure","errors":["p.yaml:3:1: x"]})"));
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, "/admin/reload"), 400, HasSubstr("p.yaml:3:1: x")));
  std::optional<AdminResponse> later;
  AdminResponse r = handleAdmin(ctx, deferredReq("POST", "/admin/reload", "Bearer t", &later));
  EXPECT_TRUE(r.deferred);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(400, later->status);
  EXPECT_EQ("{\"result\":\"failure\",\"errors\":[\"p.yaml:3:1: x\"]}\n", later->body);
}

TEST(HandleAdminTest, DrainAndQuitStartDrainingAndAreAudited) {
  for (const char* path : {"/admin/drain", "/admin/quit"}) {
    StrictMock<MockAdminContext> ctx;
    testing::InSequence seq;
    EXPECT_CALL(ctx, adminToken()).WillOnce(Return("t"));
    bool quit = std::string_view(path) == "/admin/quit";
    EXPECT_CALL(ctx, drain(AllOf(Field(&DrainRequest::exit, quit), Field(&DrainRequest::delay, std::nullopt)), _))
        .WillOnce(DoAll(SetArgReferee<1>(std::string(R"({"before":"running","after":"draining"})")), Return(202)));
    EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, path), 202, HasSubstr("\"before\":\"running\"")));
    AdminResponse r = handleAdmin(ctx, req("POST", path, "Bearer t"));
    EXPECT_EQ(202, r.status) << path;
    EXPECT_EQ("{\"before\":\"running\",\"after\":\"draining\"}\n", r.body);
  }
}

TEST(HandleAdminTest, DrainBodyOverridesTiming) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
  EXPECT_CALL(ctx, drain(AllOf(Field(&DrainRequest::exit, true),
                               Field(&DrainRequest::delay, std::optional(std::chrono::milliseconds(0))),
                               Field(&DrainRequest::grace, std::optional(std::chrono::milliseconds(1500)))),
                         _))
      .WillOnce(Return(202));
  EXPECT_CALL(ctx, audit(_, 202, _));
  EXPECT_EQ(202, handleAdmin(ctx, req("POST", "/admin/quit", "Bearer t", R"({"delay":"0s","grace":"1.5s"})")).status);
}

TEST(HandleAdminTest, BadBodiesAre400WithAMessageAndAudited) {
  struct Case {
    const char* path;
    const char* body;
    const char* message;
  } cases[] = {
      {"/admin/drain", "delay=1s", "invalid JSON at byte 0: unexpected character"},
      {"/admin/drain", "[1]", "expected a JSON object, got array"},
      {"/admin/drain", R"({"delay":5})", "delay: expected a duration string such as \\\"5s\\\", got number"},
      {"/admin/drain", R"({"delay":"5"})", "delay: "},
      {"/admin/quit", R"({"dealy":"5s"})", "unknown key \\\"dealy\\\" (expected delay, grace)"},
      {"/admin/quit", R"({"delay":"5s","grace":"1s"})", "delay must not exceed grace"},
      {"/admin/reload", R"({"force":true})", "/admin/reload takes no parameters"},
      {"/admin/circuit-breakers/app/open", "{", "invalid JSON at byte 1: expected a string key"},
  };
  for (const auto& c : cases) {
    StrictMock<MockAdminContext> ctx;  // nothing is mutated
    EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
    EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, c.path), 400, _));
    AdminResponse r = handleAdmin(ctx, req("POST", c.path, "Bearer t", c.body));
    EXPECT_EQ(400, r.status) << c.path << " " << c.body;
    EXPECT_THAT(r.body, HasSubstr(c.message)) << c.body;
  }
}

TEST(HandleAdminTest, EmptyObjectBodyIsAccepted) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
  EXPECT_CALL(ctx, reload(_)).WillOnce(completeReload(true, "{}"));
  EXPECT_CALL(ctx, audit(_, 200, _));
  std::optional<AdminResponse> later;
  AdminRequest r = deferredReq("POST", "/admin/reload", "Bearer t", &later);
  r.body = " {} \n";
  handleAdmin(ctx, r);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(200, later->status);
}

TEST(HandleAdminTest, OversizedBodyIs413AfterAuthAndAudited) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
  AdminRequest big = req("POST", "/admin/drain", "Bearer t");
  big.body_too_large = true;
  EXPECT_CALL(ctx, audit(_, 413, HasSubstr("larger than 65536 bytes")));
  EXPECT_EQ(413, handleAdmin(ctx, big).status);
  // Unauthorized first: 401 (no hint about the body).
  big.authorization = "Bearer x";
  EXPECT_CALL(ctx, audit(_, 401, _));
  EXPECT_EQ(401, handleAdmin(ctx, big).status);
  // Reads too.
  AdminRequest read = req("GET", "/admin/config");
  read.body_too_large = true;
  EXPECT_EQ(413, handleAdmin(ctx, read).status);
}

TEST(HandleAdminTest, UnauthorizedDrainDoesNotDrain) {
  StrictMock<MockAdminContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("t"));
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, "/admin/drain"), 401, _));
  EXPECT_EQ(401, handleAdmin(ctx, req("POST", "/admin/drain", "Bearer x")).status);
}

TEST(HandleAdminTest, EveryMutationAttemptIsAuditedOnce) {
  NiceMock<MockAdminContext> ctx;
  ON_CALL(ctx, adminToken()).WillByDefault(Return("tok"));
  ON_CALL(ctx, reload(_)).WillByDefault(completeReload(true, "{}"));
  ON_CALL(ctx, drain(_, _)).WillByDefault(Return(202));
  int audits = 0;
  ON_CALL(ctx, audit(_, _, _)).WillByDefault([&audits](const AdminRequest&, int, std::string_view) { ++audits; });
  const char* auths[] = {"", "Bearer no", "Bearer tok"};
  int expected = 0;
  std::optional<AdminResponse> later;
  for (const char* path : {"/admin/reload", "/admin/drain", "/admin/quit", "/admin/circuit-breakers/app/reset"}) {
    for (const char* auth : auths) {
      handleAdmin(ctx, deferredReq("POST", path, auth, &later));
      ++expected;
      EXPECT_EQ(expected, audits) << path << " " << auth;
    }
  }
  // Reads are not audited.
  handleAdmin(ctx, req("GET", "/admin/config"));
  handleAdmin(ctx, req("GET", "/health/live"));
  EXPECT_EQ(expected, audits);
}

TEST(HandleAdminTest, FaultsRoutingAuthAndAudit) {
  StrictMock<MockFaultAdminContext> ctx;
  EXPECT_CALL(ctx, faultsJson()).WillOnce(Return(R"({"faults":[],"active":0})"));
  EXPECT_EQ(200, handleAdmin(ctx, req("GET", "/admin/faults")).status);
  EXPECT_EQ(405, handleAdmin(ctx, req("PUT", "/admin/faults")).status);
  EXPECT_EQ(405, handleAdmin(ctx, req("GET", "/admin/faults/f-1")).status);
  EXPECT_EQ(404, handleAdmin(ctx, req("DELETE", "/admin/faults/")).status);
  EXPECT_EQ(404, handleAdmin(ctx, req("DELETE", "/admin/faults/a/b")).status);
  EXPECT_EQ(404, handleAdmin(ctx, req("GET", "/admin/faultsx")).status);
  // Mutations: token first (audited either way), then the context.
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("tok"));
  EXPECT_CALL(ctx, audit(_, 401, _)).Times(2);
  EXPECT_EQ(401, handleAdmin(ctx, req("POST", "/admin/faults")).status);
  EXPECT_EQ(401, handleAdmin(ctx, req("DELETE", "/admin/faults", "Bearer nope")).status);
  AdminRequest post = req("POST", "/admin/faults", "Bearer tok");
  post.body = R"({"abort":{"percent":1,"status":503}})";
  EXPECT_CALL(ctx, createFault(post.body, _))
      .WillOnce(DoAll(SetArgReferee<1>(std::string(R"({"id":"f-1"})")), Return(201)));
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::method, "POST"), 201, _));
  AdminResponse created = handleAdmin(ctx, post);
  EXPECT_EQ(201, created.status);
  EXPECT_EQ("{\"id\":\"f-1\"}\n", created.body);
  EXPECT_CALL(ctx, deleteFault("f-1", _)).WillOnce(Return(200));
  EXPECT_CALL(ctx, deleteFault("", _)).WillOnce(Return(200));  // the kill switch
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::method, "DELETE"), 200, _)).Times(2);
  EXPECT_EQ(200, handleAdmin(ctx, req("DELETE", "/admin/faults/f-1", "Bearer tok")).status);
  EXPECT_EQ(200, handleAdmin(ctx, req("DELETE", "/admin/faults", "Bearer tok")).status);
}

// Failover routes (companion): the context's defaults answer 404 when it is not configured.
class FailoverContext : public MockAdminContext {
public:
  MOCK_METHOD(int, failoverStatus, (std::string & body_json), (override));
  MOCK_METHOD(int, failoverPromote, (const std::string& request_body, std::string& body_json),
              (override));
  MOCK_METHOD(int, failoverRoleHealth,
              (std::string_view role, std::string_view query, std::string& body_json), (override));
};

TEST(HandleFailoverTest, NotConfiguredIs404) {
  StrictMock<MockAdminContext> ctx;
  AdminResponse r = handleAdmin(ctx, req("GET", "/api/v1/failover/status"));
  EXPECT_EQ(404, r.status);
  EXPECT_THAT(r.body, HasSubstr("failover is not configured"));
  EXPECT_EQ(404, handleProbe(ctx, req("GET", "/primary")).status);
  EXPECT_EQ(404, handleProbe(ctx, req("GET", "/replica")).status);
}

TEST(HandleFailoverTest, PromoteNeedsTokenAndIsAudited) {
  StrictMock<FailoverContext> ctx;
  EXPECT_CALL(ctx, adminToken()).WillRepeatedly(Return("tok"));
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, "/api/v1/failover/promote"), 401, _));
  EXPECT_EQ(401, handleAdmin(ctx, req("POST", "/api/v1/failover/promote")).status);
  AdminRequest ok = req("POST", "/api/v1/failover/promote", "Bearer tok");
  ok.body = R"({"member":"pg-1"})";
  EXPECT_CALL(ctx, failoverPromote(R"({"member":"pg-1"})", _))
      .WillOnce(DoAll(SetArgReferee<1>(std::string(R"({"result":"promoting"})")), Return(202)));
  EXPECT_CALL(ctx, audit(Field(&AdminRequest::path, "/api/v1/failover/promote"), 202, _));
  AdminResponse r = handleAdmin(ctx, ok);
  EXPECT_EQ(202, r.status);
  EXPECT_EQ("{\"result\":\"promoting\"}\n", r.body);
  EXPECT_EQ(405, handleAdmin(ctx, req("GET", "/api/v1/failover/promote")).status);
  EXPECT_EQ(405, handleAdmin(ctx, req("POST", "/api/v1/failover/status")).status);
}

TEST(HandleFailoverTest, RoleProbesPassRoleAndQuery) {
  StrictMock<FailoverContext> ctx;
  AdminRequest r = req("GET", "/replica");
  r.query = "lag=16MB";
  EXPECT_CALL(ctx, failoverRoleHealth(std::string_view("replica"), std::string_view("lag=16MB"), _))
      .WillOnce(Return(503));
  EXPECT_EQ(503, handleProbe(ctx, r).status);
  EXPECT_CALL(ctx, failoverRoleHealth(std::string_view("primary"), std::string_view(""), _))
      .WillOnce(Return(200));
  EXPECT_EQ(200, handleProbe(ctx, req("HEAD", "/primary")).status);
  EXPECT_EQ(405, handleProbe(ctx, req("POST", "/primary")).status);
}

TEST(JsonErrorTest, Format) {
  AdminResponse r = jsonError(418, "a \"quoted\" message");
  EXPECT_EQ(418, r.status);
  EXPECT_EQ("application/json", r.content_type);
  EXPECT_EQ("{\"error\":\"a \\\"quoted\\\" message\",\"status\":418}\n", r.body);
  EXPECT_TRUE(r.headers.empty());
}

TEST(ConstantTimeEqualsTest, Table) {
  struct Case {
    std::string_view a, b;
    bool eq;
  };
  const Case cases[] = {
      {"", "", true},
      {"a", "a", true},
      {"token", "token", true},
      {"token", "tokeN", false},
      {"token", "Token", false},
      {"token", "toke", false},
      {"toke", "token", false},
      {"", "x", false},
      {"x", "", false},
      {"abc", "abd", false},
      {std::string_view("a\0b", 3), std::string_view("a\0b", 3), true},
      {std::string_view("a\0b", 3), std::string_view("a\0c", 3), false},
      {std::string_view("a\0", 2), "a", false},
      {"\xff", "\x7f", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.eq, constantTimeEquals(c.a, c.b)) << "'" << c.a << "' vs '" << c.b << "'";
  }
}

}  // namespace
}  // namespace levee::admin
