// The steps of a restore job (see backup_manager.h for how steps run, restore_targets.h for the
// phases and the journal). Every target is prepared and verified first, without touching live
// data; only then is the journal switched to "swap" and each target swapped in.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "companion/backup/backup_manager.h"
#include "companion/backup/job.h"
#include "companion/backup/restore_checks.h"
#include "companion/storage/s3_store.h"
#include "companion/backup/restore_run.h"
#include "companion/backup/restore_targets.h"
#include "proxy/common/json.h"
#include "proxy/common/logger.h"

namespace levee::companion::backup {
namespace {

constexpr int kRedisReadyTimeoutMs = 120 * 1000;

std::string shortId(const std::string& id) { return id.substr(id.size() > 8 ? id.size() - 8 : 0); }

std::string sanitize(std::string s) {
  std::ranges::replace(s, '-', '_');
  std::ranges::transform(s, s.begin(), [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return s;
}

Status toolOk(const ToolResult& r, std::string_view tool) {
  if (!r.exit.ok() || !r.sink_error.empty()) {
    return makeError(r.describe(tool));
  }
  return {};
}

// The databases must hold the same tables with the same row counts as the dump's snapshot.
Status compareCounts(const std::map<std::string, uint64_t>& expected, const std::map<std::string, uint64_t>& got) {
  std::string diff;
  for (const auto& [table, rows] : expected) {
    auto it = got.find(table);
    if (it == got.end()) {
      diff += " " + table + " missing;";
    } else if (it->second != rows) {
      diff += " " + table + " has " + std::to_string(it->second) + " rows, the backup " + std::to_string(rows) + ";";
    }
  }
  for (const auto& [table, rows] : got) {
    if (!expected.contains(table)) {
      diff += " unexpected table " + table + ";";
    }
  }
  if (!diff.empty()) {
    diff.pop_back();
    return makeError("verification of the restored database failed:" + diff);
  }
  return {};
}

std::string tailOf(const std::string& path, size_t n) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) {
    return {};
  }
  std::string out;
  char buf[4096];
  size_t r = 0;
  while ((r = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    out.append(buf, r);
    if (out.size() > 2 * n) {
      out.erase(0, out.size() - n);
    }
  }
  std::fclose(f);
  if (out.size() > n) {
    out.erase(0, out.size() - n);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

RestoreTarget& target(Job& j, size_t index) { return j.restore->targets.at(index); }

void setTarget(Job& j, size_t index, std::string state, std::string detail = {}) {
  RestoreTarget& t = target(j, index);
  t.state = std::move(state);
  if (!detail.empty()) {
    t.detail = std::move(detail);
  }
}

}  // namespace

std::string BackupManager::restoreRefusal(const CatalogEntry& entry) const {
  bool restorable = false;
  for (const Artifact& a : entry.artifacts) {
    if (a.kind == "postgres") {
      if (config_.postgres_dsn.empty()) {
        return "companion.backup.targets.postgres is not configured: nowhere to restore " + a.target + " to";
      }
      restorable = true;
    } else if (a.kind == "redis") {
      if (!config_.redis_enabled) {
        return "companion.backup.targets.redis is not configured: nowhere to restore the RDB to";
      }
      if (config_.redis_restore_bind.empty() && !isLoopbackHost(config_.redis_address.host)) {
        return "companion.backup.targets.redis.restore_bind is needed: an address of this host that Redis at " +
               config_.redis_address.host + " can reach (the restore serves the RDB from a temporary redis-server)";
      }
      restorable = true;
    } else if (a.kind == "files") {
      restorable = true;
    }
  }
  return restorable ? std::string() : std::string("501");
}

void BackupManager::addRestoreSteps(const JobPtr& job) {
  auto run = std::make_shared<RestoreRun>();
  job->restore = run;
  const std::string suffix = sanitize(shortId(job->id));
  RestoreJournal& plan = run->journal;
  plan.restore_id = job->id;
  plan.backup_id = job->entry.id;
  plan.phase = "prepare";
  std::vector<Step> prepare;
  std::vector<Step> swap;
  std::string redis_rdb;  // inflated by the checksum step

  // Artifacts are read from the set's local file, or (S3) from a copy fetched for this restore.
  const storage::SetStore sets(job->config);
  for (const Artifact& artifact : job->entry.artifacts) {
    const std::string path = sets.restorePath(job->id, job->entry.id, artifact.file);
    if (artifact.kind == "postgres") {
      const std::string db = artifact.target.substr(artifact.target.find(':') + 1);
      const PgItem item{db, sanitize(db) + "_rst_" + suffix, sanitize(db) + "_pre_" + suffix};
      plan.postgres.push_back(item);
      const size_t ti = run->targets.size();
      run->targets.push_back({artifact.target});
      prepare.push_back(poolStep("create " + item.temp_db, [item, ti](Job& j) -> std::function<Status()> {
        setTarget(j, ti, "preparing");
        const std::string conninfo = conninfoFor(j.config.postgres_dsn, "postgres");
        return [item, conninfo]() -> Status {
          PgSession maint;
          LEVEE_RETURN_IF_ERROR(maint.connect(conninfo));
          LEVEE_RETURN_IF_ERROR(maint.exec("DROP DATABASE IF EXISTS " + maint.quoteIdent(item.temp_db)));
          return maint.exec("CREATE DATABASE " + maint.quoteIdent(item.temp_db) + " TEMPLATE template0");
        };
      }));
      prepare.push_back(toolStep(
          "pg_restore into " + item.temp_db,
          [item, path](Job& j) {
            return std::vector<std::string>{"pg_restore", "--no-owner", "--exit-on-error", "-d",
                                            conninfoFor(j.config.postgres_dsn, item.temp_db), path};
          },
          [](Job&, ToolResult& r) { return toolOk(r, "pg_restore"); }, false));
      prepare.push_back(poolStep(
          "verify " + item.temp_db,
          [artifact, item](Job& j) -> std::function<Status()> {
            const std::string info = conninfoFor(j.config.postgres_dsn, item.temp_db);
            return [artifact, info]() -> Status {
              PgSession restored;
              LEVEE_RETURN_IF_ERROR(restored.connect(info));
              LEVEE_ASSIGN_OR_RETURN(auto counts, restored.rowCounts());
              return compareCounts(artifact.row_counts, counts);
            };
          },
          [ti, artifact](Job& j) -> Status {
            setTarget(j, ti, "verified", std::to_string(artifact.row_counts.size()) + " tables, row counts match");
            return {};
          }));
      swap.push_back(poolStep(
          "swap " + item.temp_db + " in as " + db,
          [item](Job& j) -> std::function<Status()> {
            const std::string conninfo = conninfoFor(j.config.postgres_dsn, "postgres");
            return [item, conninfo]() -> Status {
              PgSession maint;
              LEVEE_RETURN_IF_ERROR(maint.connect(conninfo));
              return swapDatabase(maint, item);
            };
          },
          [item, ti](Job& j) -> Status {
            setTarget(j, ti, "swapped", "the previous database is kept as " + item.old_db);
            j.notes.push_back(item.db + ": restored, verified (tables and row counts) and swapped in; the previous "
                              "database is kept as " + item.old_db);
            return {};
          }));
    } else if (artifact.kind == "files") {
      std::vector<std::string> paths = archivedPaths(artifact.counts);
      if (paths.empty()) {
        paths = job->config.file_paths;  // a backup from before the counts were recorded
      }
      for (const std::string& dir : paths) {
        const FilesItem item = filesItemFor(dir, suffix);
        plan.files.push_back(item);
        const size_t ti = run->targets.size();
        run->targets.push_back({"files:" + dir});
        const bool counted = artifact.counts.contains("entries:" + dir);
        const TreeCounts expected{counted ? artifact.counts.at("entries:" + dir) : 0,
                                  counted ? artifact.counts.at("bytes:" + dir) : 0};
        prepare.push_back(poolStep("stage " + dir, [item, ti](Job& j) -> std::function<Status()> {
          setTarget(j, ti, "preparing");
          return [item]() -> Status {
            // Beside the live directory, so the swap is a rename on one file system.
            const std::string parent = item.path.substr(0, std::max<size_t>(1, item.path.rfind('/')));
            struct stat st{};
            if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
              return makeError("the parent directory " + parent + " of " + item.path + " does not exist");
            }
            LEVEE_RETURN_IF_ERROR(removeTree(item.staging));
            if (::mkdir(item.staging.c_str(), 0700) != 0) {
              return makeError("mkdir " + item.staging + ": " + std::strerror(errno));
            }
            return {};
          };
        }));
        prepare.push_back(toolStep(
            "extract " + dir,
            [item, path](Job&) {
              return std::vector<std::string>{"tar", "-xzp", "-f", path, "-C", item.staging, "--", item.path.substr(1)};
            },
            [](Job&, ToolResult& r) { return toolOk(r, "tar -x"); }, false));
        auto got = std::make_shared<TreeCounts>();
        prepare.push_back(poolStep(
            "verify " + dir,
            [item, got](Job&) -> std::function<Status()> {
              return [item, got]() -> Status {
                LEVEE_ASSIGN_OR_RETURN(*got, countTree(item.staged));
                return {};
              };
            },
            [got, expected, counted, dir, ti](Job& j) -> Status {
              const std::string found = std::to_string(got->entries) + " entries, " + std::to_string(got->bytes) + " bytes";
              if (counted && !(*got == expected)) {
                return makeError("verification of the extracted " + dir + " failed: " + found + ", the backup has " +
                                 std::to_string(expected.entries) + " entries, " + std::to_string(expected.bytes) +
                                 " bytes");
              }
              setTarget(j, ti, "verified",
                        found + (counted ? " (as the backup's listing)" : " (backup without recorded counts)"));
              return {};
            }));
        swap.push_back(poolStep(
            "swap " + dir,
            [item](Job&) -> std::function<Status()> { return [item] { return swapFiles(item); }; },
            [item, ti](Job& j) -> Status {
              setTarget(j, ti, "swapped", "the previous tree is kept as " + item.pre);
              j.notes.push_back(item.path + ": restored, verified (entries and bytes) and swapped in; the previous "
                                "tree is kept as " + item.pre);
              return {};
            }));
      }
    } else if (artifact.kind == "redis") {
      RedisItem item;
      item.host = job->config.redis_address.host;
      item.port = job->config.redis_address.port;
      item.temp_host = job->config.redis_restore_bind.empty() ? "127.0.0.1" : job->config.redis_restore_bind;
      item.dir = job->store.dir() + "/restore-tmp/" + job->id;
      plan.redis = item;
      redis_rdb = item.dir + "/dump.rdb";
      const size_t ti = run->targets.size();
      run->targets.push_back({"redis"});
      const bool counted = artifact.counts.contains("keys");
      const uint64_t expected = counted ? artifact.counts.at("keys") : 0;
      const uint64_t expires = artifact.counts.contains("expires") ? artifact.counts.at("expires") : 0;
      const int sync_timeout_ms =
          static_cast<int>(std::min<uint64_t>(3600, 60 + artifact.raw_size / (10u << 20)) * 1000);
      auto port = std::make_shared<uint16_t>(0);
      prepare.push_back(poolStep(
          "start a temporary redis-server",
          [item, port, ti](Job& j) -> std::function<Status()> {
            setTarget(j, ti, "preparing");
            return [item, port, auth = j.restore->redis_auth, config = j.config]() -> Status {
              LEVEE_ASSIGN_OR_RETURN(*auth, readRedisAuth(config));
              LEVEE_ASSIGN_OR_RETURN(auto repl, redisInfo(item.host, item.port, "replication", *auth));
              if (std::string role = infoField(repl, "role"); role != "master") {
                return makeError("the live Redis " + item.host + ":" + std::to_string(item.port) + " is a " + role +
                                 " (of " + infoField(repl, "master_host") + "): restore into its master");
              }
              LEVEE_ASSIGN_OR_RETURN(*port, freePort(item.temp_host));
              return {};
            };
          },
          [this, port](Job& j) -> Status {
            RestoreRun& r = *j.restore;
            r.journal.redis->temp_port = *port;
            const RedisItem& it = *r.journal.redis;
            event::SpawnOptions opts;
            opts.args = {"redis-server", "--port", std::to_string(it.temp_port), "--bind", it.temp_host,
                         "--dir", it.dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
                         "--daemonize", "no", "--logfile", it.dir + "/redis.log",
                         // One replica only: start the sync at once (Redis 7 waits 5 s for more).
                         "--repl-diskless-sync-delay", "0"};
            std::weak_ptr<RestoreRun> weak = j.restore;
            auto gone = r.temp_redis_gone;
            r.temp_redis = std::make_unique<event::ChildProcess>(dispatcher_, std::move(opts),
                                                                 [weak, gone](const event::ExitStatus& st) {
              gone->store(true);
              if (auto self = weak.lock()) {
                self->temp_redis_exit = st.describe();
                if (auto cb = std::move(self->on_temp_redis_exit)) {
                  cb();
                }
              }
            });
            return {};
          }));
      prepare.push_back(poolStep("wait for the temporary redis-server", [](Job& j) -> std::function<Status()> {
        const RedisItem it = *j.restore->journal.redis;
        auto gone = j.restore->temp_redis_gone;
        return [it, gone]() -> Status {
          if (auto st = waitRedisReady(it.temp_host, it.temp_port, kRedisReadyTimeoutMs, *gone); !st) {
            std::string log = tailOf(it.dir + "/redis.log", 600);
            return makeError(st.error().message + (log.empty() ? "" : ": " + log));
          }
          return {};
        };
      }));
      auto keys = std::make_shared<uint64_t>(0);
      prepare.push_back(poolStep(
          "count the temporary redis-server's keys",
          [keys](Job& j) -> std::function<Status()> {
            const RedisItem it = *j.restore->journal.redis;
            return [it, keys]() -> Status {
              LEVEE_ASSIGN_OR_RETURN(auto ks, redisInfo(it.temp_host, it.temp_port, "keyspace"));
              *keys = keyspaceKeys(ks);
              return {};
            };
          },
          [ti, counted, expected, expires, keys](Job& j) -> Status {
            // Keys with a TTL may have expired since the backup was taken.
            if (counted && (*keys > expected || *keys + expires < expected)) {
              return makeError("verification of the temporary redis-server failed: it loaded " +
                               std::to_string(*keys) + " keys, the backup has " + std::to_string(expected));
            }
            setTarget(j, ti, "verified",
                      std::to_string(*keys) + " keys loaded" +
                          (counted ? " (the backup has " + std::to_string(expected) + ")" : " (backup without a key count)"));
            return {};
          }));
      swap.push_back(poolStep(
          "replicate the restored data set into " + item.host + ":" + std::to_string(item.port),
          [sync_timeout_ms](Job& j) -> std::function<Status()> {
            const RedisItem it = *j.restore->journal.redis;
            auto gone = j.restore->temp_redis_gone;
            auto auth = j.restore->redis_auth;
            return [it, gone, auth, sync_timeout_ms]() { return replicateFrom(it, *auth, sync_timeout_ms, *gone); };
          },
          [ti, keys](Job& j) -> Status {
            setTarget(j, ti, "swapped", std::to_string(*keys) + " keys, replicated from the temporary server");
            j.notes.push_back("redis: restored through a temporary redis-server (" + std::to_string(*keys) +
                              " keys), the live server replicated it and was detached again");
            return {};
          }));
      swap.push_back([](const JobPtr& j, Next next) {
        j->step = "stop the temporary redis-server";
        RestoreRun& r = *j->restore;
        if (!r.temp_redis || !r.temp_redis->running()) {
          next({});
          return;
        }
        r.on_temp_redis_exit = [next] { next({}); };
        r.temp_redis->kill(SIGKILL);  // its data is not needed any more
      });
      swap.push_back(poolStep("remove the temporary redis-server's directory", [](Job& j) -> std::function<Status()> {
        j.restore->temp_redis.reset();
        const std::string dir = j.restore->journal.redis->dir;
        return [dir] { return removeTree(dir); };
      }));
    } else {
      job->notes.push_back(artifact.target + ": not restored (unknown artifact kind " + artifact.kind + ")");
    }
  }

  // 1. The stored bytes must still be what was verified; the journal names what will be created.
  const std::vector<Artifact> artifacts = job->entry.artifacts;
  if (sets.usesS3()) {
    for (const Artifact& artifact : artifacts) {
      job->steps.push_back(fetchFromBucketStep(sets, artifact));
    }
  }
  job->steps.push_back(poolStep("check the stored checksums", [artifacts, redis_rdb](Job& j) -> std::function<Status()> {
    const storage::LocalStore store = j.store;
    const storage::SetStore from(j.config);
    const std::string backup = j.entry.id;
    const std::string restore_id = j.id;
    const RestoreJournal journal = j.restore->journal;
    return [artifacts, redis_rdb, store, from, backup, restore_id, journal]() -> Status {
      if (journal.redis) {
        LEVEE_RETURN_IF_ERROR(removeTree(journal.redis->dir));
        std::error_code ec;
        std::filesystem::create_directories(journal.redis->dir, ec);
        if (ec) {
          return makeError("mkdir " + journal.redis->dir + ": " + ec.message());
        }
      }
      LEVEE_RETURN_IF_ERROR(storage::writeFileAtomic(journalPath(store.dir()), encodeJournal(journal)));
      for (const Artifact& a : artifacts) {
        const std::string path = from.restorePath(restore_id, backup, a.file);
        const bool gzip = a.kind == "redis" || a.kind == "files";
        LEVEE_ASSIGN_OR_RETURN(auto reread,
                               storage::reReadArtifact(path, gzip, a.kind == "redis" ? redis_rdb : std::string()));
        if (reread.sha256 != a.sha256) {
          return makeError(path + ": checksum mismatch (the stored backup changed since it was verified)");
        }
      }
      return {};
    };
  }));
  for (auto& s : prepare) {
    job->steps.push_back(std::move(s));
  }
  // 2. Everything is verified: from here on a crash is repaired by rolling forward.
  job->steps.push_back(poolStep("write the restore journal (swap)", [](Job& j) -> std::function<Status()> {
    j.restore->journal.phase = "swap";
    const std::string path = journalPath(j.store.dir());
    const std::string text = encodeJournal(j.restore->journal);
    return [path, text] { return storage::writeFileAtomic(path, text); };
  }));
  for (auto& s : swap) {
    job->steps.push_back(std::move(s));
  }
  job->steps.push_back(poolStep("remove the restore journal", [](Job& j) -> std::function<Status()> {
    const std::string path = journalPath(j.store.dir());
    return [path]() -> Status {
      ::unlink(path.c_str());
      return {};
    };
  }));
}

BackupManager::Step BackupManager::fetchFromBucketStep(const storage::SetStore& sets, const Artifact& artifact) {
  auto how = std::make_shared<std::string>();
  return poolStep(
      "fetch " + artifact.file + " from s3",
      [sets, artifact, how](Job& j) -> std::function<Status()> {
        return [sets, artifact, how, restore_id = j.id, backup_id = j.entry.id]() -> Status {
          LEVEE_ASSIGN_OR_RETURN(*how, sets.fetchForRestore(restore_id, backup_id, artifact));
          return {};
        };
      },
      [how, artifact](Job& j) -> Status {
        j.notes.push_back(artifact.file + ": " + *how);
        return {};
      });
}

void BackupManager::cleanupRestore(const JobPtr& job) {
  auto guard = std::make_shared<std::optional<OperationLock::Guard>>(std::move(job->guard));
  std::shared_ptr<RestoreRun> run = job->restore;
  if (!run) {
    guard->reset();
    return;
  }
  for (RestoreTarget& t : run->targets) {
    if (t.state != "swapped") {
      t.state = "failed";
    }
  }
  run->on_temp_redis_exit = nullptr;
  run->temp_redis.reset();  // SIGKILL to the temporary redis-server (reaped on the pool)
  const RestoreJournal plan = run->journal;
  const RedisAuth redis_auth = *run->redis_auth;
  const std::string conninfo = conninfoFor(job->config.postgres_dsn, "postgres");
  const std::string journal = journalPath(job->store.dir());
  auto lines = std::make_shared<std::vector<std::string>>();
  std::weak_ptr<Job> weak = job;
  event::queueWork(
      dispatcher_,
      [plan, conninfo, redis_auth, journal, lines] {
        *lines = rollBack(plan, conninfo, redis_auth);
        ::unlink(journal.c_str());
      },
      [weak, lines, guard, id = job->id] {
        for (const auto& l : *lines) {
          LEVEE_LOG(Main, warn, "restore {}: cleanup: {}", id, l);
        }
        if (JobPtr j = weak.lock()) {
          for (const auto& l : *lines) {
            j->notes.push_back("cleanup: " + l);
          }
        }
        guard->reset();  // the lock is held until the cleanup is done
      });
}

void writeRestoreTargets(json::Writer& w, const RestoreRun& run) {
  w.key("targets").beginArray();
  for (const RestoreTarget& t : run.targets) {
    w.beginObject().key("target").value(t.target).key("state").value(t.state);
    if (!t.detail.empty()) {
      w.key("detail").value(t.detail);
    }
    w.endObject();
  }
  w.endArray();
}

}  // namespace levee::companion::backup
