// Physical base backups (type "base") and point-in-time restores of them, on top of the WAL
// archive (companion/wal/README.md). Same step machinery as backup_steps.cc.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "companion/backup/backup_manager.h"
#include "companion/backup/job.h"
#include "companion/failover/lsn.h"
#include "companion/storage/s3_store.h"
#include "companion/wal/wal_bucket.h"
#include "companion/wal/pitr.h"
#include "companion/wal/wal_math.h"
#include "proxy/common/json.h"
#include "proxy/common/logger.h"

namespace levee::companion::backup {
namespace {

constexpr std::string_view kBaseFile = "base.tar.gz";
constexpr std::string_view kManifest = "backup_manifest";
constexpr auto kWalWait = std::chrono::seconds(60);

ApiResponse apiError(int status, std::string_view message) {
  std::string body;
  json::Writer w(body);
  w.beginObject().key("error").value(message).endObject();
  return {status, body};
}

Status ranOk(const ToolResult& r, std::string_view tool) {
  return r.exit.ok() ? Status{} : Status(makeError(r.describe(tool)));
}

Result<std::string> readSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return makeError(path + ": " + std::strerror(errno));
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && out.size() < (64u << 20)) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status appendAndSync(const std::string& path, const std::string& text, int flags) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
  if (fd < 0) {
    return makeError(path + ": " + std::strerror(errno));
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  return ok ? Status{} : Status(makeError(path + ": " + std::strerror(err)));
}

// Shared by the steps of one base backup.
struct BaseState {
  wal::WalRange range;
  std::string manifest_sha;
  uint64_t manifest_size{0};
  storage::ReReadResult base;
  int major{0};              // of pg_basebackup
  std::string verifier{"pg_verifybackup"};  // Debian has no /usr/bin wrapper for it
};

}  // namespace

