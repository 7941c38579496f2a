// The `companion:` section (DESIGN section 8) and the upstream key `endpoints_from`, which
// follows the companion's view of a PostgreSQL cluster. `companion.backup` is parsed elsewhere
// (or rejected as not supported yet by this build).

#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>

#include "config/loader_context.h"
#include "config/units.h"

namespace levee::config::detail {
std::optional<std::string> dsnTcpAddress(std::string_view dsn, SocketAddress& out) {
  std::string host;
  std::string hostaddr;
  std::string port = "5432";
  size_t i = 0;
  const auto skipSpace = [&] {
    while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i])) != 0) {
      ++i;
    }
  };
  if (dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
    return "use the keyword/value form (\"host=127.0.0.1 port=5432 user=postgres\"), not a URI";
  }
  while (true) {
    skipSpace();
    if (i >= dsn.size()) {
      break;
    }
    const size_t key_start = i;
    while (i < dsn.size() && dsn[i] != '=' && std::isspace(static_cast<unsigned char>(dsn[i])) == 0) {
      ++i;
    }
    const std::string key(dsn.substr(key_start, i - key_start));
    skipSpace();
    if (i >= dsn.size() || dsn[i] != '=') {
      return "expected keyword=value after " + quoteText(key);
    }
    ++i;
    skipSpace();
    std::string value;
    if (i < dsn.size() && dsn[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < dsn.size()) {
        if (dsn[i] == '\\' && i + 1 < dsn.size()) {
          value += dsn[i + 1];
          i += 2;
        } else if (dsn[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          value += dsn[i++];
        }
      }
      if (!closed) {
        return "unterminated quoted value of " + quoteText(key);
      }
    } else {
      while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i])) == 0) {
        value += dsn[i++];
      }
    }
    if (key == "host") {
      host = value;
    } else if (key == "hostaddr") {
      hostaddr = value;
    } else if (key == "port") {
      port = value;
    }
  }
  const std::string& h = hostaddr.empty() ? host : hostaddr;
  if (h.empty()) {
    return "needs host= (or hostaddr=) with an IP address: the L4 route connects there";
  }
  if (h.find(',') != std::string::npos || port.find(',') != std::string::npos) {
    return "lists several hosts; name one host per member";
  }
  if (h.front() == '/' || h.front() == '@') {
    return "host " + quoteText(h) + " is a Unix socket; the L4 route needs a TCP address";
  }
  auto parsed = parseSocketAddress(
      (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port, /*allow_dns_name=*/false);
  if (!parsed) {
    return parsed.error().message + " (from host/hostaddr and port; an IP address is needed)";
  }
  out = *parsed;
  return std::nullopt;
}

namespace {

void parseMember(LoadContext& ctx, const Node& node, const std::string& path, FailoverMember& out,
                 bool& valid) {
  MapReader m(ctx, node, path, "failover_member", {"name", "dsn"});
  if (!m.ok()) {
    valid = false;
    return;
  }
  const Node* name = m.require("name");
  const Node* dsn = m.require("dsn");
  valid = name != nullptr && dsn != nullptr;
  if (name != nullptr && m.string("name", out.name) && !isMetricLabelSafe(out.name)) {
    ctx.error(*name, m.path("name"),
              "must match [a-zA-Z0-9_.-]+ (it is a metric label), got " + quoteText(out.name));
    valid = false;
  }
  if (dsn != nullptr && m.string("dsn", out.dsn)) {
    if (auto err = dsnTcpAddress(out.dsn, out.address)) {
      ctx.error(*dsn, m.path("dsn"), "the DSN " + *err);
      valid = false;
    }
  } else {
    valid = false;
  }
}

void parseMembers(LoadContext& ctx, const Node& node, const std::string& path,
                  std::vector<FailoverMember>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.size() < 2) {
    ctx.error(node, path, "failover needs at least two members (a primary and a replica)");
  }
  for (size_t i = 0; i < node.items.size(); ++i) {
    FailoverMember member;
    bool valid = true;
    const std::string member_path = indexPath(path, i);
    parseMember(ctx, node.items[i], member_path, member, valid);
    if (!valid) {
      out.push_back(std::move(member));
      continue;
    }
    for (size_t j = 0; j < out.size(); ++j) {
      if (out[j].name == member.name) {
        ctx.error(*findValue(node.items[i], "name"), childPath(member_path, "name"),
                  "duplicate member name " + quoteText(member.name) + " (first listed at " +
                      indexPath(path, j) + ")");
        break;
      }
      if (out[j].address == member.address) {
        ctx.error(*findValue(node.items[i], "dsn"), childPath(member_path, "dsn"),
                  "member address " + member.address.toString() + " is also " +
                      indexPath(path, j) + "'s");
        break;
      }
    }
    out.push_back(std::move(member));
  }
}

