#include "proxy/admin/admin_handlers.h"

#include <optional>

#include "proxy/common/json.h"

namespace levee::admin {
namespace {

AdminResponse json(int status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.body = std::move(body);
  if (r.body.empty() || r.body.back() != '\n') {
    r.body.push_back('\n');
  }
  return r;
}

bool isRead(const AdminRequest& req) { return req.method == "GET" || req.method == "HEAD"; }

AdminResponse methodNotAllowed(std::string_view allow) {
  AdminResponse r = jsonError(405, "method not allowed");
  r.headers.emplace_back("allow", std::string(allow));
  return r;
}

// Returns an error response when the request is not authorized to mutate.
std::optional<AdminResponse> checkAuth(AdminContext& ctx, const AdminRequest& req) {
  std::string token = ctx.adminToken();
  if (token.empty()) {
    AdminResponse r = jsonError(403, "mutations are disabled: no admin.token_file configured");
    return r;
  }
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view auth = req.authorization;
  if (!auth.starts_with(kBearer) || !constantTimeEquals(auth.substr(kBearer.size()), token)) {
    AdminResponse r = jsonError(401, "missing or wrong bearer token");
    r.headers.emplace_back("www-authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

}  // namespace

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // Length is not secret; contents are compared without early exit.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

AdminResponse handleProbe(AdminContext& ctx, const AdminRequest& req) {
  const std::string& p = req.path;
  if (p != "/health/live" && p != "/health/ready" && p != "/health/startup" && p != "/metrics") {
    return jsonError(404, "not found");
  }
  if (!isRead(req)) {
    return methodNotAllowed("GET, HEAD");
  }
  if (p == "/health/live") {
    return json(200, R"({"status":"live"})");
  }
  if (p == "/health/startup") {
    bool ok = ctx.started();
    return json(ok ? 200 : 503, ok ? R"({"status":"started"})" : R"({"status":"starting"})");
  }
  if (p == "/health/ready") {
    std::string components;
    bool ok = ctx.ready(components);
    std::string body;
    json::Writer w(body);
    w.beginObject().key("status").value(ok ? "ready" : "not_ready").key("components").raw(components).endObject();
    return json(ok ? 200 : 503, std::move(body));
  }
  AdminResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = ctx.metricsText();
  return r;
}

AdminResponse handleAdmin(AdminContext& ctx, const AdminRequest& req) {
  const std::string& p = req.path;
  if (p == "/admin/config" || p == "/admin/clusters") {
    if (!isRead(req)) {
      return methodNotAllowed("GET, HEAD");
    }
    return json(200, p == "/admin/config" ? ctx.configJson() : ctx.clustersJson());
  }
  if (p == "/admin/circuit-breakers") {
    if (!isRead(req)) {
      return methodNotAllowed("GET, HEAD");
    }
    return json(200, ctx.circuitBreakersJson());
  }
  constexpr std::string_view kCbPrefix = "/admin/circuit-breakers/";
  if (p.starts_with(kCbPrefix)) {
    std::string_view rest = std::string_view(p).substr(kCbPrefix.size());
    auto slash = rest.find('/');
    std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (slash == std::string_view::npos || slash == 0 ||
        (action != "open" && action != "close" && action != "reset")) {
      return jsonError(404, "use /admin/circuit-breakers/{upstream}/{open|close|reset}");
    }
    if (req.method != "POST") {
      return methodNotAllowed("POST");
    }
    if (auto err = checkAuth(ctx, req)) {
      ctx.audit(req, err->status);
      return *err;
    }
    std::string body;
    int status = ctx.circuitBreakerAction(std::string(rest.substr(0, slash)), std::string(action), body);
    AdminResponse r = json(status, std::move(body));
    ctx.audit(req, r.status);
    return r;
  }
  if (p == "/admin/reload" || p == "/admin/drain") {
    if (req.method != "POST") {
      return methodNotAllowed("POST");
    }
    if (auto err = checkAuth(ctx, req)) {
      ctx.audit(req, err->status);
      return *err;
    }
    AdminResponse r;
    if (p == "/admin/reload") {
      std::string body;
      bool ok = ctx.reload(body);
      r = json(ok ? 200 : 400, std::move(body));
    } else {
      ctx.startDrain();
      r = json(202, R"({"result":"draining"})");
    }
    ctx.audit(req, r.status);
    return r;
  }
  if (p.starts_with("/api/v1/")) {
    if (isRead(req)) {
      return ctx.companionApi(req);
    }
    if (auto err = checkAuth(ctx, req)) {
      ctx.audit(req, err->status);
      return *err;
    }
    AdminResponse r = ctx.companionApi(req);
    ctx.audit(req, r.status);
    return r;
  }
  if (p.starts_with("/health/") || p == "/metrics") {
    return handleProbe(ctx, req);
  }
  return jsonError(404, "not found");
}

}  // namespace levee::admin
