// Policy loader: top-level sections, cross-validation and the public entry points. Listeners and
// upstreams are in loader_listeners.cc and loader_upstreams.cc; shared readers in loader_context.

#include "config/loader.h"

#include "proxy/common/hash.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include "config/loader_context.h"
#include "config/yaml_reader.h"

namespace levee::config {
namespace {

using detail::BoundAddress;
using detail::LoadContext;
using detail::MapReader;
using detail::quoteText;

constexpr size_t kMaxPolicyFileBytes = 16 * 1024 * 1024;

bool isMetricLabelSafe(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
  });
}

// Reads `address` of the admin/probes block (absent: `address` keeps its default) and records it
// for the conflict check (defaults have no location, line 0).
void readBoundAddress(LoadContext& ctx, const MapReader& m, const std::string& owner,
                      SocketAddress& address) {
  const Node* value = m.find("address");
  if (value == nullptr) {
    ctx.addBoundAddress(BoundAddress{address, owner + " (default address)", 0, 0, ""});
  } else if (m.address("address", /*allow_dns_name=*/false, address)) {
    ctx.addBoundAddress(
        BoundAddress{address, owner, value->line, value->column, m.path("address")});
  }
}

void parseAdmin(LoadContext& ctx, const Node* node, AdminConfig& admin) {
  if (node == nullptr) {
    ctx.addBoundAddress(BoundAddress{admin.address, "admin (default address)", 0, 0, ""});
    return;
  }
  MapReader m(ctx, *node, "admin", "admin", {"address", "token_file"});
  if (m.ok()) {
    readBoundAddress(ctx, m, "admin", admin.address);
  }
  m.string("token_file", admin.token_file);
}

void parseProbes(LoadContext& ctx, const Node* node, ProbesConfig& probes) {
  if (node == nullptr) {
    ctx.addBoundAddress(BoundAddress{probes.address, "probes (default address)", 0, 0, ""});
    return;
  }
  MapReader m(ctx, *node, "probes", "probes", {"address", "ready_requires"});
  if (m.ok()) {
    readBoundAddress(ctx, m, "probes", probes.address);
  }
  const Node* required = m.find("ready_requires");
  const std::string path = m.path("ready_requires");
  if (required == nullptr || !detail::expectSequence(ctx, *required, path)) {
    return;
  }
  // Each name is checked against `upstreams` in crossValidate (any protocol will do).
  std::map<std::string, size_t> seen;  // name -> index of its first listing
  for (size_t i = 0; i < required->items.size(); ++i) {
    const Node& item = required->items[i];
    const std::string item_path = detail::indexPath(path, i);
    std::string name;
    if (!detail::readString(ctx, item, item_path, name)) {
      continue;
    }
    const auto [first, inserted] = seen.emplace(name, i);
    if (!inserted) {
      ctx.error(item, item_path,
                "duplicate upstream " + quoteText(name) + " (first listed at " +
                    detail::indexPath(path, first->second) + ")");
      continue;
    }
    probes.ready_requires.push_back(name);
    ctx.addReference(detail::UpstreamReference{std::move(name), std::nullopt, "ready_requires",
                                               item.line, item.column, item_path});
  }
}

void parseMetrics(LoadContext& ctx, const Node& node, MetricsConfig& metrics) {
  MapReader m(ctx, node, "metrics", "metrics", {"latency_buckets"});
  const Node* buckets = m.find("latency_buckets");
  const std::string path = m.path("latency_buckets");
  if (buckets == nullptr || !detail::expectSequence(ctx, *buckets, path)) {
    return;
  }
  if (buckets->items.empty()) {
    ctx.error(*buckets, path, "must list at least one bucket bound (seconds)");
    return;
  }
  std::vector<double> bounds;
  bool valid = true;
  for (size_t i = 0; i < buckets->items.size(); ++i) {
    const Node& item = buckets->items[i];
    double value = 0;
    if (!detail::readNumber(ctx, item, detail::indexPath(path, i), value)) {
      valid = false;
      continue;
    }
    if (value <= 0) {
      ctx.error(item, detail::indexPath(path, i),
                "bucket bounds must be positive (seconds), got " + item.scalar);
      valid = false;
    } else if (!bounds.empty() && value <= bounds.back()) {
      ctx.error(item, detail::indexPath(path, i),
                "bucket bounds must be strictly increasing, got " + item.scalar + " after " +
                    buckets->items[i - 1].scalar);
      valid = false;
    }
    bounds.push_back(value);
  }
  if (valid) {
    metrics.latency_buckets = std::move(bounds);
  }
}

