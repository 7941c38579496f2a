#pragma once
// Routing of the probe and admin APIs (DESIGN section 7). Pure request -> response logic over
// an AdminContext the server implements, so it is testable without sockets.

#include <string>

#include "proxy/admin/admin_server.h"

namespace levee::admin {

class AdminContext {
public:
  virtual ~AdminContext() = default;
  virtual bool ready(std::string& components_json) = 0;  // fills {"config":"healthy",...}
  virtual bool started() = 0;
  virtual std::string metricsText() = 0;
  virtual std::string configJson() = 0;
  virtual std::string clustersJson() = 0;
  // Reloads the policy file; returns true on success and fills a JSON body either way.
  virtual bool reload(std::string& body_json) = 0;
  virtual void startDrain() = 0;
  // The admin token (empty: mutations refused).
  virtual std::string adminToken() = 0;
  virtual std::string circuitBreakersJson() = 0;
  // action: open | close | reset. Returns the HTTP status (200, 404 unknown upstream or no
  // breaker) and fills a JSON body.
  virtual int circuitBreakerAction(const std::string& upstream, const std::string& action,
                                   std::string& body_json) = 0;
  // The companion's API under /api/v1/ (backup, failover: DESIGN section 7). Called after the
  // bearer token was checked for every method but GET/HEAD; returns 404 for paths nobody serves.
  virtual AdminResponse companionApi(const AdminRequest& req) { (void)req; return jsonError(404, "not found"); }
  // Audit trail of every mutation (who, what, outcome).
  virtual void audit(const AdminRequest& req, int status) = 0;
};

AdminResponse handleProbe(AdminContext& ctx, const AdminRequest& req);
AdminResponse handleAdmin(AdminContext& ctx, const AdminRequest& req);

// Compares in constant time (independent of where the first difference is).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace levee::admin
