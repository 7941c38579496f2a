// The steps of backup and restore jobs (see backup_manager.h for how steps run).

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "companion/backup/backup_manager.h"
#include "companion/backup/job.h"
#include "companion/backup/restore_checks.h"
#include "companion/backup/restore_targets.h"
#include "companion/backup/retention.h"
#include "companion/storage/s3_store.h"
#include "proxy/common/logger.h"

namespace levee::companion::backup {
namespace {

std::string firstLine(std::string_view s) {
  std::string out(s.substr(0, s.find('\n')));
  while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

// Lines of `pg_restore --list` that are entries (comments start with ';').
size_t tocEntries(std::string_view list) {
  size_t n = 0;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find('\n', start);
    std::string_view line = list.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!line.empty() && line[0] != ';') {
      ++n;
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return n;
}

size_t lineCount(std::string_view s) {
  return static_cast<size_t>(std::ranges::count(s, '\n')) + (!s.empty() && s.back() != '\n' ? 1 : 0);
}

Status toolOk(const ToolResult& r, std::string_view tool) {
  if (!r.exit.ok() || !r.sink_error.empty()) {
    return makeError(r.describe(tool));
  }
  return {};
}

// The pool half of opening the artifact being written.
std::function<Status()> openSinkWork(Job& j, std::string file, bool gzip, std::string target, std::string kind,
                                     std::string format) {
  j.current = Artifact{};
  j.current.target = std::move(target);
  j.current.kind = std::move(kind);
  j.current.file = file;
  j.current.format = std::move(format);
  j.sink = std::make_shared<storage::ArtifactSink>();
  auto sink = j.sink;
  const std::string path = j.store.artifactPath(j.id, file);
  return [sink, path, gzip] { return sink->open(path, gzip); };
}

// The pool half of finishing and re-reading the artifact; `after` then checks the checksum.
struct ReRead {
  std::shared_ptr<storage::ArtifactSink> sink;
  bool gzip{false};
  Result<storage::ReReadResult> reread{storage::ReReadResult{}};
};

// The pool work that closes a gzip artifact and reads it back (inflating to `inflate_to` if set).
std::function<Status()> finishAndReRead(Job& j, const std::shared_ptr<ReRead>& reread, std::string inflate_to) {
  j.state = "verifying";
  reread->sink = j.sink;
  reread->gzip = true;
  const std::string path = j.store.artifactPath(j.id, j.current.file);
  return [reread, path, inflate_to]() -> Status {
    LEVEE_RETURN_IF_ERROR(reread->sink->finish());
    reread->reread = storage::reReadArtifact(path, true, inflate_to);
    return {};
  };
}

// Takes sizes and checksum from the finished sink; the bytes read back must be the bytes written.
Status acceptReRead(Job& j, const ReRead& r) {
  if (!r.reread) {
    return std::unexpected(r.reread.error());
  }
  j.current.size = r.sink->storedBytes();
  j.current.raw_size = r.sink->rawBytes();
  j.current.sha256 = r.sink->sha256();
  if (r.reread->sha256 != j.current.sha256 || r.reread->size != j.current.size ||
      (r.gzip && r.reread->raw_size != j.current.raw_size)) {
    return makeError("checksum re-read does not match what was written");
  }
  j.sink.reset();
  return {};
}

}  // namespace

void BackupManager::addPostgresSteps(const JobPtr& job) {
  job->steps.push_back(toolStep(
      "pg_dump --version", [](Job&) { return std::vector<std::string>{"pg_dump", "--version"}; },
      [](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(toolOk(r, "pg_dump --version"));
        j.entry.tool_versions["pg_dump"] = firstLine(r.captured);
        j.pg_dump_major = pgToolMajor(r.captured);
        if (j.pg_dump_major == 0) {
          return makeError("cannot read the version in " + firstLine(r.captured));
        }
        return {};
      },
      false));
  for (const std::string& db : job->config.postgres_databases) {
    auto shared = std::make_shared<std::pair<std::string, std::map<std::string, uint64_t>>>();  // server version, counts
    auto snapshot = std::make_shared<std::string>();
    job->steps.push_back(poolStep(
        "connect to " + db,
        [db, shared, snapshot](Job& j) -> std::function<Status()> {
          j.pg = std::make_shared<PgSession>();
          auto pg = j.pg;
          const std::string conninfo = conninfoFor(j.config.postgres_dsn, db);
          return [pg, conninfo, shared, snapshot]() -> Status {
            LEVEE_RETURN_IF_ERROR(pg->connect(conninfo));
            LEVEE_ASSIGN_OR_RETURN(auto ver, pg->query("SHOW server_version_num"));
            shared->first = ver.at(0).at(0);
            // The dump and the row counts see the same snapshot: restores are verified against them.
            LEVEE_RETURN_IF_ERROR(pg->exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"));
            LEVEE_ASSIGN_OR_RETURN(auto snap, pg->query("SELECT pg_export_snapshot()"));
            *snapshot = snap.at(0).at(0);
            LEVEE_ASSIGN_OR_RETURN(shared->second, pg->rowCounts());
            return {};
          };
        },
        [db, shared, snapshot](Job& j) -> Status {
          int64_t num = 0;
          std::from_chars(shared->first.data(), shared->first.data() + shared->first.size(), num);
          const int server_major = pgServerMajor(num);
          j.entry.tool_versions["postgres_server:" + db] = shared->first;
          if (j.pg_dump_major < server_major) {
            return makeError("refusing: pg_dump " + std::to_string(j.pg_dump_major) +
                             " is older than the server's major version " + std::to_string(server_major) +
                             " (install a pg_dump >= " + std::to_string(server_major) + ")");
          }
          j.pg_snapshot = *snapshot;
          return {};
        }));
    const std::string file = "postgres-" + db + ".dump";
    job->steps.push_back(poolStep("open " + file, [file, db](Job& j) {
      // pg_dump -Fc is already compressed: stored as it is.
      return openSinkWork(j, file, false, "postgres:" + db, "postgres", "pg_dump custom");
    }));
    job->steps.push_back(toolStep(
        "pg_dump " + db,
        [db](Job& j) {
          return std::vector<std::string>{"pg_dump", "-Fc", "--snapshot=" + j.pg_snapshot, "-d",
                                          conninfoFor(j.config.postgres_dsn, db)};
        },
        [](Job&, ToolResult& r) { return toolOk(r, "pg_dump"); }, true));
    auto reread = std::make_shared<ReRead>();
    job->steps.push_back(poolStep(
        "verify checksum of " + file,
        [reread, shared](Job& j) -> std::function<Status()> {
          j.state = "verifying";
          reread->sink = j.sink;
          auto pg = std::move(j.pg);
          const std::string path = j.store.artifactPath(j.id, j.current.file);
          j.current.row_counts = shared->second;
          return [reread, pg, path]() -> Status {
            auto st = reread->sink->finish();
            (void)pg->exec("COMMIT");
            pg->close();
            LEVEE_RETURN_IF_ERROR(st);
            reread->reread = storage::reReadArtifact(path, false, "");
            return {};
          };
        },
        [reread](Job& j) { return acceptReRead(j, *reread); }));
    job->steps.push_back(toolStep(
        "pg_restore --list " + file,
        [](Job& j) {
          return std::vector<std::string>{"pg_restore", "--list", j.store.artifactPath(j.id, j.current.file)};
        },
        [](Job& j, ToolResult& r) -> Status {
          LEVEE_RETURN_IF_ERROR(toolOk(r, "pg_restore --list"));
          const size_t entries = tocEntries(r.captured);
          if (entries == 0) {
            return makeError("pg_restore --list: the archive's table of contents is empty");
          }
          j.current.verified = "pg_restore --list: " + std::to_string(entries) + " entries; sha256 re-read";
          j.entry.artifacts.push_back(std::move(j.current));
          j.state = "running";
          return {};
        },
        false));
  }
}

void BackupManager::addRedisSteps(const JobPtr& job) {
  job->steps.push_back(toolStep(
      "redis-cli --version", [](Job&) { return std::vector<std::string>{"redis-cli", "--version"}; },
      [](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(toolOk(r, "redis-cli --version"));
        j.entry.tool_versions["redis-cli"] = firstLine(r.captured);
        return {};
      },
      false));
  const std::string file = "redis.rdb.gz";
  job->steps.push_back(poolStep("open " + file, [file](Job& j) {
    return openSinkWork(j, file, true, "redis", "redis", "rdb+gzip");
  }));
  // AUTH: the password goes to redis-cli in REDISCLI_AUTH (not on its command line).
  auto auth = std::make_shared<RedisAuth>();
  job->steps.push_back(poolStep("read the redis password", [auth](Job& j) {
    return [auth, config = j.config]() -> Status {
      LEVEE_ASSIGN_OR_RETURN(*auth, readRedisAuth(config));
      return {};
    };
  }));
  job->steps.push_back(toolStep(
      "redis-cli --rdb",
      [auth](Job& j) {
        std::vector<std::string> args{"redis-cli", "-h", j.config.redis_address.host, "-p",
                                      std::to_string(j.config.redis_address.port)};
        if (!auth->username.empty()) {
          args.insert(args.end(), {"--user", auth->username});
        }
        args.insert(args.end(), {"--rdb", "-"});
        return args;
      },
      [auth](Job&, ToolResult& r) {
        auth->password.clear();
        return toolOk(r, "redis-cli --rdb");
      },
      true,
      [auth](Job&) {
        return auth->password.empty() ? std::vector<std::string>{}
                                      : std::vector<std::string>{"REDISCLI_AUTH=" + auth->password};
      }));
  auto reread = std::make_shared<ReRead>();
  job->steps.push_back(poolStep(
      "verify checksum of " + file,
      [reread](Job& j) { return finishAndReRead(j, reread, j.store.setDir(j.id) + "/.redis-check.rdb"); },
      [reread](Job& j) { return acceptReRead(j, *reread); }));
  job->steps.push_back(toolStep(
      "redis-check-rdb",
      [](Job& j) { return std::vector<std::string>{"redis-check-rdb", j.store.setDir(j.id) + "/.redis-check.rdb"}; },
      [](Job& j, ToolResult& r) -> Status {
        if (!r.exit.ok()) {
          std::string out = r.captured.size() > 1000 ? r.captured.substr(r.captured.size() - 1000) : r.captured;
          return makeError("redis-check-rdb: " + r.exit.describe() + ": " + out);
        }
        j.current.verified = "redis-check-rdb: OK; sha256 re-read";
        if (auto counts = parseRdbCheck(r.captured)) {
          // What a master loads from this RDB: a restore is verified against it.
          j.current.counts["keys"] = counts->keys - std::min(counts->keys, counts->already_expired);
          j.current.counts["expires"] = counts->expires;
        }
        return {};
      },
      false));
  job->steps.push_back(poolStep(
      "clean up",
      [](Job& j) -> std::function<Status()> {
        const std::string check = j.store.setDir(j.id) + "/.redis-check.rdb";
        return [check]() -> Status {
          ::unlink(check.c_str());
          return {};
        };
      },
      [](Job& j) -> Status {
        j.entry.artifacts.push_back(std::move(j.current));
        j.state = "running";
        return {};
      }));
}

void BackupManager::addFilesSteps(const JobPtr& job) {
  job->steps.push_back(toolStep(
      "tar --version", [](Job&) { return std::vector<std::string>{"tar", "--version"}; },
      [](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(toolOk(r, "tar --version"));
        j.entry.tool_versions["tar"] = firstLine(r.captured);
        return {};
      },
      false));
  const std::string file = "files.tar.gz";
  job->steps.push_back(poolStep("open " + file, [file](Job& j) {
    return openSinkWork(j, file, true, "files", "files", "tar+gzip");
  }));
  job->steps.push_back(toolStep(
      "tar",
      [](Job& j) {
        std::vector<std::string> args{"tar", "-cf", "-", "-C", "/", "--"};
        for (const auto& p : j.config.file_paths) {
          args.push_back(p.substr(1));
        }
        return args;
      },
      [](Job& j, ToolResult& r) -> Status {
        // GNU tar exits 1 when a file changed while it was read: the archive is still usable.
        if (r.sink_error.empty() && r.exit.spawn_error.empty() && r.exit.term_signal == 0 && r.exit.exit_code == 1) {
          j.notes.push_back("tar: some files changed while they were read");
          return {};
        }
        return toolOk(r, "tar");
      },
      true));
  auto reread = std::make_shared<ReRead>();
  job->steps.push_back(poolStep(
      "verify checksum of " + file,
      [reread](Job& j) { return finishAndReRead(j, reread, ""); },
      [reread](Job& j) { return acceptReRead(j, *reread); }));
  job->steps.push_back(toolStep(
      "tar --list",
      [](Job& j) {
        return std::vector<std::string>{"tar", "-tvz", "--numeric-owner", "-f",
                                        j.store.artifactPath(j.id, j.current.file)};
      },
      [](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(toolOk(r, "tar --list"));
        const size_t n = lineCount(r.captured);
        if (n == 0) {
          return makeError("tar --list: the archive is empty");
        }
        // Per directory, what a restore checks the extracted tree against.
        for (const auto& [path, c] : countTarListing(r.captured, j.config.file_paths)) {
          j.current.counts["entries:" + path] = c.entries;
          j.current.counts["bytes:" + path] = c.bytes;
        }
        j.current.verified = "tar --list: " + std::to_string(n) + " entries; gzip and sha256 re-read";
        j.entry.artifacts.push_back(std::move(j.current));
        j.state = "running";
        return {};
      },
      false));
}

void BackupManager::addFinalSteps(const JobPtr& job) {
  // Local store: the catalog entry. S3: artifacts uploaded and verified, then the entry.
  auto notes = std::make_shared<std::vector<std::string>>();
  const std::string label = job->config.s3.enabled ? "upload to s3 and write catalog entry" : "write catalog entry";
  job->steps.push_back(poolStep(
      label,
      [this, notes](Job& j) -> std::function<Status()> {
        j.state = "verifying";
        j.entry.finished_at = std::chrono::duration_cast<std::chrono::seconds>(
                                  time_.systemTime().time_since_epoch()).count();
        j.entry.tags = tagsFor(catalog_, j.type, j.entry.finished_at);
        if (j.entry.artifacts.empty()) {
          return [] { return Status(makeError("nothing was backed up")); };
        }
        storage::SetStore sets(j.config);
        CatalogEntry entry = j.entry;
        return [sets, entry, notes]() { return sets.publish(entry, *notes); };
      },
      [notes](Job& j) -> Status {
        j.notes.insert(j.notes.end(), notes->begin(), notes->end());
        return {};
      }));
}

}  // namespace levee::companion::backup
