// Fault injection (DESIGN sections 5 and 7): a route's `fault` block, the top-level `faults`
// limits, and the body of POST /admin/faults, which shares the block readers (and messages).

#include <cmath>
#include <string_view>

#include "config/fault_experiment.h"
#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr Duration kMaxFaultDelay{600000};  // 10m
constexpr uint32_t kMaxActiveLimit = 1000;
constexpr std::string_view kFaultKinds = "set at least one of delay, abort or reset";

// `percent`: required, a number in [0,100] (decimals allowed), stored in parts per million.
void readPercent(LoadContext& ctx, const MapReader& m, uint32_t& ppm) {
  const Node* value = m.require("percent");
  if (value == nullptr) {
    return;
  }
  double percent = 0;
  if (!readNumber(ctx, *value, m.path("percent"), percent)) {
    return;
  }
  if (percent < 0 || percent > 100) {
    ctx.error(*value, m.path("percent"), "expected a number in [0,100], got " + value->scalar);
    return;
  }
  ppm = static_cast<uint32_t>(std::llround(percent * 10000.0));
}

void parseDelay(LoadContext& ctx, const Node& node, const std::string& path, FaultConfig& f) {
  MapReader m(ctx, node, path, "fault.delay", {"percent", "duration"});
  if (!m.ok()) {
    return;
  }
  readPercent(ctx, m, f.delay_ppm);
  const Node* duration = m.require("duration");
  Duration d{0};
  if (duration == nullptr || !readDuration(ctx, *duration, m.path("duration"), d)) {
    return;
  }
  if (d <= Duration::zero() || d > kMaxFaultDelay) {
    ctx.error(*duration, m.path("duration"),
              "must be greater than 0 and at most " + durationText(kMaxFaultDelay) + ", got " +
                  describeNode(*duration));
    return;
  }
  f.delay = d;
}

void parseAbort(LoadContext& ctx, const Node& node, const std::string& path, FaultConfig& f) {
  MapReader m(ctx, node, path, "fault.abort", {"percent", "status"});
  if (!m.ok()) {
    return;
  }
  readPercent(ctx, m, f.abort_ppm);
  uint32_t status = 0;
  if (m.require("status") != nullptr && m.uint32("status", 400, 599, status)) {
    f.abort_status = static_cast<int>(status);
  }
}

void parseReset(LoadContext& ctx, const Node& node, const std::string& path, FaultConfig& f) {
  MapReader m(ctx, node, path, "fault.reset", {"percent"});
  if (m.ok()) {
    readPercent(ctx, m, f.reset_ppm);
  }
}

// The kinds of a fault (`delay`, `abort`, `reset`) from `m`; at least one must be present.
void parseFaultKinds(LoadContext& ctx, const MapReader& m, const Node& at, FaultConfig& out) {
  FaultConfig f;
  f.enabled = true;
  const Node* delay = m.find("delay");
  const Node* abort = m.find("abort");
  const Node* reset = m.find("reset");
  if (delay != nullptr) {
    parseDelay(ctx, *delay, m.path("delay"), f);
  }
  if (abort != nullptr) {
    parseAbort(ctx, *abort, m.path("abort"), f);
  }
  if (reset != nullptr) {
    parseReset(ctx, *reset, m.path("reset"), f);
  }
  if (delay == nullptr && abort == nullptr && reset == nullptr) {
    ctx.error(at, m.path(), "no fault given: " + std::string(kFaultKinds));
    return;
  }
  out = f;
}

