#include "proxy/admin/admin_handlers.h"

#include <functional>
#include <optional>

#include "config/units.h"
#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"

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

// The gate every mutation passes: authorization (401/403), then body size (413). A refusal is
// audited here; the caller audits the outcome otherwise.
std::optional<AdminResponse> gateMutation(AdminContext& ctx, const AdminRequest& req) {
  std::optional<AdminResponse> err = checkAuth(ctx, req);
  if (!err && req.body_too_large) {
    err = jsonError(413, "request body larger than " + std::to_string(AdminServer::kMaxBody) + " bytes");
  }
  if (err) {
    ctx.audit(req, err->status, err->body);
  }
  return err;
}

AdminResponse audited(AdminContext& ctx, const AdminRequest& req, AdminResponse r) {
  ctx.audit(req, r.status, r.body);
  return r;
}

bool blankBody(std::string_view body) { return body.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// Endpoints without parameters accept an empty body or an empty JSON object.
std::optional<AdminResponse> expectNoBody(const AdminRequest& req) {
  if (blankBody(req.body)) {
    return std::nullopt;
  }
  auto v = json::parse(req.body);
  if (!v) {
    return jsonError(400, v.error().message);
  }
  if (v->object() == nullptr || !v->object()->empty()) {
    return jsonError(400, req.path + " takes no parameters (send no body or {})");
  }
  return std::nullopt;
}

// {"delay":"DUR","grace":"DUR"}, both optional; an empty body means the policy's drain block.
std::optional<AdminResponse> parseDrainBody(const AdminRequest& req, DrainRequest& out) {
  if (blankBody(req.body)) {
    return std::nullopt;
  }
  auto v = json::parse(req.body);
  if (!v) {
    return jsonError(400, v.error().message);
  }
  const json::Object* o = v->object();
  if (o == nullptr) {
    return jsonError(400, "expected a JSON object, got " + std::string(json::typeName(*v)));
  }
  for (const auto& [key, value] : *o) {
    std::optional<std::chrono::milliseconds>* slot = key == "delay" ? &out.delay : key == "grace" ? &out.grace : nullptr;
    if (slot == nullptr) {
      return jsonError(400, "unknown key \"" + key + "\" (expected delay, grace)");
    }
    const std::string* text = value.string();
    if (text == nullptr) {
      return jsonError(400, key + ": expected a duration string such as \"5s\", got " +
                                std::string(json::typeName(value)));
    }
    auto d = config::parseDuration(*text);
    if (!d) {
      return jsonError(400, key + ": " + d.error().message);
    }
    *slot = *d;
  }
  if (out.delay && out.grace && *out.delay > *out.grace) {
    return jsonError(400, "delay must not exceed grace");
  }
  return std::nullopt;
}

// A mutation answering JSON: the gate (auth, size), then `run` fills the body and returns the
// status; every outcome is audited.
AdminResponse authorizedJson(AdminContext& ctx, const AdminRequest& req,
                             const std::function<int(std::string&)>& run) {
  if (auto err = gateMutation(ctx, req)) {
    return *err;
  }
  std::string body;
  int status = run(body);
  return audited(ctx, req, json(status, std::move(body)));
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

int AdminContext::failoverStatus(std::string& body_json) {
  body_json = R"j({"error":"failover is not configured (companion.failover.postgres)"})j";
  return 404;
}

int AdminContext::failoverPromote(const std::string&, std::string& body_json) {
  return failoverStatus(body_json);
}

int AdminContext::failoverRoleHealth(std::string_view, std::string_view, std::string& body_json) {
  return failoverStatus(body_json);
}

AdminResponse handleProbe(AdminContext& ctx, const AdminRequest& req) {
  const std::string& p = req.path;
  if (p == "/primary" || p == "/replica") {
    if (!isRead(req)) {
      return methodNotAllowed("GET, HEAD");
    }
    std::string body;
    int status = ctx.failoverRoleHealth(std::string_view(p).substr(1), req.query, body);
    return json(status, std::move(body));
  }
  if (p != "/health/live" && p != "/health/ready" && p != "/health/startup" && p != "/metrics") {
    return jsonError(404, "not found");
  }
  if (!isRead(req)) {
    return methodNotAllowed("GET, HEAD");
  }
  if (req.body_too_large) {
    return jsonError(413, "request body too large");
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
  if (p == "/admin/config" || p == "/admin/clusters" || p == "/admin/circuit-breakers" || p == "/admin/sla") {
    if (!isRead(req)) {
      return methodNotAllowed("GET, HEAD");
    }
    if (req.body_too_large) {
      return jsonError(413, "request body too large");
    }
    return json(200, p == "/admin/config"     ? ctx.configJson()
                     : p == "/admin/clusters" ? ctx.clustersJson()
                     : p == "/admin/sla"      ? ctx.slaJson()
                                              : ctx.circuitBreakersJson());
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
    if (auto err = gateMutation(ctx, req)) {
      return *err;
    }
    if (auto err = expectNoBody(req)) {
      return audited(ctx, req, *err);
    }
    std::string body;
    int status = ctx.circuitBreakerAction(std::string(rest.substr(0, slash)), std::string(action), body);
    return audited(ctx, req, json(status, std::move(body)));
  }
  if (p == "/admin/degradation") {
    if (isRead(req)) {
      return json(200, ctx.degradationJson());
    }
    if (req.method != "PUT" && req.method != "DELETE") {
      return methodNotAllowed("GET, HEAD, PUT, DELETE");
    }
    return authorizedJson(ctx, req, [&](std::string& body) {
      return req.method == "PUT" ? ctx.setDegradation(req.body, body) : ctx.clearDegradation(body);
    });
  }
  constexpr std::string_view kFaults = "/admin/faults";
  if (p == kFaults || (p.starts_with(kFaults) && p[kFaults.size()] == '/')) {
    std::string_view id = p.size() > kFaults.size() ? std::string_view(p).substr(kFaults.size() + 1) : "";
    if (p != kFaults && (id.empty() || id.find('/') != std::string_view::npos)) {
      return jsonError(404, "use /admin/faults or /admin/faults/{id}");
    }
    if (p == kFaults && isRead(req)) {
      return json(200, ctx.faultsJson());
    }
    if (p == kFaults ? (req.method != "POST" && req.method != "DELETE") : req.method != "DELETE") {
      return methodNotAllowed(p == kFaults ? "GET, HEAD, POST, DELETE" : "DELETE");
    }
    return authorizedJson(ctx, req, [&](std::string& body) {
      return req.method == "POST" ? ctx.createFault(req.body, body) : ctx.deleteFault(std::string(id), body);
    });
  }
  if (p == "/admin/reload" || p == "/admin/drain" || p == "/admin/quit") {
    if (req.method != "POST") {
      return methodNotAllowed("POST");
    }
    if (auto err = gateMutation(ctx, req)) {
      return *err;
    }
    if (p == "/admin/reload") {
      if (auto err = expectNoBody(req)) {
        return audited(ctx, req, *err);
      }
      // Answered when the reload is done (the file is read off the loop). The completion
      // may outlive this call: it copies what it needs.
      ctx.reload([&ctx, req](bool ok, std::string body) {
        AdminResponse r = audited(ctx, req, json(ok ? 200 : 400, std::move(body)));
        req.respond_later(std::move(r));
      });
      AdminResponse pending;
      pending.deferred = true;
      return pending;
    }
    DrainRequest dr;
    dr.exit = p == "/admin/quit";
    if (auto err = parseDrainBody(req, dr)) {
      return audited(ctx, req, *err);
    }
    std::string body;
    int status = ctx.drain(dr, body);
    return audited(ctx, req, json(status, std::move(body)));
  }
  if (p == "/api/v1/failover/status") {
    if (!isRead(req)) {
      return methodNotAllowed("GET, HEAD");
    }
    std::string body;
    int status = ctx.failoverStatus(body);
    return json(status, std::move(body));
  }
  if (p == "/api/v1/failover/promote") {
    if (req.method != "POST") {
      return methodNotAllowed("POST");
    }
    return authorizedJson(ctx, req, [&](std::string& body) { return ctx.failoverPromote(req.body, body); });
  }
  if (p.starts_with("/api/v1/")) {
    if (isRead(req)) {
      return ctx.companionApi(req);
    }
    if (auto err = gateMutation(ctx, req)) {
      return *err;
    }
    return audited(ctx, req, ctx.companionApi(req));
  }
  if (p.starts_with("/health/") || p == "/metrics") {
    return handleProbe(ctx, req);
  }
  return jsonError(404, "not found");
}

}  // namespace levee::admin
