// The route `fallback` block (DESIGN section 5): `on` (the failures that run the chain) and
// `chain` (stale, static, upstream entries tried in order). A chain that can loop or has
// unreachable entries is an error here, not a surprise at run time.

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string_view>

#include "config/loader_context.h"

namespace levee::config::detail {
namespace {

constexpr uint64_t kMaxStaticBody = 1024 * 1024;
constexpr uint32_t kMaxStaleEntries = 10'000'000;

constexpr std::array<FallbackReason, kFallbackReasonCount> kReasons{
    FallbackReason::BreakerOpen, FallbackReason::NoHealthyUpstream,
    FallbackReason::ConnectFailure, FallbackReason::Reset,
    FallbackReason::Timeout, FallbackReason::Upstream5xx,
    FallbackReason::Overflow, FallbackReason::RateLimited,
    FallbackReason::Degraded};

std::vector<std::string_view> reasonNames() {
  std::vector<std::string_view> names;
  for (FallbackReason r : kReasons) {
    names.push_back(fallbackReasonName(r));
  }
  return names;
}

// `on`: replaces the default (every reason but rate_limited) when given.
void parseOn(LoadContext& ctx, const Node& node, const std::string& path, uint32_t& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path,
              "must list at least one reason (leave the key out for the default: every reason "
              "except rate_limited)");
    return;
  }
  const std::vector<std::string_view> names = reasonNames();
  std::string expected = "expected one of ";
  for (size_t i = 0; i < names.size(); ++i) {
    expected += (i == 0 ? "" : ", ") + std::string(names[i]);
  }
  uint32_t mask = 0;
  std::map<std::string, size_t> seen;
  bool valid = true;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = node.items[i];
    const std::string item_path = indexPath(path, i);
    if (!item.isScalar()) {
      ctx.error(item, item_path, expected + ", got " + describeNode(item));
      valid = false;
      continue;
    }
    const auto [first, inserted] = seen.emplace(item.scalar, i);
    if (!inserted) {
      ctx.error(item, item_path,
                "duplicate reason " + quoteText(item.scalar) + " (first listed at " +
                    indexPath(path, first->second) + ")");
      valid = false;
      continue;
    }
    bool known = false;
    for (FallbackReason r : kReasons) {
      if (fallbackReasonName(r) == item.scalar) {
        mask |= static_cast<uint32_t>(r);
        known = true;
      }
    }
    if (!known) {
      std::string message = expected + ", got " + describeNode(item);
      const std::string hint = closestMatch(item.scalar, names);
      if (!hint.empty()) {
        message += " (did you mean " + quoteText(hint) + "?)";
      }
      ctx.error(item, item_path, message);
      valid = false;
    }
  }
  if (valid) {
    out = mask;
  }
}

void parseStale(LoadContext& ctx, const Node& node, const std::string& path,
                StaleFallbackConfig& out) {
  MapReader m(ctx, node, path, "stale",
              {"max_stale", "max_bytes", "max_entries", "max_entry_bytes", "allow_authorized"});
  if (!m.ok()) {
    return;
  }
  positiveDuration(ctx, m, "max_stale", out.max_stale);
  m.byteSize("max_bytes", std::numeric_limits<uint64_t>::max(), out.max_bytes);
  m.uint32("max_entries", 1, kMaxStaleEntries, out.max_entries);
  m.byteSize("max_entry_bytes", std::numeric_limits<uint64_t>::max(), out.max_entry_bytes);
  m.boolean("allow_authorized", out.allow_authorized);
  if (out.max_entry_bytes > out.max_bytes) {
    const Node* at = m.find("max_entry_bytes") != nullptr ? m.find("max_entry_bytes") : &node;
    ctx.error(*at, m.path("max_entry_bytes"),
              "must not exceed max_bytes (" + std::to_string(out.max_bytes) +
                  " bytes): no response could be stored");
  }
}

// Headers levee frames itself; a static response may not set them.
bool isFramingHeader(std::string_view lower) {
  static constexpr std::array<std::string_view, 8> kFraming{
      "content-length", "transfer-encoding", "connection", "keep-alive",
      "proxy-connection", "te", "trailer", "upgrade"};
  return std::find(kFraming.begin(), kFraming.end(), lower) != kFraming.end();
}

