// `companion.backup` (DESIGN sections 5 and 8). The rest of `companion` is in
// loader_companion.cc.

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "config/loader_context.h"
#include "proxy/common/cron.h"

namespace levee::config::detail {
namespace {

// Database names become command-line arguments and parts of new database names on restore.
bool isSafeDatabaseName(std::string_view s) {
  return !s.empty() && s.size() <= 48 && std::ranges::all_of(s, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
}

void parseStringList(LoadContext& ctx, const Node& node, const std::string& path,
                     std::string_view what, bool (*valid)(std::string_view), std::string_view rule,
                     std::vector<std::string>& out) {
  if (!expectSequence(ctx, node, path)) {
    return;
  }
  if (node.items.empty()) {
    ctx.error(node, path, "must list at least one " + std::string(what));
    return;
  }
  for (size_t i = 0; i < node.items.size(); ++i) {
    std::string value;
    const std::string item_path = indexPath(path, i);
    if (!readString(ctx, node.items[i], item_path, value)) {
      continue;
    }
    if (!valid(value)) {
      ctx.error(node.items[i], item_path, std::string(rule) + ", got " + quoteText(value));
    } else if (std::ranges::find(out, value) != out.end()) {
      ctx.error(node.items[i], item_path, "duplicate " + std::string(what) + " " + quoteText(value));
    } else {
      out.push_back(std::move(value));
    }
  }
}

bool isAbsolutePath(std::string_view s) {
  return s.size() > 1 && s.front() == '/' && s.find('\0') == std::string_view::npos;
}

bool isEnvName(std::string_view s) {
  return !s.empty() && s.size() <= 128 && std::isdigit(static_cast<unsigned char>(s.front())) == 0 &&
         std::ranges::all_of(s, [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; });
}

// One credential: exactly one of `<name>_file` (absolute path) and `<name>_env` (a variable name).
void parseCredential(LoadContext& ctx, const MapReader& m, const std::string& name, std::string& file,
                     std::string& env) {
  const std::string file_key = name + "_file";
  const std::string env_key = name + "_env";
  const Node* f = m.find(file_key);
  const Node* e = m.find(env_key);
  if (f == nullptr && e == nullptr) {
    ctx.error(m.node(), m.path(), "missing " + file_key + " or " + env_key +
                                      " (secrets are read from a file or an environment variable, never the YAML)");
    return;
  }
  if (f != nullptr && e != nullptr) {
    ctx.error(*e, m.path(env_key), "give only one of " + file_key + " and " + env_key);
    return;
  }
  if (f != nullptr && m.string(file_key, file) && !isAbsolutePath(file)) {
    ctx.error(*f, m.path(file_key), "expected an absolute file path, got " + quoteText(file));
  }
  if (e != nullptr && m.string(env_key, env) && !isEnvName(env)) {
    ctx.error(*e, m.path(env_key), "expected an environment variable name [A-Za-z_][A-Za-z0-9_]*, got " + quoteText(env));
  }
}

void parseTargets(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out) {
  MapReader m(ctx, node, path, "backup_targets", {"postgres", "redis", "files"});
  if (!m.ok()) {
    return;
  }
  if (m.find("postgres") == nullptr && m.find("redis") == nullptr && m.find("files") == nullptr) {
    ctx.error(node, path, "must name at least one of postgres, redis, files");
  }
  if (const Node* pg = m.find("postgres")) {
    MapReader p(ctx, *pg, m.path("postgres"), "backup_postgres", {"dsn", "databases"});
    if (p.require("dsn") != nullptr) {
      p.string("dsn", out.postgres_dsn);
    }
    if (const Node* dbs = p.require("databases")) {
      parseStringList(ctx, *dbs, p.path("databases"), "database", &isSafeDatabaseName,
                      "database names must match [A-Za-z0-9_-]{1,48}", out.postgres_databases);
    }
  }
  if (const Node* redis = m.find("redis")) {
    MapReader r(ctx, *redis, m.path("redis"), "backup_redis",
                {"address", "restore_bind", "username", "password_file", "password_env"});
    if (r.require("address") != nullptr &&
        r.address("address", /*allow_dns_name=*/true, out.redis_address)) {
      out.redis_enabled = true;
    }
    if (const Node* bind = r.find("restore_bind")) {
      in6_addr ip6{};
      in_addr ip4{};
      if (r.string("restore_bind", out.redis_restore_bind) &&
          inet_pton(AF_INET, out.redis_restore_bind.c_str(), &ip4) != 1 &&
          inet_pton(AF_INET6, out.redis_restore_bind.c_str(), &ip6) != 1) {
        ctx.error(*bind, r.path("restore_bind"),
                  "expected an IP address of this host, got " + quoteText(out.redis_restore_bind));
        out.redis_restore_bind.clear();
      }
    }
    if (r.find("password_file") != nullptr || r.find("password_env") != nullptr) {
      parseCredential(ctx, r, "password", out.redis_password_file, out.redis_password_env);
    }
    if (const Node* user = r.find("username")) {
      if (r.string("username", out.redis_username) &&
          (out.redis_username.empty() ||
           std::ranges::any_of(out.redis_username, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }))) {
        ctx.error(*user, r.path("username"), "expected a Redis user name without spaces, got " + quoteText(out.redis_username));
      } else if (out.redis_password_file.empty() && out.redis_password_env.empty()) {
        ctx.error(*user, r.path("username"), "username needs password_file or password_env");
      }
    }
  }
  if (const Node* files = m.find("files")) {
    MapReader f(ctx, *files, m.path("files"), "backup_files", {"paths"});
    if (const Node* paths = f.require("paths")) {
      parseStringList(ctx, *paths, f.path("paths"), "path", &isAbsolutePath,
                      "expected an absolute directory path", out.file_paths);
    }
  }
}

// Replication slot names: lower-case letters, digits and underscores (PostgreSQL's rule).
bool isValidSlotName(std::string_view s) {
  return !s.empty() && s.size() <= 63 && std::ranges::all_of(s, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void parseWalArchive(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out) {
  MapReader m(ctx, node, path, "backup_wal_archive",
              {"enabled", "dsn", "slot", "dir", "restart_backoff", "max_restart_backoff", "status_interval",
               "synchronous", "partial_upload_interval"});
  if (!m.ok()) {
    return;
  }
  WalArchiveConfig& w = out.wal_archive;
  w.enabled = true;
  m.boolean("enabled", w.enabled);
  m.string("dsn", w.dsn);
  if (const Node* slot = m.find("slot")) {
    if (m.string("slot", w.slot) && !isValidSlotName(w.slot)) {
      ctx.error(*slot, m.path("slot"), "slot names must match [a-z0-9_]{1,63}, got " + quoteText(w.slot));
    }
  }
  if (const Node* dir = m.find("dir")) {
    if (m.string("dir", w.dir) && !isAbsolutePath(w.dir)) {
      ctx.error(*dir, m.path("dir"), "expected an absolute directory path, got " + quoteText(w.dir));
    }
  }
  positiveDuration(ctx, m, "restart_backoff", w.restart_backoff);
  positiveDuration(ctx, m, "max_restart_backoff", w.max_restart_backoff);
  positiveDuration(ctx, m, "status_interval", w.status_interval);
  m.boolean("synchronous", w.synchronous);
  if (const Node* partial = m.find("partial_upload_interval")) {
    if (m.duration("partial_upload_interval", w.partial_upload_interval) && !out.s3.enabled) {
      ctx.error(*partial, m.path("partial_upload_interval"),
                "only applies with companion.backup.s3 (the .partial segment is uploaded to the bucket)");
    }
  }
  if (w.max_restart_backoff < w.restart_backoff) {
    ctx.error(m.find("max_restart_backoff") != nullptr ? *m.find("max_restart_backoff") : node,
              m.path("max_restart_backoff"), "must be at least restart_backoff (" +
                                                 durationText(w.restart_backoff) + ")");
  }
  if (w.enabled && w.dsn.empty()) {
    if (out.postgres_dsn.empty()) {
      ctx.error(node, m.path("dsn"), "missing required key \"dsn\" (or set targets.postgres.dsn)");
    }
    w.dsn = out.postgres_dsn;
  }
  if (w.enabled && w.dir.empty() && !out.dir.empty()) {
    w.dir = out.dir + "/wal";
  }
  if (!w.enabled) {
    w = WalArchiveConfig{};
  }
}

// === companion.backup.s3 ===

bool isValidEndpoint(std::string_view e) {
  std::string_view rest;
  if (e.starts_with("http://")) {
    rest = e.substr(7);
  } else if (e.starts_with("https://")) {
    rest = e.substr(8);
  } else {
    return false;
  }
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  size_t port_at = rest.size();
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    port_at = close + 1;
  } else if (const size_t colon = rest.find(':'); colon != std::string_view::npos) {
    port_at = colon;
  }
  std::string_view host = rest.substr(0, port_at);
  std::string_view port = rest.substr(port_at);
  const bool host_ok = !host.empty() && host.size() <= 253 && std::ranges::all_of(host, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '[' || c == ']' || c == ':';
  });
  if (!host_ok) {
    return false;
  }
  if (port.empty()) {
    return true;
  }
  uint32_t n = 0;
  auto [p, ec] = std::from_chars(port.data() + 1, port.data() + port.size(), n);
  return port.size() > 1 && ec == std::errc() && p == port.data() + port.size() && n > 0 && n < 65536;
}

bool isValidBucket(std::string_view b) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return b.size() >= 3 && b.size() <= 63 && alnum(b.front()) && alnum(b.back()) &&
         std::ranges::all_of(b, [&](char c) { return alnum(c) || c == '.' || c == '-'; });
}

// Object key prefixes: printable ASCII without backslash, no empty or dot segments.
bool isValidPrefix(std::string_view p) {
  if (p.size() > 512 || p.starts_with("/")) {
    return false;
  }
  size_t start = 0;
  while (start < p.size()) {
    size_t end = p.find('/', start);
    std::string_view seg = p.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if ((seg.empty() && end != std::string_view::npos) || seg == "." || seg == "..") {
      return false;
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return std::ranges::all_of(p, [](char c) { return c > 0x20 && c < 0x7f && c != '\\'; });
}

void parseS3(LoadContext& ctx, const Node& node, const std::string& path, BackupS3Config& out) {
  MapReader m(ctx, node, path, "backup_s3",
              {"endpoint", "bucket", "prefix", "region", "access_key_id_file", "access_key_id_env",
               "secret_access_key_file", "secret_access_key_env", "tls", "connect_timeout", "stall_timeout",
               "keep_local", "multipart_part_size"});
  if (!m.ok()) {
    return;
  }
  out.enabled = true;
  if (const Node* endpoint = m.require("endpoint")) {
    if (m.string("endpoint", out.endpoint) && !isValidEndpoint(out.endpoint)) {
      ctx.error(*endpoint, m.path("endpoint"),
                "expected http://host[:port] or https://host[:port] (no path), got " + quoteText(out.endpoint));
    }
    while (out.endpoint.ends_with('/')) {
      out.endpoint.pop_back();
    }
  }
  if (const Node* bucket = m.require("bucket")) {
    if (m.string("bucket", out.bucket) && !isValidBucket(out.bucket)) {
      ctx.error(*bucket, m.path("bucket"),
                "bucket names must match [a-z0-9.-]{3,63}, starting and ending with a letter or digit, got " +
                    quoteText(out.bucket));
    }
  }
  if (const Node* prefix = m.find("prefix")) {
    if (m.string("prefix", out.prefix)) {
      if (!isValidPrefix(out.prefix)) {
        ctx.error(*prefix, m.path("prefix"),
                  "expected a key prefix like \"levee/prod/\" (printable ASCII, no leading '/', no empty, '.' or "
                  "'..' segments), got " + quoteText(out.prefix));
      } else if (!out.prefix.empty() && !out.prefix.ends_with('/')) {
        out.prefix += '/';
      }
    }
  }
  if (const Node* region = m.find("region")) {
    if (m.string("region", out.region) &&
        (out.region.empty() || out.region.size() > 64 || !std::ranges::all_of(out.region, [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
        }))) {
      ctx.error(*region, m.path("region"), "expected a region name like us-east-1, got " + quoteText(out.region));
    }
  }
  parseCredential(ctx, m, "access_key_id", out.access_key_id_file, out.access_key_id_env);
  parseCredential(ctx, m, "secret_access_key", out.secret_access_key_file, out.secret_access_key_env);
  if (const Node* tls = m.find("tls")) {
    MapReader t(ctx, *tls, m.path("tls"), "backup_s3_tls", {"verify", "ca_file"});
    t.boolean("verify", out.tls_verify);
    if (const Node* ca = t.find("ca_file")) {
      if (t.string("ca_file", out.tls_ca_file) && !isAbsolutePath(out.tls_ca_file)) {
        ctx.error(*ca, t.path("ca_file"), "expected an absolute file path, got " + quoteText(out.tls_ca_file));
      }
    }
    if (t.ok() && out.endpoint.starts_with("http://")) {
      ctx.error(*tls, m.path("tls"), "the endpoint is http:// (no TLS): use an https:// endpoint or remove tls");
    }
  }
  positiveDuration(ctx, m, "connect_timeout", out.connect_timeout);
  if (positiveDuration(ctx, m, "stall_timeout", out.stall_timeout) && out.stall_timeout < std::chrono::seconds(1)) {
    ctx.error(*m.find("stall_timeout"), m.path("stall_timeout"), "must be at least 1s");
  }
  m.boolean("keep_local", out.keep_local);
  if (const Node* part = m.find("multipart_part_size")) {
    // S3's limits: parts of 5 MiB (all but the last) to 5 GiB.
    if (m.byteSize("multipart_part_size", uint64_t{5} << 30, out.multipart_part_size) &&
        out.multipart_part_size < (uint64_t{5} << 20)) {
      ctx.error(*part, m.path("multipart_part_size"), "must be at least 5MiB (S3's smallest part)");
    }
  }
}

}  // namespace

void parseBackup(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out) {
  MapReader m(ctx, node, path, "backup", {"dir", "targets", "retention", "schedule", "wal_archive", "s3"});
  if (!m.ok()) {
    return;
  }
  out.enabled = true;
  if (const Node* dir = m.require("dir")) {
    if (m.string("dir", out.dir) && !isAbsolutePath(out.dir)) {
      ctx.error(*dir, m.path("dir"), "expected an absolute directory path, got " + quoteText(out.dir));
    }
  }
  if (const Node* targets = m.require("targets")) {
    parseTargets(ctx, *targets, m.path("targets"), out);
  }
  if (const Node* retention = m.find("retention")) {
    MapReader r(ctx, *retention, m.path("retention"), "backup_retention", {"daily", "weekly", "monthly"});
    r.uint32("daily", 1, 10000, out.retention_daily);
    r.uint32("weekly", 1, 10000, out.retention_weekly);
    r.uint32("monthly", 1, 10000, out.retention_monthly);
  }
  if (const Node* s3 = m.find("s3")) {
    parseS3(ctx, *s3, m.path("s3"), out.s3);
  }
  if (const Node* schedule = m.find("schedule")) {
    if (m.string("schedule", out.schedule)) {
      auto parsed = common::CronSchedule::parse(out.schedule);
      if (!parsed) {
        ctx.error(*schedule, m.path("schedule"), "invalid cron expression: " + parsed.error().message);
        out.schedule.clear();
      } else if (!parsed->next(std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()))) {
        ctx.error(*schedule, m.path("schedule"), "the cron expression never matches a date");
      }
    }
  }
  if (const Node* wal = m.find("wal_archive")) {  // after targets: its dsn defaults to theirs
    parseWalArchive(ctx, *wal, m.path("wal_archive"), out);  // after s3: the archive uploads to it
    if (out.wal_archive.enabled) {
      out.wal_archive.s3 = out.s3;
    }
  }
}

}  // namespace levee::config::detail