// "http://host:port" or "https://host:port" (a trailing "/" is dropped). Returns an error
// message, or empty.
std::string checkEtcdEndpoint(std::string& url) {
  const size_t scheme = url.starts_with("http://") ? 7 : url.starts_with("https://") ? 8 : 0;
  if (scheme == 0) {
    return "expected http://host:port or https://host:port, got " + quoteText(url);
  }
  if (url.ends_with("/")) {
    url.pop_back();
  }
  const std::string_view authority = std::string_view(url).substr(scheme);
  const size_t colon = authority.rfind(':');
  if (authority.empty() || authority.find_first_of("/?#@ ") != std::string_view::npos ||
      colon == std::string_view::npos || colon == 0) {
    return "expected " + url.substr(0, scheme) + "host:port (no path, no credentials), got " + quoteText(url);
  }
  const std::string_view port = authority.substr(colon + 1);
  uint32_t n = 0;
  if (port.empty() || port.size() > 5 || !std::ranges::all_of(port, [](char c) { return c >= '0' && c <= '9'; }) ||
      (n = static_cast<uint32_t>(std::stoul(std::string(port)))) == 0 || n > 65535) {
    return "expected a port in [1,65535] in " + quoteText(url);
  }
  return "";
}

// `lease.tls: { ca_file, cert_file, key_file, verify }`, for https:// endpoints.
// `https_listed`: an endpoint (valid or not) starts with https://.
void parseEtcdTls(LoadContext& ctx, const Node& node, const std::string& path, bool https_listed,
                  PostgresFailoverConfig& out) {
  MapReader t(ctx, node, path, "lease_tls", {"ca_file", "cert_file", "key_file", "verify"});
  if (!t.ok()) {
    return;
  }
  if (!https_listed) {
    ctx.error(node, path, "tls applies to https:// endpoints and none is listed");
  }
  for (auto [key, field] : {std::pair{"ca_file", &out.lease_tls_ca_file}, std::pair{"cert_file", &out.lease_tls_cert_file},
                            std::pair{"key_file", &out.lease_tls_key_file}}) {
    if (const Node* f = t.find(key); f != nullptr && t.string(key, *field) &&
                                     (field->size() < 2 || field->front() != '/')) {
      ctx.error(*f, t.path(key), "expected an absolute file path, got " + quoteText(*field));
    }
  }
  if (out.lease_tls_cert_file.empty() != out.lease_tls_key_file.empty()) {
    const char* given = out.lease_tls_cert_file.empty() ? "key_file" : "cert_file";
    ctx.error(*t.find(given), t.path(given), "cert_file and key_file go together (the client certificate and its key)");
  }
  if (t.find("verify") != nullptr) {
    t.boolean("verify", out.lease_tls_verify);
  }
}

void parseEtcdLease(LoadContext& ctx, const MapReader& m, PostgresFailoverConfig& out) {
  bool https_listed = false;
  if (const Node* eps = m.require("endpoints"); eps != nullptr && expectSequence(ctx, *eps, m.path("endpoints"))) {
    if (eps->items.empty()) {
      ctx.error(*eps, m.path("endpoints"), "needs at least one etcd endpoint (http(s)://host:port)");
    }
    for (size_t i = 0; i < eps->items.size(); ++i) {
      const Node& item = eps->items[i];
      if (!item.isScalar()) {
        ctx.error(item, indexPath(m.path("endpoints"), i), "expected http(s)://host:port, got " + describeNode(item));
        continue;
      }
      std::string url = item.scalar;
      https_listed = https_listed || url.starts_with("https://");
      if (std::string err = checkEtcdEndpoint(url); !err.empty()) {
        ctx.error(item, indexPath(m.path("endpoints"), i), err);
        continue;
      }
      out.lease_endpoints.push_back(std::move(url));
    }
  }
  if (const Node* key = m.require("key"); key != nullptr && m.string("key", out.lease_key)) {
    if (out.lease_key.size() > 1024) {
      ctx.error(*key, m.path("key"), "expected an etcd key of at most 1024 bytes");
    }
  }
  if (const Node* ttl = m.find("ttl"); ttl != nullptr && m.duration("ttl", out.lease_ttl)) {
    if (out.lease_ttl < Duration(2000) || out.lease_ttl > Duration(300000)) {
      ctx.error(*ttl, m.path("ttl"), "expected a duration in [2s,5m], got " + durationText(out.lease_ttl));
    } else if (out.lease_ttl.count() % 1000 != 0) {
      ctx.error(*ttl, m.path("ttl"), "etcd lease TTLs are whole seconds, got " + durationText(out.lease_ttl));
    }
  }
  if (const Node* tls = m.find("tls")) {
    parseEtcdTls(ctx, *tls, m.path("tls"), https_listed, out);
  }
}

