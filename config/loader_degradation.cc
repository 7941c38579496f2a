// The `degradation` section (DESIGN section 6): the policy's level, where an operator's level
// is kept across restarts, the read-only methods, the maintenance response and the automatic
// degradation triggers.

#include <limits>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr uint64_t kMaxMaintenanceBody = 1024 * 1024;
constexpr uint32_t kMaxLevel = 4;
constexpr uint32_t kMaxAutoLevel = 3;  // maintenance is never automatic

void parseMaintenance(LoadContext& ctx, const Node& node, const std::string& path,
                      MaintenanceConfig& out) {
  MapReader m(ctx, node, path, "maintenance", {"status", "retry_after", "body_file", "content_type"});
  if (!m.ok()) {
    return;
  }
  uint32_t status = 503;
  if (m.uint32("status", 200, 599, status)) {
    out.status = static_cast<int>(status);
  }
  positiveDuration(ctx, m, "retry_after", out.retry_after);
  m.string("content_type", out.content_type);
  if (out.content_type.find_first_of("\r\n") != std::string::npos) {
    ctx.error(*m.find("content_type"), m.path("content_type"), "may not contain CR or LF");
  }
  if (const Node* file = m.find("body_file")) {
    if (readString(ctx, *file, m.path("body_file"), out.body_file)) {
      readPolicyFile(ctx, *file, m.path("body_file"), out.body_file, kMaxMaintenanceBody, out.body);
    }
  }
}

void parseBurnRate(LoadContext& ctx, const Node& node, const std::string& path,
                   DegradationAutoConfig& out) {
  MapReader m(ctx, node, path, "burn_rate", {"threshold", "availability", "window", "minimum_requests"});
  if (!m.ok()) {
    return;
  }
  if (const Node* t = m.require("threshold")) {
    double v = 0;
    if (readNumber(ctx, *t, m.path("threshold"), v)) {
      if (v > 0 && v <= 1000) {
        out.burn_rate = v;
      } else {
        ctx.error(*t, m.path("threshold"), "expected a number in (0,1000], got " + describeNode(*t));
      }
    }
  }
  if (const Node* a = m.find("availability")) {
    double v = 0;
    if (readNumber(ctx, *a, m.path("availability"), v)) {
      if (v > 0 && v < 100) {
        out.availability = v;
      } else {
        ctx.error(*a, m.path("availability"),
                  "expected a percentage in (0,100) (e.g. 99.9), got " + describeNode(*a));
      }
    }
  }
  positiveDuration(ctx, m, "window", out.window);
  m.uint32("minimum_requests", 1, std::numeric_limits<uint32_t>::max(), out.minimum_requests);
}

void parseAuto(LoadContext& ctx, const Node& node, const std::string& path,
               DegradationAutoConfig& out) {
  MapReader m(ctx, node, path, "auto",
              {"max_level", "breaker_open_percent", "burn_rate", "cooldown", "hysteresis_percent"});
  if (!m.ok()) {
    return;
  }
  DegradationAutoConfig a;
  a.enabled = true;
  m.uint32("max_level", 1, kMaxAutoLevel, a.max_level);
  m.uint32("breaker_open_percent", 1, 100, a.breaker_open_percent);
  if (const Node* br = m.find("burn_rate")) {
    parseBurnRate(ctx, *br, m.path("burn_rate"), a);
  }
  positiveDuration(ctx, m, "cooldown", a.cooldown);
  m.uint32("hysteresis_percent", 0, 99, a.hysteresis_percent);
  if (a.breaker_open_percent == 0 && a.burn_rate == 0 && m.find("breaker_open_percent") == nullptr &&
      m.find("burn_rate") == nullptr) {
    ctx.error(node, path,
              "automatic degradation needs a trigger: breaker_open_percent and/or burn_rate "
              "(leave auto out for none)");
  }
  out = a;
}

}  // namespace

void parseDegradation(LoadContext& ctx, const Node& node, DegradationConfig& out) {
  MapReader m(ctx, node, "degradation", "degradation",
              {"level", "state_file", "read_only_methods", "retry_after", "maintenance", "auto"});
  if (!m.ok()) {
    return;
  }
  m.uint32("level", 0, kMaxLevel, out.level);
  m.string("state_file", out.state_file);
  if (const Node* methods = m.find("read_only_methods")) {
    std::vector<std::string> parsed;
    parseMethodList(ctx, *methods, m.path("read_only_methods"), parsed,
                    "leave the key out for the default: GET, HEAD, OPTIONS");
    if (!parsed.empty()) {
      out.read_only_methods = std::move(parsed);
    }
  }
  positiveDuration(ctx, m, "retry_after", out.retry_after);
  if (const Node* maintenance = m.find("maintenance")) {
    parseMaintenance(ctx, *maintenance, m.path("maintenance"), out.maintenance);
  }
  if (const Node* a = m.find("auto")) {
    parseAuto(ctx, *a, m.path("auto"), out.automatic);
  }
}

}  // namespace levee::config::detail
