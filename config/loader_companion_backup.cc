// `companion.backup` (DESIGN sections 5 and 8); backup's `s3` and `wal_archive` are in the
// not-supported-yet table. The rest of `companion` is in loader_companion.cc.

#include <arpa/inet.h>

#include <algorithm>

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
    MapReader r(ctx, *redis, m.path("redis"), "backup_redis", {"address", "restore_bind"});
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
  }
  if (const Node* files = m.find("files")) {
    MapReader f(ctx, *files, m.path("files"), "backup_files", {"paths"});
    if (const Node* paths = f.require("paths")) {
      parseStringList(ctx, *paths, f.path("paths"), "path", &isAbsolutePath,
                      "expected an absolute directory path", out.file_paths);
    }
  }
}

}  // namespace

void parseBackup(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out) {
  MapReader m(ctx, node, path, "backup", {"dir", "targets", "retention", "schedule"});
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
}

}  // namespace levee::config::detail