void parseStatic(LoadContext& ctx, const Node& node, const std::string& path,
                 StaticFallbackConfig& out) {
  MapReader m(ctx, node, path, "static", {"status", "headers", "body", "body_file"});
  if (!m.ok()) {
    return;
  }
  uint32_t status = 200;
  if (m.uint32("status", 200, 599, status)) {
    out.status = static_cast<int>(status);
  }
  if (const Node* headers = m.find("headers")) {
    const std::string hpath = m.path("headers");
    if (!headers->isMap()) {
      ctx.error(*headers, hpath,
                "expected a mapping of header name to value, got " + describeNode(*headers));
    } else {
      for (const MapEntry& e : headers->entries) {
        const std::string epath = childPath(hpath, e.key);
        if (!isToken(e.key)) {
          ctx.error(e.key_line, e.key_column, epath,
                    "invalid header name " + quoteText(e.key) + " (RFC 9110 token characters)");
          continue;
        }
        if (isFramingHeader(toLower(e.key))) {
          ctx.error(e.key_line, e.key_column, epath,
                    quoteText(e.key) + " is set by levee from the body; remove it");
          continue;
        }
        std::string value;
        if (readString(ctx, e.value, epath, value)) {
          if (value.find_first_of("\r\n") != std::string::npos) {
            ctx.error(e.value, epath, "a header value may not contain CR or LF");
            continue;
          }
          out.headers.emplace_back(e.key, std::move(value));
        }
      }
    }
  }
  const Node* body = m.find("body");
  const Node* body_file = m.find("body_file");
  if (body != nullptr && body_file != nullptr) {
    ctx.error(*body_file, m.path("body_file"),
              "set either \"body\" or \"body_file\", not both");
    return;
  }
  if (body != nullptr) {
    if (readString(ctx, *body, m.path("body"), out.body) && out.body.size() > kMaxStaticBody) {
      ctx.error(*body, m.path("body"), "a static fallback body is at most 1MiB");
    }
  } else if (body_file != nullptr) {
    if (readString(ctx, *body_file, m.path("body_file"), out.body_file)) {
      readPolicyFile(ctx, *body_file, m.path("body_file"), out.body_file, kMaxStaticBody, out.body);
    }
  }
}

// `upstream: NAME` or `upstream: { name: NAME, timeout: 2s }`.
void parseUpstreamEntry(LoadContext& ctx, const Node& node, const std::string& path,
                        FallbackEntry& out) {
  const Node* name = &node;
  std::string name_path = path;
  if (node.isMap()) {
    MapReader m(ctx, node, path, "upstream", {"name", "timeout"});
    name = m.require("name");
    name_path = m.path("name");
    positiveDuration(ctx, m, "timeout", out.timeout);
    if (name == nullptr) {
      return;
    }
  }
  if (readString(ctx, *name, name_path, out.upstream)) {
    ctx.addReference(UpstreamReference{out.upstream, UpstreamProtocol::Http1, "fallback",
                                       name->line, name->column, name_path});
  }
}

// The policy file's directory: relative body_file paths are resolved against it.
std::filesystem::path policyDir(const LoadContext& ctx) {
  return std::filesystem::path(ctx.file()).parent_path();
}

}  // namespace