void parseAccessLog(LoadContext& ctx, const Node& node, AccessLogConfig& access_log) {
  MapReader m(ctx, node, "access_log", "access_log", {"path", "format"});
  m.string("path", access_log.path);
  enum class Format { Json };
  Format format = Format::Json;
  m.choice("format", {{"json", Format::Json}}, format);
}

void parseDrain(LoadContext& ctx, const Node& node, DrainConfig& drain) {
  MapReader m(ctx, node, "drain", "drain", {"delay", "grace"});
  m.duration("delay", drain.delay);
  m.duration("grace", drain.grace);
  if (m.ok() && drain.delay > drain.grace) {
    const Node* at = m.find("delay");
    ctx.error(at != nullptr ? *at : node, m.path("delay"),
              "the drain delay (" + std::to_string(drain.delay.count()) +
                  "ms) must not exceed the grace period (" + std::to_string(drain.grace.count()) +
                  "ms)");
  }
}

Policy parsePolicy(LoadContext& ctx, const Node& root) {
  Policy policy;
  if (root.isNull()) {
    ctx.error(1, 1, "",
              "the policy is empty (expected at least \"version\", \"service\" and "
              "\"listeners\")");
    return policy;
  }
  MapReader top(ctx, root, "", "policy",
                {"version", "service", "admin", "probes", "listeners", "upstreams", "metrics",
                 "access_log", "drain", "companion"});
  if (!top.ok()) {
    return policy;
  }
  if (const Node* version = top.require("version")) {
    uint64_t value = 0;
    if (detail::readUint(ctx, *version, "version", 0, std::numeric_limits<uint64_t>::max(),
                         value)) {
      if (value != 1) {
        ctx.error(
            *version, "version",
            "unsupported policy version " + version->scalar + " (this build reads version 1)");
      }
    }
  }
  if (const Node* service = top.require("service")) {
    if (detail::readString(ctx, *service, "service", policy.service) &&
        !isMetricLabelSafe(policy.service)) {
      ctx.error(*service, "service",
                "must match [a-zA-Z0-9_.-]+ (it is a label on every metric), got " +
                    quoteText(policy.service));
    }
  }
  parseAdmin(ctx, top.find("admin"), policy.admin);
  parseProbes(ctx, top.find("probes"), policy.probes);
  if (const Node* listeners = top.require("listeners")) {
    detail::parseListeners(ctx, *listeners, "listeners", policy.listeners);
  }
  if (const Node* upstreams = top.find("upstreams")) {
    detail::parseUpstreams(ctx, *upstreams, "upstreams", policy.upstreams);
  }
  if (const Node* metrics = top.find("metrics")) {
    parseMetrics(ctx, *metrics, policy.metrics);
  }
  if (const Node* access_log = top.find("access_log")) {
    parseAccessLog(ctx, *access_log, policy.access_log);
  }
  if (const Node* drain = top.find("drain")) {
    parseDrain(ctx, *drain, policy.drain);
  }
  if (const Node* companion = top.find("companion")) {
    detail::parseCompanion(ctx, *companion, "companion", policy.companion);
  }
  return policy;
}

std::string_view protocolName(UpstreamProtocol protocol) {
  switch (protocol) {
    case UpstreamProtocol::Http1:
      return "http1";
    case UpstreamProtocol::Http2:
      return "http2";
    case UpstreamProtocol::Tcp:
      return "tcp";
  }
  return "?";
}

