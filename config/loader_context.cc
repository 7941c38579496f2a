#include "config/loader_context.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <tuple>

#include "config/units.h"

namespace levee::config::detail {
namespace {

constexpr std::array<NotSupportedYet, 2> kNotSupportedYet{{
    {"listener", "tls", ""},
    {"upstream", "protocol", "http2"},
}};

// Optimal string alignment distance (Levenshtein plus adjacent transpositions: "tiemout").
size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
  for (size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string joinNames(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += name;
  }
  return out;
}

bool isUnsupportedKey(std::string_view section, std::string_view key) {
  return std::ranges::any_of(kNotSupportedYet, [&](const NotSupportedYet& n) {
    return n.section == section && n.key == key && n.value.empty();
  });
}

bool isUnsupportedValue(std::string_view section, std::string_view key, std::string_view value) {
  return std::ranges::any_of(kNotSupportedYet, [&](const NotSupportedYet& n) {
    return n.section == section && n.key == key && !n.value.empty() && n.value == value;
  });
}

}  // namespace

std::span<const NotSupportedYet> notSupportedYet() { return kNotSupportedYet; }

std::string closestMatch(std::string_view word, std::span<const std::string_view> candidates) {
  std::string best;
  size_t best_distance = 3;  // suggest within edit distance 2 only
  for (std::string_view candidate : candidates) {
    const size_t distance = editDistance(word, candidate);
    if (distance < best_distance && distance < candidate.size()) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

std::string childPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) {
    return std::string(key);
  }
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string indexPath(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

std::string quoteText(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  return std::ranges::all_of(s, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool isMetricLabelSafe(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
  });
}

std::string toLower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return out;
}

std::string toUpper(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  return out;
}

const Node* findValue(const Node& map, std::string_view key) {
  for (const MapEntry& entry : map.entries) {
    if (entry.key == key) {
      return &entry.value;
    }
  }
  return nullptr;
}

// === LoadContext ===

void LoadContext::error(int line, int column, std::string path, std::string message) {
  schema_errors_.push_back(Error{std::move(message), file_, line, column, std::move(path)});
}

void LoadContext::crossError(int line, int column, std::string path, std::string message) {
  cross_errors_.push_back(Error{std::move(message), file_, line, column, std::move(path)});
}

Errors LoadContext::takeErrors() {
  const auto by_location = [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  };
  std::ranges::stable_sort(schema_errors_, by_location);
  std::ranges::stable_sort(cross_errors_, by_location);
  Errors out = std::move(schema_errors_);
  out.insert(out.end(), std::make_move_iterator(cross_errors_.begin()),
             std::make_move_iterator(cross_errors_.end()));
  schema_errors_.clear();
  cross_errors_.clear();
  return out;
}

// === value readers ===

bool readString(LoadContext& ctx, const Node& node, const std::string& path, std::string& out) {
  if (!node.isScalar()) {
    ctx.error(node, path, "expected a string, got " + describeNode(node));
    return false;
  }
  if (node.scalar.empty()) {
    ctx.error(node, path, "must not be empty");
    return false;
  }
  out = node.scalar;
  return true;
}

bool readBool(LoadContext& ctx, const Node& node, const std::string& path, bool& out) {
  if (node.isScalar() && !node.quoted) {
    const std::string& s = node.scalar;
    if (s == "true" || s == "True" || s == "TRUE") {
      out = true;
      return true;
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      out = false;
      return true;
    }
  }
  ctx.error(node, path, "expected true or false, got " + describeNode(node));
  return false;
}

bool readUint(LoadContext& ctx, const Node& node, const std::string& path, uint64_t min,
              uint64_t max, uint64_t& out) {
  const bool unbounded =
      max == std::numeric_limits<uint32_t>::max() || max == std::numeric_limits<uint64_t>::max();
  const std::string expected = unbounded ? "expected an integer >= " + std::to_string(min)
                                         : "expected an integer in [" + std::to_string(min) + "," +
                                               std::to_string(max) + "]";
  if (node.isScalar() && !node.quoted && !node.scalar.empty()) {
    const std::string& s = node.scalar;
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && ptr == s.data() + s.size() && value >= min && value <= max) {
      out = value;
      return true;
    }
  }
  ctx.error(node, path, expected + ", got " + describeNode(node));
  return false;
}

bool readNumber(LoadContext& ctx, const Node& node, const std::string& path, double& out) {
  if (node.isScalar() && !node.quoted && !node.scalar.empty()) {
    const std::string& s = node.scalar;
    double value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(value)) {
      out = value;
      return true;
    }
  }
  ctx.error(node, path, "expected a number, got " + describeNode(node));
  return false;
}

