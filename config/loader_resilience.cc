// The resilience blocks of an upstream (DESIGN section 5): hash_on, circuit_breaker,
// outlier_detection, health_check and failover. parseUpstream (loader_upstreams.cc) decides which
// apply to the upstream; these read one block each. Every block present is `enabled`.

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <map>
#include <string_view>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr uint32_t kMaxUint32 = std::numeric_limits<uint32_t>::max();

std::string operandText(const Operand& o) {
  return std::string(o.key) + " (" + o.text + (o.node == nullptr ? ", the default)" : ")");
}

}  // namespace

// === helpers shared with loader_routes_resilience.cc (declared in loader_context.h) ===

std::string durationText(Duration d) {
  const int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) {
    return std::to_string(ms / 3'600'000) + "h";
  }
  if (ms != 0 && ms % 60'000 == 0) {
    return std::to_string(ms / 60'000) + "m";
  }
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

bool positiveDuration(LoadContext& ctx, const MapReader& m, std::string_view key, Duration& out) {
  const Node* value = m.find(key);
  if (value == nullptr) {
    return true;
  }
  Duration parsed{0};
  if (!readDuration(ctx, *value, m.path(key), parsed)) {
    return false;
  }
  if (parsed <= Duration::zero()) {
    ctx.error(*value, m.path(key), "must be greater than 0");
    return false;
  }
  out = parsed;
  return true;
}

bool optionalUint(const MapReader& m, std::string_view key, uint32_t min, uint32_t max,
                  uint32_t& out) {
  return m.find(key) == nullptr || m.uint32(key, min, max, out);
}

void reportRelation(LoadContext& ctx, const MapReader& m, const Operand& subject,
                    std::string_view relation, const Operand& other, std::string_view inverse) {
  if (subject.node != nullptr) {
    ctx.error(*subject.node, m.path(subject.key),
              operandText(subject) + " " + std::string(relation) + " " + operandText(other));
  } else if (other.node != nullptr) {
    ctx.error(*other.node, m.path(other.key),
              operandText(other) + " " + std::string(inverse) + " " + operandText(subject) +
                  "; set " + std::string(subject.key) + " as well");
  }
}

Operand durationOperand(const MapReader& m, std::string_view key, Duration value) {
  return Operand{key, durationText(value), m.find(key)};
}

void parseStatusList(LoadContext& ctx, const Node& node, const std::string& path, uint64_t min,
                     uint64_t max, std::vector<int>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "must list at least one status (leave the key out for the default)");
    return;
  }
  std::vector<int> statuses;
  std::map<uint64_t, size_t> seen;  // status -> index of its first listing
  bool valid = true;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const std::string item_path = indexPath(path, i);
    uint64_t status = 0;
    if (!readUint(ctx, node.items[i], item_path, min, max, status)) {
      valid = false;
      continue;
    }
    const auto [first, inserted] = seen.emplace(status, i);
    if (!inserted) {
      ctx.error(node.items[i], item_path,
                "duplicate status " + std::to_string(status) + " (first listed at " +
                    indexPath(path, first->second) + ")");
      valid = false;
      continue;
    }
    statuses.push_back(static_cast<int>(status));
  }
  if (valid) {
    out = std::move(statuses);
  }
}

