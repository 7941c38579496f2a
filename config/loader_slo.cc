// metrics.slo: the objectives of the SLA report (DESIGN section 5).
//   slo: { availability: 99.9, latency: { threshold: 500ms, percent: 99 } }

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

// A percentage strictly between 0 and 100: an objective of 100% leaves no error budget.
bool readObjectivePercent(LoadContext& ctx, const MapReader& m, std::string_view key, double& out) {
  const Node* value = m.find(key);
  if (value == nullptr) {
    return false;
  }
  double parsed = 0;
  if (!readNumber(ctx, *value, m.path(key), parsed)) {
    return false;
  }
  if (!(parsed > 0 && parsed < 100)) {
    ctx.error(*value, m.path(key),
              "expected a percentage above 0 and below 100 (e.g. 99.9; 100 leaves no error "
              "budget), got " + value->scalar);
    return false;
  }
  out = parsed;
  return true;
}

}  // namespace

void parseSlo(LoadContext& ctx, const Node& node, const std::string& path, SloConfig& out) {
  MapReader m(ctx, node, path, "slo", {"availability", "latency"});
  if (!m.ok()) {
    return;
  }
  const Node* latency = m.find("latency");
  if (node.entries.empty()) {  // unknown keys alone were reported by MapReader
    ctx.error(node, path,
              "set availability, latency or both (e.g. { availability: 99.9, latency: "
              "{ threshold: 500ms, percent: 99 } })");
    return;
  }
  SloConfig slo;
  readObjectivePercent(ctx, m, "availability", slo.availability_percent);
  if (latency != nullptr) {
    MapReader l(ctx, *latency, m.path("latency"), "slo_latency", {"threshold", "percent"});
    if (l.ok()) {
      // Both are required; each present one is checked, so every error shows in one pass.
      const bool has_threshold = l.require("threshold") != nullptr;
      const bool has_percent = l.require("percent") != nullptr;
      Duration threshold{0};
      double percent = 0;
      const bool threshold_ok = has_threshold && positiveDuration(ctx, l, "threshold", threshold);
      const bool percent_ok = has_percent && readObjectivePercent(ctx, l, "percent", percent);
      if (threshold_ok && percent_ok) {
        slo.latency_threshold = threshold;
        slo.latency_percent = percent;
      }
    }
  }
  out = slo;
}

}  // namespace levee::config::detail