bool readDuration(LoadContext& ctx, const Node& node, const std::string& path, Duration& out) {
  if (!node.isScalar()) {
    ctx.error(node, path, "expected a duration (e.g. \"3s\"), got " + describeNode(node));
    return false;
  }
  auto parsed = parseDuration(node.scalar);
  if (!parsed) {
    ctx.error(node, path, parsed.error().message);
    return false;
  }
  out = *parsed;
  return true;
}

bool readByteSize(LoadContext& ctx, const Node& node, const std::string& path, uint64_t max,
                  uint64_t& out) {
  if (!node.isScalar()) {
    ctx.error(node, path, "expected a size (e.g. \"64KiB\"), got " + describeNode(node));
    return false;
  }
  auto parsed = parseByteSize(node.scalar);
  if (!parsed) {
    ctx.error(node, path, parsed.error().message);
    return false;
  }
  if (*parsed > max) {
    ctx.error(node, path,
              "size " + quoteText(node.scalar) + " exceeds the maximum of " + std::to_string(max) +
                  " bytes");
    return false;
  }
  out = *parsed;
  return true;
}

bool readAddress(LoadContext& ctx, const Node& node, const std::string& path, bool allow_dns_name,
                 SocketAddress& out) {
  if (!node.isScalar()) {
    ctx.error(node, path, "expected an address HOST:PORT, got " + describeNode(node));
    return false;
  }
  auto parsed = parseSocketAddress(node.scalar, allow_dns_name);
  if (!parsed) {
    ctx.error(node, path, parsed.error().message);
    return false;
  }
  out = std::move(*parsed);
  return true;
}

bool expectSequence(LoadContext& ctx, const Node& node, const std::string& path) {
  if (!node.isSequence()) {
    ctx.error(node, path, "expected a sequence, got " + describeNode(node));
    return false;
  }
  return true;
}

// === MapReader ===

MapReader::MapReader(LoadContext& ctx, const Node& node, std::string path, std::string_view section,
                     std::initializer_list<std::string_view> allowed)
    : ctx_(ctx), node_(node), path_(std::move(path)), section_(section) {
  if (!node.isMap()) {
    ctx_.error(node, path_, "expected a mapping, got " + describeNode(node));
    return;
  }
  ok_ = true;
  const std::span<const std::string_view> allowed_keys(allowed.begin(), allowed.size());
  for (size_t i = 0; i < node.entries.size(); ++i) {
    const MapEntry& entry = node.entries[i];
    const std::string key_path = childPath(path_, entry.key);
    const auto first =
        std::find_if(node.entries.begin(), node.entries.begin() + static_cast<ptrdiff_t>(i),
                     [&](const MapEntry& e) { return e.key == entry.key; });
    if (first != node.entries.begin() + static_cast<ptrdiff_t>(i)) {
      ctx_.error(entry.key_line, entry.key_column, key_path,
                 "duplicate key " + quoteText(entry.key) + " (first defined at line " +
                     std::to_string(first->key_line) + ")");
      continue;
    }
    if (std::ranges::find(allowed_keys, entry.key) != allowed_keys.end()) {
      continue;
    }
    if (isUnsupportedKey(section_, entry.key)) {
      ctx_.error(entry.key_line, entry.key_column, key_path,
                 quoteText(entry.key) + " is not supported yet by this build");
      continue;
    }
    std::string hint = closestMatch(entry.key, allowed_keys);
    if (hint.empty()) {
      std::vector<std::string_view> later;
      for (const NotSupportedYet& n : kNotSupportedYet) {
        if (n.section == section_ && n.value.empty()) {
          later.push_back(n.key);
        }
      }
      hint = closestMatch(entry.key, later);
    }
    if (!hint.empty()) {
      ctx_.error(
          entry.key_line, entry.key_column, key_path,
          "unknown key " + quoteText(entry.key) + " (did you mean " + quoteText(hint) + "?)");
    } else {
      ctx_.error(entry.key_line, entry.key_column, key_path,
                 "unknown key " + quoteText(entry.key) +
                     " (expected one of: " + joinNames(allowed_keys) + ")");
    }
  }
}