namespace {

// === circuit_breaker ===

constexpr std::array<std::string_view, 4> kFailureKinds{"5xx", "connect-failure", "reset",
                                                        "timeout"};

bool isDigits(std::string_view s) {
  return !s.empty() &&
         std::ranges::all_of(s, [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// `failure_on`: kinds and status codes; replaces the default (all four kinds) when given.
void parseFailureOn(LoadContext& ctx, const Node& node, const std::string& path, FailureOn& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path,
              "must list at least one failure kind (leave the key out for the default: 5xx, "
              "connect-failure, reset, timeout)");
    return;
  }
  FailureOn parsed{false, false, false, false, {}};
  std::map<std::string, size_t> seen;  // entry -> index of its first listing
  std::vector<std::pair<size_t, int>> server_errors;  // (index, status) of listed 5xx statuses
  bool valid = true;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = node.items[i];
    const std::string item_path = indexPath(path, i);
    const std::string expected =
        "expected 5xx, connect-failure, reset, timeout or a status code in [400,599], got ";
    if (!item.isScalar()) {
      ctx.error(item, item_path, expected + describeNode(item));
      valid = false;
      continue;
    }
    const std::string& text = item.scalar;
    const auto [first, inserted] = seen.emplace(text, i);
    if (!inserted) {
      ctx.error(item, item_path,
                "duplicate entry " + quoteText(text) + " (first listed at " +
                    indexPath(path, first->second) + ")");
      valid = false;
      continue;
    }
    if (!item.quoted && isDigits(text)) {
      uint64_t status = 0;
      if (!readUint(ctx, item, item_path, 400, 599, status)) {
        valid = false;
        continue;
      }
      parsed.statuses.push_back(static_cast<int>(status));
      if (status >= 500) {
        server_errors.emplace_back(i, static_cast<int>(status));
      }
      continue;
    }
    if (text == "5xx") {
      parsed.status_5xx = true;
    } else if (text == "connect-failure") {
      parsed.connect_failure = true;
    } else if (text == "reset") {
      parsed.reset = true;
    } else if (text == "timeout") {
      parsed.timeout = true;
    } else {
      std::string message = expected + describeNode(item);
      const std::string hint = closestMatch(text, kFailureKinds);
      if (!hint.empty()) {
        message += " (did you mean " + quoteText(hint) + "?)";
      }
      ctx.error(item, item_path, message);
      valid = false;
    }
  }
  if (parsed.status_5xx) {
    for (const auto& [index, status] : server_errors) {
      ctx.error(node.items[index], indexPath(path, index),
                "status " + std::to_string(status) + " is already covered by \"5xx\"");
      valid = false;
    }
  }
  if (valid) {
    out = std::move(parsed);
  }
}

void parseFailureRate(LoadContext& ctx, const Node& node, const std::string& path,
                      CircuitBreakerConfig& cb) {
  MapReader m(ctx, node, path, "failure_rate", {"threshold_percent", "minimum_requests", "window"});
  if (!m.ok()) {
    return;
  }
  if (m.require("threshold_percent") != nullptr) {
    m.uint32("threshold_percent", 1, 100, cb.failure_rate_threshold_percent);
  }
  m.uint32("minimum_requests", 1, kMaxUint32, cb.failure_rate_minimum_requests);
  positiveDuration(ctx, m, "window", cb.failure_rate_window);
}

void parseSlowCall(LoadContext& ctx, const Node& node, const std::string& path,
                   CircuitBreakerConfig& cb) {
  MapReader m(ctx, node, path, "slow_call", {"duration", "threshold_percent"});
  if (!m.ok()) {
    return;
  }
  if (m.require("duration") != nullptr) {
    positiveDuration(ctx, m, "duration", cb.slow_call_duration);
  }
  if (m.require("threshold_percent") != nullptr) {
    m.uint32("threshold_percent", 1, 100, cb.slow_call_threshold_percent);
  }
}

void parseHalfOpen(LoadContext& ctx, const Node& node, const std::string& path,
                   CircuitBreakerConfig& cb) {
  MapReader m(ctx, node, path, "half_open", {"permitted", "successes_to_close", "max_wait"});
  if (!m.ok()) {
    return;
  }
  const bool permitted_ok = optionalUint(m, "permitted", 1, kMaxUint32, cb.half_open_permitted);
  uint32_t successes = 0;
  if (m.find("successes_to_close") == nullptr) {
    // The default (2) never exceeds a smaller `permitted`: it is lowered to match.
    cb.half_open_successes_to_close = std::min(cb.half_open_successes_to_close,
                                               cb.half_open_permitted);
  } else if (m.uint32("successes_to_close", 1, kMaxUint32, successes)) {
    if (permitted_ok && successes > cb.half_open_permitted) {
      reportRelation(ctx, m,
                     Operand{"successes_to_close", std::to_string(successes),
                             m.find("successes_to_close")},
                     "must not exceed",
                     Operand{"permitted", std::to_string(cb.half_open_permitted),
                             m.find("permitted")},
                     "must not be less than");
    } else {
      cb.half_open_successes_to_close = successes;
    }
  }
  positiveDuration(ctx, m, "max_wait", cb.half_open_max_wait);
}

// === health_check ===

// Characters of a request path levee sends as is: visible ASCII, no spaces.
bool isRequestPath(std::string_view s) {
  return std::ranges::all_of(s, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

// A Host header value: a name or IP literal with an optional port ("app.local:8080", "[::1]").
bool isHostHeader(std::string_view s) {
  return std::ranges::all_of(s, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("-._:[]").find(c) != std::string_view::npos;
  });
}

}  // namespace

void parseHashOn(LoadContext& ctx, const Node& node, const std::string& path, HashOn& out) {
  std::string text;
  if (!readString(ctx, node, path, text)) {
    return;
  }
  if (text == "path") {
    out = HashOn{HashOn::Kind::Path, ""};
    return;
  }
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  if (colon == std::string::npos && (kind == "header" || kind == "cookie")) {
    ctx.error(node, path,
              "hash_on " + quoteText(kind) + " needs a name: " + kind + ":NAME (e.g. " + kind +
                  (kind == "header" ? ":x-user-id)" : ":session)"));
    return;
  }
  if (colon == std::string::npos || (kind != "header" && kind != "cookie")) {
    std::string message =
        "expected path, header:NAME or cookie:NAME, got " + describeNode(node);
    static constexpr std::array<std::string_view, 3> kKinds{"path", "header", "cookie"};
    const std::string hint = closestMatch(kind, kKinds);
    if (!hint.empty()) {
      message += " (did you mean " +
                 quoteText(hint == "path" ? hint : hint + text.substr(kind.size())) + "?)";
    }
    ctx.error(node, path, message);
    return;
  }
  const std::string name = text.substr(colon + 1);
  if (!isToken(name)) {
    ctx.error(node, path,
              "expected a " + kind + " name (RFC 9110 token characters) after \"" + kind +
                  ":\", got " + describeNode(node));
    return;
  }
  // Header names are case-insensitive (stored lower-case); cookie names are case-sensitive.
  out = kind == "header" ? HashOn{HashOn::Kind::Header, toLower(name)}
                         : HashOn{HashOn::Kind::Cookie, name};
}

void parseCircuitBreaker(LoadContext& ctx, const Node& node, const std::string& path,
                         CircuitBreakerConfig& out) {
  MapReader m(ctx, node, path, "circuit_breaker",
              {"failure_on", "consecutive_failures", "failure_rate", "slow_call", "open_for",
               "max_open_for", "half_open", "mode"});
  if (!m.ok()) {
    return;
  }
  CircuitBreakerConfig cb;
  cb.enabled = true;
  if (const Node* failure_on = m.find("failure_on")) {
    parseFailureOn(ctx, *failure_on, m.path("failure_on"), cb.failure_on);
  }
  m.uint32("consecutive_failures", 1, kMaxUint32, cb.consecutive_failures);
  if (const Node* rate = m.find("failure_rate")) {
    parseFailureRate(ctx, *rate, m.path("failure_rate"), cb);
  }
  if (const Node* slow = m.find("slow_call")) {
    parseSlowCall(ctx, *slow, m.path("slow_call"), cb);
  }
  const bool open_ok = positiveDuration(ctx, m, "open_for", cb.open_for);
  const bool max_ok = positiveDuration(ctx, m, "max_open_for", cb.max_open_for);
  if (open_ok && max_ok && cb.max_open_for < cb.open_for) {
    reportRelation(ctx, m, durationOperand(m, "max_open_for", cb.max_open_for),
                   "must not be less than", durationOperand(m, "open_for", cb.open_for),
                   "must not exceed");
  }
  if (const Node* half_open = m.find("half_open")) {
    parseHalfOpen(ctx, *half_open, m.path("half_open"), cb);
  }
  m.choice("mode", {{"enforce", false}, {"shadow", true}}, cb.shadow);
  if (m.find("consecutive_failures") == nullptr && m.find("failure_rate") == nullptr &&
      m.find("slow_call") == nullptr) {
    ctx.error(node, path,
              "a circuit breaker needs at least one trigger: consecutive_failures, failure_rate "
              "or slow_call (e.g. consecutive_failures: 5)");
  }
  out = std::move(cb);
}

void parseOutlierDetection(LoadContext& ctx, const Node& node, const std::string& path,
                           OutlierDetectionConfig& out) {
  MapReader m(ctx, node, path, "outlier_detection",
              {"consecutive_failures", "consecutive_local_failures", "interval",
               "failure_percentage", "minimum_requests", "base_ejection", "max_ejection",
               "max_ejection_percent"});
  if (!m.ok()) {
    return;
  }
  OutlierDetectionConfig od;
  od.enabled = true;
  m.uint32("consecutive_failures", 1, kMaxUint32, od.consecutive_failures);
  m.uint32("consecutive_local_failures", 1, kMaxUint32, od.consecutive_local_failures);
  positiveDuration(ctx, m, "interval", od.interval);
  m.uint32("failure_percentage", 0, 100, od.failure_percentage);
  m.uint32("minimum_requests", 1, kMaxUint32, od.minimum_requests);
  const bool base_ok = positiveDuration(ctx, m, "base_ejection", od.base_ejection);
  const bool max_ok = positiveDuration(ctx, m, "max_ejection", od.max_ejection);
  if (base_ok && max_ok && od.max_ejection < od.base_ejection) {
    reportRelation(ctx, m, durationOperand(m, "max_ejection", od.max_ejection),
                   "must not be less than", durationOperand(m, "base_ejection", od.base_ejection),
                   "must not exceed");
  }
  m.uint32("max_ejection_percent", 0, 100, od.max_ejection_percent);
  out = std::move(od);
}

void parseHealthCheck(LoadContext& ctx, const Node& node, const std::string& path,
                      HealthCheckConfig& out) {
  MapReader m(ctx, node, path, "health_check",
              {"path", "host", "expected_statuses", "interval", "jitter_percent", "timeout",
               "unhealthy_threshold", "healthy_threshold"});
  if (!m.ok()) {
    return;
  }
  HealthCheckConfig hc;
  hc.enabled = true;
  std::string text;
  if (m.string("path", text)) {
    if (!text.starts_with('/')) {
      ctx.error(*m.find("path"), m.path("path"), "must start with \"/\", got " + quoteText(text));
    } else if (!isRequestPath(text)) {
      ctx.error(*m.find("path"), m.path("path"),
                "must not contain spaces or control characters, got " + quoteText(text));
    } else {
      hc.path = text;
    }
  }
  if (m.string("host", text)) {
    if (isHostHeader(text)) {
      hc.host = toLower(text);
    } else {
      ctx.error(*m.find("host"), m.path("host"),
                "expected a host name or address, with an optional port (e.g. app.internal or "
                "app.internal:8080), got " +
                    quoteText(text));
    }
  }
  if (const Node* statuses = m.find("expected_statuses")) {
    parseStatusList(ctx, *statuses, m.path("expected_statuses"), 100, 599,
                    hc.expected_statuses);
  }
  const bool interval_ok = positiveDuration(ctx, m, "interval", hc.interval);
  m.uint32("jitter_percent", 0, 100, hc.jitter_percent);
  const bool timeout_ok = positiveDuration(ctx, m, "timeout", hc.timeout);
  if (interval_ok && timeout_ok && hc.timeout >= hc.interval) {
    reportRelation(ctx, m, durationOperand(m, "timeout", hc.timeout), "must be less than",
                   durationOperand(m, "interval", hc.interval), "must be greater than");
  }
  m.uint32("unhealthy_threshold", 1, kMaxUint32, hc.unhealthy_threshold);
  m.uint32("healthy_threshold", 1, kMaxUint32, hc.healthy_threshold);
  out = std::move(hc);
}

void parseFailover(LoadContext& ctx, const Node& node, const std::string& path,
                   FailoverConfig& out) {
  MapReader m(ctx, node, path, "failover", {"min_healthy_percent", "panic_threshold_percent"});
  if (!m.ok()) {
    return;
  }
  m.uint32("min_healthy_percent", 1, 100, out.min_healthy_percent);
  m.uint32("panic_threshold_percent", 0, 100, out.panic_threshold_percent);
}

}  // namespace levee::config::detail
