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
  // Audit trail of every mutation attempt (who, what, outcome). `detail` is the response
  // body, which carries before/after where the mutation has them.
  virtual void audit(const AdminRequest& req, int status, std::string_view detail) = 0;
};

AdminResponse handleProbe(AdminContext& ctx, const AdminRequest& req);
AdminResponse handleAdmin(AdminContext& ctx, const AdminRequest& req);

// Compares in constant time (independent of where the first difference is).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace levee::admin