// Two listening sockets collide on the same port when the hosts are equal or one is a wildcard
// ("::" also takes IPv4 on a dual-stack host).
bool addressesCollide(const SocketAddress& a, const SocketAddress& b) {
  if (a.port != b.port) {
    return false;
  }
  const bool a_v6 = a.host.find(':') != std::string::npos;
  const bool b_v6 = b.host.find(':') != std::string::npos;
  if (a.host == b.host || a.host == "::" || b.host == "::") {
    return true;
  }
  return !a_v6 && !b_v6 && (a.host == "0.0.0.0" || b.host == "0.0.0.0");
}

// Second pass (STYLE B.5 "cross_validate"): references between sections and combinations.
// `upstreams_usable` is false when the upstreams section itself is broken (not a mapping): then
// every reference would be "unknown", which only buries the real error.
void crossValidate(LoadContext& ctx, const Policy& policy, bool upstreams_usable) {
  for (const detail::UpstreamReference& ref : ctx.references()) {
    if (!upstreams_usable) {
      break;
    }
    const auto it = policy.upstreams.find(ref.name);
    if (it == policy.upstreams.end()) {
      std::string known;
      for (const auto& [name, upstream] : policy.upstreams) {
        known += known.empty() ? "" : ", ";
        known += quoteText(name);
      }
      ctx.crossError(ref.line, ref.column, ref.path,
                     "unknown upstream " + quoteText(ref.name) +
                         (known.empty() ? std::string(" (no upstreams are defined)")
                                        : " (known upstreams: " + known + ")"));
      continue;
    }
    if (ref.required.has_value() && it->second.protocol != *ref.required) {
      ctx.crossError(
          ref.line, ref.column, ref.path,
          "upstream " + quoteText(ref.name) + " has protocol " +
              std::string(protocolName(it->second.protocol)) + ", but a " + ref.used_by +
              " needs an upstream with protocol: " + std::string(protocolName(*ref.required)));
    }
  }
  const std::vector<BoundAddress>& bound = ctx.boundAddresses();
  for (size_t i = 0; i < bound.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (!addressesCollide(bound[i].address, bound[j].address)) {
        continue;
      }
      // Report at whichever comes later in the file; defaults (line 0) never come later.
      const bool i_later =
          std::tie(bound[i].line, bound[i].column) >= std::tie(bound[j].line, bound[j].column);
      const BoundAddress& at = i_later ? bound[i] : bound[j];
      const BoundAddress& other = i_later ? bound[j] : bound[i];
      std::string where = other.owner;
      if (other.line > 0) {
        where += " at line " + std::to_string(other.line);
      }
      ctx.crossError(at.line, at.column, at.path,
                     "address " + at.address.toString() + " conflicts with " +
                         other.address.toString() + " of " + where);
    }
  }
}

}  // namespace

std::expected<Policy, Errors> loadPolicyString(std::string_view yaml,
                                               const std::string& file_name) {
  auto root = parseYaml(yaml, file_name);
  if (!root) {
    return std::unexpected(Errors{std::move(root).error()});
  }
  LoadContext ctx(file_name);
  Policy policy = parsePolicy(ctx, *root);
  const Node* upstreams = root->isMap() ? detail::findValue(*root, "upstreams") : nullptr;
  crossValidate(ctx, policy, upstreams == nullptr || upstreams->isMap());
  Errors errors = ctx.takeErrors();
  if (!errors.empty()) {
    return std::unexpected(std::move(errors));
  }
  policy.source_file = file_name;
  policy.content_hash = fnv1a64(yaml);
  return policy;
}

std::expected<Policy, Errors> loadPolicyFile(const std::string& path) {
  const auto fail = [&](std::string message) {
    return std::unexpected(Errors{Error{std::move(message), path, 0, 0, ""}});
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return fail("cannot read policy file: is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(std::string("cannot read policy file: ") + std::strerror(errno));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return fail(std::string("cannot read policy file: ") + std::strerror(errno));
  }
  const std::string bytes = std::move(buffer).str();
  if (bytes.size() > kMaxPolicyFileBytes) {
    return fail("policy file is larger than 16 MiB");
  }
  return loadPolicyString(bytes, path);
}

std::string formatErrors(const Errors& errors) {
  std::string out;
  for (const Error& error : errors) {
    out += error.toString();
    out += '\n';
  }
  return out;
}

}  // namespace levee::config