void parseHeaderTargets(LoadContext& ctx, const Node& node, const std::string& path,
                        std::vector<HeaderMatch>& out) {
  if (!node.isMap()) {
    ctx.error(node, path,
              "expected an object of header names to values, got " + describeNode(node));
    return;
  }
  if (node.entries.empty()) {
    ctx.error(node, path, "must name at least one header (leave the key out to match any request)");
    return;
  }
  for (const MapEntry& e : node.entries) {
    const std::string p = childPath(path, e.key);
    if (!isToken(e.key)) {
      ctx.error(e.key_line, e.key_column, p, "invalid header name " + quoteText(e.key));
      continue;
    }
    if (!e.value.isScalar()) {
      ctx.error(e.value, p, "expected a string, got " + describeNode(e.value));
      continue;
    }
    out.push_back(HeaderMatch{toLower(e.key), e.value.scalar});
  }
}

bool hasRoute(const Policy& policy, std::string_view name) {
  for (const Listener& l : policy.listeners) {
    for (const Route& r : l.routes) {
      if (r.name == name) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

void parseFault(LoadContext& ctx, const Node& node, const std::string& path, FaultConfig& out) {
  MapReader m(ctx, node, path, "fault", {"delay", "abort", "reset"});
  if (m.ok()) {
    parseFaultKinds(ctx, m, node, out);
  }
}

void parseFaults(LoadContext& ctx, const Node& node, FaultsConfig& out) {
  MapReader m(ctx, node, "faults", "faults", {"max_active", "default_ttl", "max_ttl"});
  if (!m.ok()) {
    return;
  }
  m.uint32("max_active", 0, kMaxActiveLimit, out.max_active);
  const bool default_ok = positiveDuration(ctx, m, "default_ttl", out.default_ttl);
  const bool max_ok = positiveDuration(ctx, m, "max_ttl", out.max_ttl);
  if (default_ok && max_ok && out.default_ttl > out.max_ttl) {
    reportRelation(ctx, m, durationOperand(m, "default_ttl", out.default_ttl),
                   "must not exceed", durationOperand(m, "max_ttl", out.max_ttl),
                   "must not be less than");
  }
}

}  // namespace levee::config::detail

namespace levee::config {

std::expected<FaultExperimentSpec, Errors> parseFaultExperiment(std::string_view body,
                                                                const Policy& policy) {
  const std::string source = "body";
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || body[first] != '{') {
    return std::unexpected(Errors{Error{"expected a JSON object", source, 1, 1, ""}});
  }
  // JSON is YAML's flow syntax: the one tree reader (with line:column) serves both.
  auto root = parseYaml(body, source);
  if (!root) {
    return std::unexpected(Errors{std::move(root).error()});
  }
  detail::LoadContext ctx(source);
  detail::MapReader m(ctx, *root, "", "fault experiment",
                      {"route", "upstream", "header", "delay", "abort", "reset", "ttl"});
  FaultExperimentSpec spec;
  spec.ttl = policy.faults.default_ttl;
  if (m.ok()) {
    if (m.string("route", spec.route) && !detail::hasRoute(policy, spec.route)) {
      ctx.error(*m.find("route"), "route", "unknown route " + detail::quoteText(spec.route));
    }
    if (m.string("upstream", spec.upstream) && !policy.upstreams.contains(spec.upstream)) {
      ctx.error(*m.find("upstream"), "upstream",
                "unknown upstream " + detail::quoteText(spec.upstream));
    }
    if (const Node* header = m.find("header")) {
      detail::parseHeaderTargets(ctx, *header, "header", spec.headers);
    }
    detail::parseFaultKinds(ctx, m, *root, spec.fault);
    if (const Node* ttl = m.find("ttl")) {
      Duration d{0};
      if (detail::readDuration(ctx, *ttl, "ttl", d)) {
        if (d <= Duration::zero() || d > policy.faults.max_ttl) {
          ctx.error(*ttl, "ttl",
                    "must be greater than 0 and at most faults.max_ttl (" +
                        detail::durationText(policy.faults.max_ttl) + "), got " +
                        describeNode(*ttl));
        } else {
          spec.ttl = d;
        }
      }
    }
  }
  Errors errors = ctx.takeErrors();
  if (!errors.empty()) {
    return std::unexpected(std::move(errors));
  }
  return spec;
}

}  // namespace levee::config
