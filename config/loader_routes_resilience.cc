// The request resilience blocks of a route (DESIGN section 5): `retry` and `rate_limit`.
// parseRoute (loader_listeners.cc) calls these for the blocks present, and checks
// retry.per_try_timeout against the route timeout. Every block present is `enabled`.

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string_view>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr uint32_t kMaxUint32 = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMaxRetries = 10;
constexpr double kMaxBudgetRatio = 10.0;
constexpr Duration kMinBudgetTtl{1000};
constexpr Duration kMaxBudgetTtl{60000};
constexpr uint32_t kMaxRateLimitKeys = 10'000'000;

std::string withHint(std::string message, std::string_view word,
                     std::span<const std::string_view> candidates) {
  const std::string hint = closestMatch(word, candidates);
  if (!hint.empty()) {
    message += " (did you mean " + quoteText(hint) + "?)";
  }
  return message;
}

// === retry ===

constexpr std::array<std::string_view, 6> kRetryOn{
    "connect-failure", "reset", "gateway-error", "retriable-status", "5xx", "timeout"};

// `on`: replaces the default ([connect-failure]) when given. False when it has an error.
bool parseRetryOn(LoadContext& ctx, const Node& node, const std::string& path, RetryConfig& rc) {
  if (!expectSequence(ctx, node, path)) {
    return false;
  }
  if (node.items.empty()) {
    ctx.error(node, path,
              "must list at least one condition (leave the key out for the default: "
              "connect-failure)");
    return false;
  }
  RetryConfig parsed = rc;
  parsed.on_connect_failure = false;
  std::map<std::string, size_t> seen;  // condition -> index of its first listing
  bool valid = true;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = node.items[i];
    const std::string item_path = indexPath(path, i);
    const std::string expected =
        "expected connect-failure, reset, gateway-error, retriable-status, 5xx or timeout, got " +
        describeNode(item);
    if (!item.isScalar()) {
      ctx.error(item, item_path, expected);
      valid = false;
      continue;
    }
    const std::string& text = item.scalar;
    const auto [first, inserted] = seen.emplace(text, i);
    if (!inserted) {
      ctx.error(item, item_path,
                "duplicate condition " + quoteText(text) + " (first listed at " +
                    indexPath(path, first->second) + ")");
      valid = false;
      continue;
    }
    if (text == "connect-failure") {
      parsed.on_connect_failure = true;
    } else if (text == "reset") {
      parsed.on_reset = true;
    } else if (text == "gateway-error") {
      parsed.on_gateway_error = true;
    } else if (text == "retriable-status") {
      parsed.on_retriable_status = true;
    } else if (text == "5xx") {
      parsed.on_5xx = true;
    } else if (text == "timeout") {
      parsed.on_timeout = true;
    } else {
      ctx.error(item, item_path, withHint(expected, text, kRetryOn));
      valid = false;
    }
  }
  if (valid) {
    rc = std::move(parsed);
  }
  return valid;
}

// `methods`: HTTP method tokens, stored upper-case, each once.
void parseRetryMethods(LoadContext& ctx, const Node& node, const std::string& path,
                       std::vector<std::string>& out) {
  parseMethodList(ctx, node, path, out, "leave the key out to retry idempotent methods only");
}

void parseBackoff(LoadContext& ctx, const Node& node, const std::string& path, RetryConfig& rc) {
  MapReader m(ctx, node, path, "backoff", {"base", "max"});
  if (!m.ok()) {
    return;
  }
  const bool base_ok = positiveDuration(ctx, m, "base", rc.backoff_base);
  const bool max_ok = positiveDuration(ctx, m, "max", rc.backoff_max);
  if (base_ok && max_ok && rc.backoff_max < rc.backoff_base) {
    reportRelation(ctx, m, durationOperand(m, "max", rc.backoff_max), "must not be less than",
                   durationOperand(m, "base", rc.backoff_base), "must not exceed");
  }
}

constexpr std::string_view kBudgetForms =
    "a budget is either { percent, min_concurrency } or { ratio, min_per_second, ttl }";

RetryBudgetConfig::Kind budgetKindOf(std::string_view key) {
  if (key == "percent" || key == "min_concurrency") {
    return RetryBudgetConfig::Kind::Percent;
  }
  if (key == "ratio" || key == "min_per_second" || key == "ttl") {
    return RetryBudgetConfig::Kind::Ratio;
  }
  return RetryBudgetConfig::Kind::None;  // unknown: MapReader has reported it
}

