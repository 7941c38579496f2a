#pragma once
// Routing of the probe and admin APIs (DESIGN section 7). Pure request -> response logic over
// an AdminContext the server implements, so it is testable without sockets.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/admin/admin_server.h"

namespace levee::admin {

// POST /admin/drain and /admin/quit (body: optional {"delay":"DUR","grace":"DUR"}).
struct DrainRequest {
  bool exit{false};  // quit: exit once drained (or at the grace deadline)
  std::optional<std::chrono::milliseconds> delay;  // overrides drain.delay
  std::optional<std::chrono::milliseconds> grace;  // overrides drain.grace
};

class AdminContext {
public:
  virtual ~AdminContext() = default;
  virtual bool ready(std::string& components_json) = 0;  // fills {"config":"healthy",...}
  virtual bool started() = 0;
  virtual std::string metricsText() = 0;
  virtual std::string configJson() = 0;
  virtual std::string clustersJson() = 0;
  // Reloads the policy file (read and validated off the loop); `done(ok, body_json)` runs on
  // the main loop when the reload has finished, with the result and every error.
  virtual void reload(std::function<void(bool ok, std::string body_json)> done) = 0;
  // Starts (or joins) the drain of DESIGN section 10; fills a JSON body with the state before
  // and after. Returns the HTTP status (202).
  virtual int drain(const DrainRequest& request, std::string& body_json) = 0;
  // The admin token (empty: mutations refused).
  virtual std::string adminToken() = 0;
  virtual std::string circuitBreakersJson() = 0;
  // action: open | close | reset. Returns the HTTP status (200, 404 unknown upstream or no
  // breaker) and fills a JSON body.
  virtual int circuitBreakerAction(const std::string& upstream, const std::string& action,
                                   std::string& body_json) = 0;
  // GET|PUT|DELETE /admin/degradation (DESIGN section 6). The mutations return the HTTP status
  // (200, or 400 for a bad body) and fill a JSON body.
  virtual std::string degradationJson() { return R"({"level":0})"; }
  virtual int setDegradation(std::string_view /*body*/, std::string& body_json) {
    body_json = R"({"error":"degradation is not available"})";
    return 404;
  }
  virtual int clearDegradation(std::string& body_json) { return setDegradation({}, body_json); }
  // GET /admin/sla: rolling availability, latency and error budgets per route.
  virtual std::string slaJson() = 0;
  // Run-time fault experiments (/admin/faults). Each fills a JSON body and returns the HTTP
  // status: create 201 (400 bad body, 409 max_active reached), delete 200 (404 unknown id);
  // deleteFault("") is the kill switch (removes all). Defaults: not available in this context.
  virtual std::string faultsJson() { return R"({"faults":[],"active":0})"; }
  virtual int createFault(const std::string& /*body*/, std::string& body_json) {
    body_json = R"({"error":"fault experiments are not available"})";
    return 404;
  }
  virtual int deleteFault(const std::string& /*id*/, std::string& body_json) {
    body_json = R"({"error":"fault experiments are not available"})";
    return 404;
  }
  // Audit trail of every mutation attempt (who, what, outcome). `detail` is the response
  // body, which carries before/after where the mutation has them.
  virtual void audit(const AdminRequest& req, int status, std::string_view detail) = 0;
  // Companion failover (DESIGN section 7). Each returns the HTTP status and fills a JSON body;
  // the defaults answer 404 "failover is not configured".
  virtual int failoverStatus(std::string& body_json);
  virtual int failoverPromote(const std::string& request_body, std::string& body_json);
  // Probe listener: GET /primary, GET /replica?lag=16MB (Patroni style; see companion/README.md).
  virtual int failoverRoleHealth(std::string_view role, std::string_view query,
                                 std::string& body_json);
  // The rest of the companion's API under /api/v1/ (backup: DESIGN section 7). Called after the
  // mutation gate (token, body size) for every method but GET/HEAD; 404 for paths nobody serves.
  virtual AdminResponse companionApi(const AdminRequest& req) { (void)req; return jsonError(404, "not found"); }
};

AdminResponse handleProbe(AdminContext& ctx, const AdminRequest& req);
AdminResponse handleAdmin(AdminContext& ctx, const AdminRequest& req);

// Compares in constant time (independent of where the first difference is).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace levee::admin
