// `companion.backup` (DESIGN sections 5 and 8); backup's `s3` is in the not-supported-yet
// table. The rest of `companion` is in loader_companion.cc.

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
    MapReader r(ctx, *redis, m.path("redis"), "backup_redis", {"address"});
    if (r.require("address") != nullptr &&
        r.address("address", /*allow_dns_name=*/true, out.redis_address)) {
      out.redis_enabled = true;
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
               "synchronous"});
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

}  // namespace

void parseBackup(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out) {
  MapReader m(ctx, node, path, "backup", {"dir", "targets", "retention", "schedule", "wal_archive"});
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
  if (const Node* wal = m.find("wal_archive")) {  // after targets: its dsn defaults to theirs
    parseWalArchive(ctx, *wal, m.path("wal_archive"), out);
  }
}

}  // namespace levee::config::detail