void parseRatioForm(LoadContext& ctx, const MapReader& m, RetryBudgetConfig& b) {
  if (const Node* ratio = m.find("ratio")) {
    double value = 0;
    if (readNumber(ctx, *ratio, m.path("ratio"), value)) {
      if (value > 0 && value <= kMaxBudgetRatio) {
        b.ratio = value;
      } else {
        ctx.error(*ratio, m.path("ratio"),
                  "expected a number in (0,10], got " + describeNode(*ratio));
      }
    }
  }
  m.uint32("min_per_second", 0, kMaxUint32, b.min_per_second);
  Duration ttl{0};
  if (m.duration("ttl", ttl)) {
    if (ttl >= kMinBudgetTtl && ttl <= kMaxBudgetTtl) {
      b.ttl = ttl;
    } else {
      ctx.error(*m.find("ttl"), m.path("ttl"),
                "must be between 1s and 60s, got " + describeNode(*m.find("ttl")));
    }
  }
}

// `budget`: one of two forms, decided by the first key of either; a key of the other form is an
// error. Absent: Kind::None (only max_retries bounds retries).
void parseBudget(LoadContext& ctx, const Node& node, const std::string& path,
                 RetryBudgetConfig& out) {
  MapReader m(ctx, node, path, "budget",
              {"percent", "min_concurrency", "ratio", "min_per_second", "ttl"});
  if (!m.ok()) {
    return;
  }
  RetryBudgetConfig b;
  const MapEntry* first = nullptr;
  bool mixed = false;
  for (const MapEntry& entry : node.entries) {
    const RetryBudgetConfig::Kind kind = budgetKindOf(entry.key);
    if (kind == RetryBudgetConfig::Kind::None) {
      continue;
    }
    if (first == nullptr) {
      first = &entry;
      b.kind = kind;
    } else if (kind != b.kind) {
      ctx.error(entry.key_line, entry.key_column, m.path(entry.key),
                quoteText(entry.key) + " cannot be combined with " + quoteText(first->key) +
                    ": " + std::string(kBudgetForms));
      mixed = true;
    }
  }
  if (node.entries.empty()) {
    ctx.error(node, path,
              "an empty budget: " + std::string(kBudgetForms) +
                  " (e.g. { percent: 20, min_concurrency: 3 }); leave budget out for none");
    return;
  }
  if (mixed || b.kind == RetryBudgetConfig::Kind::None) {
    return;
  }
  if (b.kind == RetryBudgetConfig::Kind::Percent) {
    m.uint32("percent", 1, 100, b.percent);
    m.uint32("min_concurrency", 0, kMaxUint32, b.min_concurrency);
  } else {
    parseRatioForm(ctx, m, b);
  }
  out = b;
}

// `statuses` and `retriable-status` need each other.
void parseRetryStatuses(LoadContext& ctx, const MapReader& m, bool on_ok, RetryConfig& rc) {
  const Node* statuses = m.find("statuses");
  if (statuses != nullptr) {
    if (statuses->isSequence() && statuses->items.empty()) {
      ctx.error(*statuses, m.path("statuses"),
                "must list at least one status (e.g. statuses: [503])");
    } else {
      parseStatusList(ctx, *statuses, m.path("statuses"), 400, 599, rc.statuses);
    }
  }
  if (!on_ok) {
    return;
  }
  if (rc.on_retriable_status && statuses == nullptr) {
    ctx.error(m.node(), m.path("statuses"),
              "missing required key \"statuses\" (\"retriable-status\" in \"on\" retries the "
              "statuses listed there, e.g. statuses: [503])");
  } else if (!rc.on_retriable_status && statuses != nullptr) {
    ctx.error(*statuses, m.path("statuses"),
              "statuses apply only with \"retriable-status\" in \"on\" (add it to \"on\", or "
              "remove statuses)");
  }
}

// === rate_limit ===

// "100/s", "6000/m", "10/h", "0.5/s" -> per second. False (with an error) otherwise.
bool parseRate(LoadContext& ctx, const Node& node, const std::string& path, RateLimitConfig& rl) {
  const std::string expected = "expected a rate NUMBER/UNIT (e.g. \"100/s\"; unit s, m or h)";
  if (!node.isScalar() || node.scalar.empty()) {
    ctx.error(node, path, expected + ", got " + describeNode(node));
    return false;
  }
  const std::string& text = node.scalar;
  const size_t slash = text.find('/');
  const std::string_view number_text =
      std::string_view(text).substr(0, slash == std::string::npos ? text.size() : slash);
  double number = 0;
  const auto [ptr, ec] =
      std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
  const bool is_number = !number_text.empty() && ec == std::errc() &&
                         ptr == number_text.data() + number_text.size() && std::isfinite(number);
  if (slash == std::string::npos) {
    std::string message = expected + ", got " + describeNode(node);
    if (is_number && number > 0) {
      message += " (write \"" + text + "/s\", \"" + text + "/m\" or \"" + text + "/h\")";
    }
    ctx.error(node, path, message);
    return false;
  }
  const std::string invalid = "invalid rate " + quoteText(text) + ": ";
  if (!is_number) {
    ctx.error(node, path, invalid + "expected a number before \"/\" (e.g. \"100/s\")");
    return false;
  }
  if (number <= 0) {
    ctx.error(node, path, invalid + "the number must be greater than 0");
    return false;
  }
  const std::string_view unit = std::string_view(text).substr(slash + 1);
  double seconds = 0;
  if (unit == "s") {
    seconds = 1;
  } else if (unit == "m") {
    seconds = 60;
  } else if (unit == "h") {
    seconds = 3600;
  } else {
    ctx.error(node, path,
              invalid + "the unit must be s, m or h (per second, minute or hour), got " +
                  quoteText(unit));
    return false;
  }
  rl.rate_per_second = number / seconds;
  rl.rate_text = text;
  return true;
}