bool readPolicyFile(LoadContext& ctx, const Node& at, const std::string& path, const std::string& file,
                    uint64_t max_bytes, std::string& out) {
  std::filesystem::path p(file);
  if (p.is_relative()) {
    p = policyDir(ctx) / p;
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(p, ec);
  if (ec) {
    ctx.error(at, path, "cannot read " + quoteText(p.string()) + ": " + ec.message());
    return false;
  }
  if (size > max_bytes) {
    ctx.error(at, path,
              quoteText(p.string()) + " is " + std::to_string(size) + " bytes; at most " +
                  std::to_string(max_bytes) + " are allowed here");
    return false;
  }
  std::ifstream in(p, std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    ctx.error(at, path, "cannot read " + quoteText(p.string()));
    return false;
  }
  out = std::move(body);
  return true;
}

namespace {

constexpr std::array<std::string_view, 3> kKinds{"stale", "static", "upstream"};

// One chain entry: a mapping with exactly one of stale, static, upstream. False when invalid.
bool parseEntry(LoadContext& ctx, const Node& node, const std::string& path, FallbackEntry& out) {
  const std::string expected =
      "expected a mapping with one of stale, static or upstream (e.g. - static: { status: 503 })";
  if (!node.isMap() || node.entries.size() != 1) {
    ctx.error(node, path,
              node.isMap() && node.entries.size() > 1
                  ? "one kind per chain entry: make each of stale, static and upstream its own "
                    "\"- \" item"
                  : expected + ", got " + describeNode(node));
    return false;
  }
  const MapEntry& e = node.entries.front();
  const std::string epath = childPath(path, e.key);
  if (e.key == "stale") {
    out.kind = FallbackEntry::Kind::Stale;
    parseStale(ctx, e.value, epath, out.stale);
  } else if (e.key == "static") {
    out.kind = FallbackEntry::Kind::Static;
    parseStatic(ctx, e.value, epath, out.static_response);
  } else if (e.key == "upstream") {
    out.kind = FallbackEntry::Kind::Upstream;
    parseUpstreamEntry(ctx, e.value, epath, out);
  } else {
    std::string message = "unknown fallback kind " + quoteText(e.key);
    const std::string hint = closestMatch(e.key, kKinds);
    message += hint.empty() ? " (expected stale, static or upstream)"
                            : " (did you mean " + quoteText(hint) + "?)";
    ctx.error(e.key_line, e.key_column, epath, message);
    return false;
  }
  return true;
}

}  // namespace

void parseFallback(LoadContext& ctx, const Node& node, const std::string& path,
                   const std::string& route_upstream, FallbackConfig& out) {
  MapReader m(ctx, node, path, "fallback", {"on", "chain"});
  if (!m.ok()) {
    return;
  }
  FallbackConfig fc;
  fc.enabled = true;
  if (const Node* on = m.find("on")) {
    parseOn(ctx, *on, m.path("on"), fc.on);
  }
  const Node* chain = m.require("chain");
  if (chain == nullptr || !expectSequence(ctx, *chain, m.path("chain"))) {
    return;
  }
  if (chain->items.empty()) {
    ctx.error(*chain, m.path("chain"),
              "must list at least one entry (stale, static or upstream); leave fallback out for "
              "none");
    return;
  }
  std::map<std::string, std::string> upstreams_seen;  // name -> where first listed
  std::string stale_seen;
  std::string static_seen;
  for (size_t i = 0; i < chain->items.size(); ++i) {
    const Node& item = chain->items[i];
    const std::string item_path = indexPath(m.path("chain"), i);
    FallbackEntry entry;
    if (!parseEntry(ctx, item, item_path, entry)) {
      continue;
    }
    if (!static_seen.empty()) {
      ctx.error(item, item_path,
                "unreachable: " + static_seen + " is a static response, which always answers; "
                "put static last");
      continue;
    }
    switch (entry.kind) {
      case FallbackEntry::Kind::Static:
        static_seen = item_path;
        break;
      case FallbackEntry::Kind::Stale:
        if (!stale_seen.empty()) {
          ctx.error(item, item_path, "a second stale entry never answers (first at " +
                                         stale_seen + ")");
          continue;
        }
        stale_seen = item_path;
        break;
      case FallbackEntry::Kind::Upstream: {
        if (entry.upstream.empty()) {
          break;
        }
        if (entry.upstream == route_upstream) {
          ctx.error(item, item_path,
                    "fallback to the route's own upstream " + quoteText(entry.upstream) +
                        " would loop (retries are the route's \"retry\" block)");
          continue;
        }
        const auto [first, inserted] = upstreams_seen.emplace(entry.upstream, item_path);
        if (!inserted) {
          ctx.error(item, item_path,
                    "upstream " + quoteText(entry.upstream) + " is already tried at " +
                        first->second + " (a chain may not loop)");
          continue;
        }
        break;
      }
    }
    fc.chain.push_back(std::move(entry));
  }
  out = std::move(fc);
}

}  // namespace levee::config::detail