const Node* MapReader::find(std::string_view key) const {
  return ok_ ? findValue(node_, key) : nullptr;
}

const Node* MapReader::require(std::string_view key) const {
  const Node* value = find(key);
  if (value == nullptr && ok_) {
    ctx_.error(node_, path(key), "missing required key " + quoteText(key));
  }
  return value;
}

bool MapReader::string(std::string_view key, std::string& out) const {
  const Node* value = find(key);
  return value != nullptr && readString(ctx_, *value, path(key), out);
}

bool MapReader::boolean(std::string_view key, bool& out) const {
  const Node* value = find(key);
  return value != nullptr && readBool(ctx_, *value, path(key), out);
}

bool MapReader::duration(std::string_view key, Duration& out) const {
  const Node* value = find(key);
  return value != nullptr && readDuration(ctx_, *value, path(key), out);
}

bool MapReader::uint32(std::string_view key, uint32_t min, uint32_t max, uint32_t& out) const {
  const Node* value = find(key);
  uint64_t parsed = 0;
  if (value == nullptr || !readUint(ctx_, *value, path(key), min, max, parsed)) {
    return false;
  }
  out = static_cast<uint32_t>(parsed);
  return true;
}

bool MapReader::byteSize(std::string_view key, uint64_t max, uint64_t& out) const {
  const Node* value = find(key);
  return value != nullptr && readByteSize(ctx_, *value, path(key), max, out);
}

bool MapReader::address(std::string_view key, bool allow_dns_name, SocketAddress& out) const {
  const Node* value = find(key);
  return value != nullptr && readAddress(ctx_, *value, path(key), allow_dns_name, out);
}

int MapReader::choiceIndex(std::string_view key, const Node& value,
                           const std::vector<std::string_view>& names) const {
  const std::string expected = "expected one of " + joinNames(names);
  if (!value.isScalar()) {
    ctx_.error(value, path(key), expected + ", got " + describeNode(value));
    return -1;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == value.scalar) {
      return static_cast<int>(i);
    }
  }
  if (isUnsupportedValue(section_, key, value.scalar)) {
    ctx_.error(value, path(key),
               std::string(key) + " " + quoteText(value.scalar) +
                   " is not supported yet by this build (supported: " + joinNames(names) + ")");
    return -1;
  }
  std::string message = expected + ", got " + describeNode(value);
  const std::string hint = closestMatch(value.scalar, names);
  if (!hint.empty()) {
    message += " (did you mean " + quoteText(hint) + "?)";
  }
  ctx_.error(value, path(key), message);
  return -1;
}

void parseMethodList(LoadContext& ctx, const Node& node, const std::string& path,
                     std::vector<std::string>& out, std::string_view empty_hint) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "must not be empty (" + std::string(empty_hint) + ")");
    return;
  }
  std::vector<std::string> methods;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = node.items[i];
    std::string method;
    if (!readString(ctx, item, indexPath(path, i), method)) {
      continue;
    }
    if (!isToken(method)) {
      ctx.error(item, indexPath(path, i), "invalid HTTP method " + quoteText(method));
      continue;
    }
    method = toUpper(method);
    if (std::ranges::find(methods, method) == methods.end()) {
      methods.push_back(std::move(method));
    }
  }
  out = std::move(methods);
}

}  // namespace levee::config::detail