void BackupManager::addBaseBackupSteps(const JobPtr& job) {
  const config::WalArchiveConfig wal_config = job->config.wal_archive;
  auto state = std::make_shared<BaseState>();
  job->steps.push_back(toolStep(
      "pg_basebackup --version", [](Job&) { return std::vector<std::string>{"pg_basebackup", "--version"}; },
      [state](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(ranOk(r, "pg_basebackup --version"));
        std::string v = r.captured.substr(0, r.captured.find('\n'));
        j.entry.tool_versions["pg_basebackup"] = v;
        state->major = pgToolMajor(v);
        return {};
      },
      false));
  // -X none: the WAL of the backup comes from the archive, which is checked below.
  job->steps.push_back(toolStep(
      "pg_basebackup",
      [wal_config](Job& j) {
        return std::vector<std::string>{"pg_basebackup", "-d", wal_config.dsn, "-D", j.store.setDir(j.id),
                                        "-Ft", "-z", "-X", "none", "-c", "fast", "-l", "levee " + j.id};
      },
      [](Job& j, ToolResult& r) -> Status {
        LEVEE_RETURN_IF_ERROR(ranOk(r, "pg_basebackup"));
        j.entry.base_backup["end_time"] = isoTime(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
        return {};
      },
      false));
  job->steps.push_back(poolStep(
      "verify checksums of base.tar.gz",
      [state](Job& j) -> std::function<Status()> {
        j.state = "verifying";
        const std::string dir = j.store.setDir(j.id);
        return [state, dir]() -> Status {
          std::error_code ec;
          for (auto it = std::filesystem::directory_iterator(dir, ec);
               !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (name != kBaseFile && name != kManifest) {
              return makeError("unexpected file " + name + " from pg_basebackup (tablespaces are not supported)");
            }
          }
          LEVEE_ASSIGN_OR_RETURN(std::string manifest, readSmallFile(dir + "/" + std::string(kManifest)));
          LEVEE_ASSIGN_OR_RETURN(state->range, wal::manifestWalRange(manifest));
          LEVEE_ASSIGN_OR_RETURN(auto m, storage::reReadArtifact(dir + "/" + std::string(kManifest), false, ""));
          state->manifest_sha = m.sha256;
          state->manifest_size = m.size;
          // Inflates the whole archive: the gzip CRC is checked too.
          LEVEE_ASSIGN_OR_RETURN(state->base, storage::reReadArtifact(dir + "/" + std::string(kBaseFile), true, ""));
          const std::string versioned =
              "/usr/lib/postgresql/" + std::to_string(state->major) + "/bin/pg_verifybackup";
          if (state->major > 0 && ::access(versioned.c_str(), X_OK) == 0) {
            state->verifier = versioned;  // the one matching pg_basebackup
          }
          std::filesystem::create_directory(dir + "/.verify", ec);
          if (ec) {
            return makeError("create " + dir + "/.verify: " + ec.message());
          }
          return {};
        };
      }));
  job->steps.push_back(toolStep(
      "extract base.tar.gz for pg_verifybackup",
      [](Job& j) {
        const std::string dir = j.store.setDir(j.id);
        return std::vector<std::string>{"tar", "-xzf", dir + "/" + std::string(kBaseFile), "-C", dir + "/.verify"};
      },
      [](Job&, ToolResult& r) { return ranOk(r, "tar -x"); }, false));
  job->steps.push_back(toolStep(
      "pg_verifybackup",
      [state](Job& j) {
        const std::string dir = j.store.setDir(j.id);
        return std::vector<std::string>{state->verifier, "--no-parse-wal", "-m", dir + "/" + std::string(kManifest),
                                        dir + "/.verify"};
      },
      [](Job&, ToolResult& r) { return ranOk(r, "pg_verifybackup"); }, false));
  job->steps.push_back(poolStep(
      "wait until the WAL archive holds the backup's WAL",
      [state, wal_config](Job& j) -> std::function<Status()> {
        const std::string dir = j.store.setDir(j.id);
        const std::string conninfo = conninfoFor(wal_config.dsn, "postgres");
        return [state, dir, conninfo, wal_config]() -> Status {
          std::error_code ec;
          std::filesystem::remove_all(dir + "/.verify", ec);
          PgSession pg;
          LEVEE_RETURN_IF_ERROR(pg.connect(conninfo));
          // Blocks this pool thread (never a loop) for at most kWalWait.
          const auto deadline = std::chrono::steady_clock::now() + kWalWait;
          uint64_t archived = 0;
          while (true) {
            LEVEE_ASSIGN_OR_RETURN(auto rows, pg.query("SELECT restart_lsn::text FROM pg_replication_slots "
                                                       "WHERE slot_name = $1",
                                                       {wal_config.slot}));
            archived = rows.empty() ? 0 : failover::parseLsn(rows[0][0]).value_or(0);
            if (archived >= state->range.end_lsn || std::chrono::steady_clock::now() > deadline) {
              break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          if (archived < state->range.end_lsn) {
            return makeError("the WAL archive did not reach the backup's end " + failover::formatLsn(state->range.end_lsn) +
                             " within 60 s (archived: " + failover::formatLsn(archived) + "); is pg_receivewal running?");
          }
          if (wal_config.s3.enabled) {
            return {};  // uploaded segments leave the local archive: the next step checks the bucket
          }
          for (uint64_t lsn = state->range.start_lsn - state->range.start_lsn % wal::kDefaultSegmentSize;
               lsn <= state->range.end_lsn; lsn += wal::kDefaultSegmentSize) {
            const std::string seg = wal::segmentName(state->range.timeline, lsn);
            struct stat st {};
            if (::stat((wal_config.dir + "/" + seg).c_str(), &st) != 0 &&
                ::stat((wal_config.dir + "/" + seg + ".partial").c_str(), &st) != 0) {
              return makeError("WAL segment " + seg + " of the backup is not in the archive " + wal_config.dir +
                               " (was the archive started after the backup began?)");
            }
          }
          return {};
        };
      },
      [state, wal_config](Job& j) -> Status {
        Artifact base;
        base.target = "postgres";
        base.kind = "postgres-base";
        base.file = std::string(kBaseFile);
        base.format = "pg_basebackup tar+gzip";
        base.size = state->base.size;
        base.raw_size = state->base.raw_size;
        base.sha256 = state->base.sha256;
        base.verified = "pg_verifybackup: every file matches backup_manifest; gzip and sha256 re-read; WAL " +
                        failover::formatLsn(state->range.start_lsn) + ".." + failover::formatLsn(state->range.end_lsn) +
                        " in the archive";
        Artifact manifest;
        manifest.target = "postgres";
        manifest.kind = "postgres-base-manifest";
        manifest.file = std::string(kManifest);
        manifest.format = "backup_manifest";
        manifest.size = state->manifest_size;
        manifest.raw_size = state->manifest_size;
        manifest.sha256 = state->manifest_sha;
        manifest.verified = "parsed; checked by pg_verifybackup";
        j.entry.artifacts.push_back(std::move(base));
        j.entry.artifacts.push_back(std::move(manifest));
        j.entry.base_backup["start_lsn"] = failover::formatLsn(state->range.start_lsn);
        j.entry.base_backup["end_lsn"] = failover::formatLsn(state->range.end_lsn);
        j.entry.base_backup["timeline"] = std::to_string(state->range.timeline);
        j.entry.base_backup["start_segment"] = wal::segmentName(state->range.timeline, state->range.start_lsn);
        j.entry.base_backup["archive_dir"] = wal_config.dir;
        j.entry.base_backup["start_time"] = isoTime(j.started_at);
        if (wal_config.s3.enabled) {
          j.entry.base_backup["wal_bucket"] = wal::WalBucket(wal_config.s3).location();
        }
        return {};
      }));
  if (wal_config.s3.enabled) {
    // The archiver uploads a snapshot of the .partial at once and answers when the bucket holds
    // every segment from the backup's start to its end.
    job->steps.push_back([this, state, wal_config](const JobPtr& j, Next next) {
      j->step = "wait until the bucket holds the backup's WAL";
      if (!wal_ || wal_->config() != wal_config) {
        next(makeError("the WAL archive was reconfigured while the backup ran"));
        return;
      }
      wal_->whenBucketCovers(state->range.timeline, state->range.start_lsn, state->range.end_lsn, kWalWait,
                             std::move(next));
    });
  }
}

ApiResponse BackupManager::restoreBase(const CatalogEntry& entry, const JsonValue& body) {
  const JsonValue* dir = body.find("data_dir");
  if (dir == nullptr || !dir->isString() || !wal::isPlainPath(dir->asString())) {
    return apiError(400, "a base backup is restored into a new data directory: \"data_dir\" must be an absolute "
                         "path of [A-Za-z0-9/._+-] (levee never replaces a running cluster's data directory)");
  }
  std::optional<wal::TargetTime> target;
  if (const JsonValue* t = body.find("target_time"); t != nullptr) {
    if (!t->isString()) {
      return apiError(400, "\"target_time\" must be a string like 2026-12-02T04:10:00Z");
    }
    auto parsed = wal::parseTargetTime(t->asString());
    if (!parsed) {
      return apiError(400, parsed.error().message);
    }
    if (parsed->unix_seconds < static_cast<double>(entry.started_at)) {
      return apiError(400, "target_time is before the base backup started (" + isoTime(entry.started_at) +
                               "): choose an older base backup");
    }
    target = *parsed;
  }
  auto archive = entry.base_backup.find("archive_dir");
  if (archive == entry.base_backup.end() || !wal::isPlainPath(archive->second)) {
    return apiError(409, "backup " + entry.id + " names no usable WAL archive directory");
  }
  auto artifact = std::ranges::find_if(entry.artifacts, [](const Artifact& a) { return a.kind == "postgres-base"; });
  if (artifact == entry.artifacts.end()) {
    return apiError(409, "backup " + entry.id + " has no base.tar.gz");
  }
  auto guard = lock_.tryAcquire("restore of backup " + entry.id);
  if (!guard) {
    return apiError(409, "refused: " + lock_.holder() + " is in progress");
  }
  JobPtr job = newJob("restore", entry.type, "api");
  job->entry = entry;
  job->guard.emplace(std::move(*guard));
  job->state = "running";
  job->started_at = std::chrono::duration_cast<std::chrono::seconds>(time_.systemTime().time_since_epoch()).count();
  job->started_mono = time_.monotonicTime();
  std::string data_dir = dir->asString();
  while (data_dir.size() > 1 && data_dir.back() == '/') {
    data_dir.pop_back();
  }
  const std::string archive_dir = archive->second;
  const Artifact base = *artifact;
  const storage::SetStore sets(job->config);
  // From the bucket: base.tar.gz is downloaded, and the WAL goes into <data_dir>.wal (the
  // bucket's segments, then what the local archive holds beyond them).
  const bool from_bucket = sets.usesS3();
  const std::string wal_dir = from_bucket ? data_dir + ".wal" : archive_dir;
  std::optional<wal::SegmentId> start_segment;
  if (auto seg = entry.base_backup.find("start_segment"); seg != entry.base_backup.end()) {
    start_segment = wal::parseSegmentName(seg->second);
  }
  if (from_bucket && !start_segment) {
    return apiError(409, "backup " + entry.id + " names no start segment");
  }
  const std::string base_path = sets.restorePath(job->id, entry.id, base.file);
  LEVEE_LOG(Main, warn, "restore {}: preparing {} from base backup {}, recovery target {} (confirmed through the "
            "admin API)", job->id, data_dir, entry.id, target ? target->postgres : "end of the archive");
  if (from_bucket) {
    job->steps.push_back(fetchFromBucketStep(sets, base));
  }
  job->steps.push_back(poolStep(
      "prepare " + data_dir,
      [data_dir, base, base_path, from_bucket, wal_dir](Job&) -> std::function<Status()> {
        return [data_dir, base, base_path, from_bucket, wal_dir]() -> Status {
          std::error_code ec;
          for (const std::string& d : from_bucket ? std::vector{data_dir, wal_dir} : std::vector{data_dir}) {
            if (std::filesystem::exists(d, ec) && !std::filesystem::is_empty(d, ec)) {
              return makeError(d + " exists and is not empty: choose a new directory");
            }
          }
          LEVEE_ASSIGN_OR_RETURN(auto reread, storage::reReadArtifact(base_path, true, ""));
          if (reread.sha256 != base.sha256) {
            return makeError(base_path + ": checksum mismatch (the stored backup changed since it was verified)");
          }
          for (const std::string& d : from_bucket ? std::vector{data_dir, wal_dir} : std::vector{data_dir}) {
            std::filesystem::create_directories(d, ec);
            if (ec || ::chmod(d.c_str(), 0700) != 0) {
              return makeError("create " + d + ": " + (ec ? ec.message() : std::strerror(errno)));
            }
          }
          return {};
        };
      },
      [data_dir, from_bucket, wal_dir](Job& j) -> Status {
        j.restore_data_dir = data_dir;  // ours now: removed if a later step fails
        if (from_bucket) {
          j.restore_wal_dir = wal_dir;
        }
        return {};
      }));
  job->steps.push_back(toolStep(
      "extract base.tar.gz into " + data_dir,
      [base_path, data_dir](Job&) { return std::vector<std::string>{"tar", "-xzf", base_path, "-C", data_dir}; },
      [](Job&, ToolResult& r) { return ranOk(r, "tar -x"); }, false));
  if (from_bucket) {
    auto how = std::make_shared<std::string>();
    const config::BackupS3Config s3 = job->config.s3;
    const uint64_t from_segno = start_segment->segno;
    job->steps.push_back(poolStep(
        "fetch the WAL from s3 into " + wal_dir,
        [s3, from_segno, wal_dir, archive_dir, how](Job&) -> std::function<Status()> {
          return [s3, from_segno, wal_dir, archive_dir, how]() -> Status {
            wal::WalBucket bucket(s3);
            LEVEE_ASSIGN_OR_RETURN(auto fetched, bucket.fetch(from_segno, wal_dir));
            // Then what the local archive holds beyond the bucket (its newest segments and its
            // .partial, at least as new as the bucket's snapshot), when it is on this machine.
            size_t local = 0;
            std::error_code ec;
            std::vector<std::string> names;
            for (auto it = std::filesystem::directory_iterator(archive_dir, ec);
                 !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
              names.push_back(it->path().filename().string());
            }
            for (const auto& name : wal::restoreFetchList(names, from_segno)) {
              const bool partial = name.ends_with(".partial");
              if (!partial && std::filesystem::exists(wal_dir + "/" + name, ec)) {
                continue;
              }
              std::filesystem::copy_file(archive_dir + "/" + name, wal_dir + "/" + name,
                                         std::filesystem::copy_options::overwrite_existing, ec);
              if (ec) {
                return makeError("copy " + archive_dir + "/" + name + ": " + ec.message());
              }
              ++local;
            }
            *how = std::to_string(fetched.files) + " WAL file(s), " + std::to_string(fetched.bytes) +
                   " bytes, downloaded from " + bucket.location() + "; " + std::to_string(local) +
                   " from the local archive " + archive_dir;
            return {};
          };
        },
        [how](Job& j) -> Status {
          j.notes.push_back(*how);
          return {};
        }));
  }
  job->steps.push_back(poolStep(
      "write recovery settings",
      [data_dir, wal_dir, target, from_bucket](Job&) -> std::function<Status()> {
        return [data_dir, wal_dir, target, from_bucket]() -> Status {
          LEVEE_RETURN_IF_ERROR(appendAndSync(data_dir + "/postgresql.auto.conf",
                                              wal::recoverySettings(wal_dir, target), O_APPEND));
          LEVEE_RETURN_IF_ERROR(appendAndSync(data_dir + "/recovery.signal", "", O_TRUNC));
          ::unlink((data_dir + "/standby.signal").c_str());
          // As root, the extracted files belong to the backup's owner (postgres): so does the
          // directory (and the downloaded WAL, which that user reads).
          struct stat st {};
          if (::geteuid() == 0 && ::stat((data_dir + "/PG_VERSION").c_str(), &st) == 0) {
            std::vector<std::string> paths{data_dir};
            std::error_code ec;
            if (from_bucket) {
              paths.push_back(wal_dir);
              for (auto it = std::filesystem::directory_iterator(wal_dir, ec);
                   !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
                paths.push_back(it->path().string());
              }
            }
            for (const auto& p : paths) {
              if (::chown(p.c_str(), st.st_uid, st.st_gid) != 0) {
                return makeError("chown " + p + ": " + std::strerror(errno));
              }
            }
          }
          return {};
        };
      },
      [data_dir, wal_dir, target, from_bucket](Job& j) -> Status {
        j.notes.push_back("data directory " + data_dir + " is ready: start PostgreSQL on it (pg_ctl -D " + data_dir +
                          " start, as the owner of its files); it replays WAL from " + wal_dir + " to " +
                          (target ? target->postgres : std::string("the end of the archive")) +
                          " and promotes" +
                          (from_bucket ? std::string(" (remove ") + wal_dir + " once it has promoted)" : std::string()) +
                          ". levee never replaces a running cluster's data directory.");
        return {};
      }));
  runSteps(job, 0);
  std::string out;
  json::Writer w(out);
  w.beginObject().key("id").value(job->id).key("backup").value(entry.id).key("state").value(job->state);
  w.key("data_dir").value(data_dir);
  w.key("wal_dir").value(wal_dir);
  w.key("status_url").value("/api/v1/backup/" + job->id).endObject();
  return {202, out};
}

}  // namespace levee::companion::backup