void parseLease(LoadContext& ctx, const Node& node, const std::string& path,
                PostgresFailoverConfig& out) {
  MapReader m(ctx, node, path, "lease", {"backend", "endpoints", "key", "ttl", "tls"});
  if (!m.ok() || m.require("backend") == nullptr ||
      !m.choice("backend",
                {{"none", PostgresFailoverConfig::LeaseBackend::None},
                 {"etcd", PostgresFailoverConfig::LeaseBackend::Etcd}},
                out.lease_backend)) {
    return;
  }
  if (out.lease_backend == PostgresFailoverConfig::LeaseBackend::Etcd) {
    parseEtcdLease(ctx, m, out);
    return;
  }
  for (std::string_view key : {"endpoints", "key", "ttl", "tls"}) {
    if (const Node* n = m.find(key)) {
      ctx.error(*n, m.path(key), "only for backend: etcd (backend none needs no settings)");
    }
  }
}

void parsePostgresFailover(LoadContext& ctx, const Node& node, const std::string& path,
                           PostgresFailoverConfig& out) {
  MapReader m(ctx, node, path, "failover_postgres",
              {"members", "check_interval", "check_timeout", "failure_threshold", "max_lag",
               "lease", "auto_failover"});
  if (!m.ok()) {
    return;
  }
  out.enabled = true;
  if (const Node* members = m.require("members")) {
    parseMembers(ctx, *members, m.path("members"), out.members);
  }
  positiveDuration(ctx, m, "check_interval", out.check_interval);
  positiveDuration(ctx, m, "check_timeout", out.check_timeout);
  optionalUint(m, "failure_threshold", 1, 100, out.failure_threshold);
  if (m.find("max_lag") != nullptr) {
    m.byteSize("max_lag", uint64_t{1} << 50, out.max_lag);
  }
  if (const Node* lease = m.find("lease")) {
    parseLease(ctx, *lease, m.path("lease"), out);
  }
  m.boolean("auto_failover", out.auto_failover);
}

}  // namespace

void parseCompanion(LoadContext& ctx, const Node& node, CompanionConfig& out) {
  MapReader m(ctx, node, "companion", "companion", {"failover", "backup"});
  if (const Node* backup = m.find("backup")) {
    parseBackup(ctx, *backup, m.path("backup"), out.backup);
  }
  const Node* failover = m.find("failover");
  if (failover == nullptr) {
    return;
  }
  MapReader f(ctx, *failover, m.path("failover"), "failover", {"postgres"});
  if (const Node* pg = f.find("postgres")) {
    parsePostgresFailover(ctx, *pg, f.path("postgres"), out.failover_postgres);
  }
}

void parseEndpointsFrom(LoadContext& ctx, const Node& node, const std::string& path,
                        EndpointsFrom& out) {
  MapReader m(ctx, node, path, "endpoints_from", {"failover", "role"});
  if (!m.ok()) {
    return;
  }
  enum class Source { Postgres };
  Source source = Source::Postgres;
  if (m.require("failover") != nullptr) {
    m.choice("failover", {{"postgres", Source::Postgres}}, source);
  }
  if (m.require("role") != nullptr) {
    m.choice("role", {{"primary", EndpointsFrom::Role::Primary},
                      {"replica", EndpointsFrom::Role::Replica}},
             out.role);
  }
}

void crossValidateCompanion(LoadContext& ctx, const Node& root, const Policy& policy) {
  if (policy.companion.failover_postgres.enabled || !root.isMap()) {
    return;
  }
  const Node* upstreams = findValue(root, "upstreams");
  if (upstreams == nullptr || !upstreams->isMap()) {
    return;
  }
  for (const MapEntry& entry : upstreams->entries) {
    const Node* from = entry.value.isMap() ? findValue(entry.value, "endpoints_from") : nullptr;
    if (from != nullptr) {
      ctx.crossError(from->line, from->column,
                     childPath(childPath("upstreams", entry.key), "endpoints_from"),
                     "endpoints_from: { failover: postgres } needs a companion.failover.postgres "
                     "section (the members it follows)");
    }
  }
}

}  // namespace levee::config::detail