// `key`: client_ip | route | header:NAME.
void parseRateKey(LoadContext& ctx, const Node& node, const std::string& path,
                  RateLimitConfig& rl) {
  std::string text;
  if (!readString(ctx, node, path, text)) {
    return;
  }
  if (text == "client_ip") {
    rl.key = RateLimitConfig::Key::ClientIp;
    return;
  }
  if (text == "route") {
    rl.key = RateLimitConfig::Key::Route;
    return;
  }
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  if (kind == "header" && (colon == std::string::npos || colon + 1 == text.size())) {
    ctx.error(node, path, "key \"header\" needs a name: header:NAME (e.g. header:x-api-key)");
    return;
  }
  if (kind != "header") {
    std::string message = "expected client_ip, route or header:NAME, got " + describeNode(node);
    static constexpr std::array<std::string_view, 3> kKinds{"client_ip", "route", "header"};
    const std::string hint = closestMatch(kind, kKinds);
    if (!hint.empty()) {
      const std::string suggestion =
          hint == "header" ? hint + (colon == std::string::npos ? ":NAME" : text.substr(colon))
                           : hint;
      message += " (did you mean " + quoteText(suggestion) + "?)";
    }
    ctx.error(node, path, message);
    return;
  }
  const std::string name = text.substr(colon + 1);
  if (!isToken(name)) {
    ctx.error(node, path,
              "expected a header name (RFC 9110 token characters) after \"header:\", got " +
                  describeNode(node));
    return;
  }
  rl.key = RateLimitConfig::Key::Header;
  rl.header = toLower(name);
}

}  // namespace

void parseRetry(LoadContext& ctx, const Node& node, const std::string& path, RetryConfig& out) {
  MapReader m(ctx, node, path, "retry",
              {"max_retries", "on", "statuses", "per_try_timeout", "backoff", "methods", "budget",
               "honor_retry_after", "max_body_bytes"});
  if (!m.ok()) {
    return;
  }
  RetryConfig rc;
  rc.enabled = true;
  m.uint32("max_retries", 0, kMaxRetries, rc.max_retries);
  bool on_ok = true;
  if (const Node* on = m.find("on")) {
    on_ok = parseRetryOn(ctx, *on, m.path("on"), rc);
  }
  parseRetryStatuses(ctx, m, on_ok, rc);
  m.duration("per_try_timeout", rc.per_try_timeout);
  if (const Node* backoff = m.find("backoff")) {
    parseBackoff(ctx, *backoff, m.path("backoff"), rc);
  }
  if (const Node* methods = m.find("methods")) {
    parseRetryMethods(ctx, *methods, m.path("methods"), rc.methods);
  }
  if (const Node* budget = m.find("budget")) {
    parseBudget(ctx, *budget, m.path("budget"), rc.budget);
  }
  m.boolean("honor_retry_after", rc.honor_retry_after);
  m.byteSize("max_body_bytes", std::numeric_limits<uint64_t>::max(), rc.max_body_bytes);
  out = std::move(rc);
}

void parseRateLimit(LoadContext& ctx, const Node& node, const std::string& path,
                    RateLimitConfig& out) {
  MapReader m(ctx, node, path, "rate_limit", {"rate", "burst", "key", "mode", "max_keys"});
  if (!m.ok()) {
    return;
  }
  RateLimitConfig rl;
  rl.enabled = true;
  if (const Node* rate = m.require("rate")) {
    parseRate(ctx, *rate, m.path("rate"), rl);
  }
  if (m.require("burst") != nullptr) {
    m.uint32("burst", 1, kMaxUint32, rl.burst);
  }
  if (const Node* key = m.find("key")) {
    parseRateKey(ctx, *key, m.path("key"), rl);
  }
  m.choice("mode", {{"enforce", false}, {"shadow", true}}, rl.shadow);
  m.uint32("max_keys", 1, kMaxRateLimitKeys, rl.max_keys);
  out = std::move(rl);
}

}  // namespace levee::config::detail
