#pragma once
// Internal to companion/backup: one backup or restore job and its runtime state.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "companion/backup/catalog.h"
#include "companion/backup/tools.h"
#include "companion/operation_lock.h"
#include "companion/storage/local_store.h"
#include "config/policy.h"

namespace levee::companion::backup {

struct RestoreRun;  // restore_run.h

struct Job {
  using Next = std::function<void(Status)>;
  using Step = std::function<void(const std::shared_ptr<Job>&, Next)>;

  std::string id;
  std::string kind;     // backup | restore
  std::string type;     // database | storage | full (restore: the backup's type)
  std::string trigger;  // api | schedule | schedule-missed
  std::string state;    // queued, running, verifying, verified, failed (restore: running, succeeded, failed)
  std::string step;     // what runs now, e.g. "pg_dump app"
  std::string error;
  std::vector<std::string> notes;
  int64_t created_at{0};
  int64_t started_at{0};
  int64_t finished_at{0};
  std::chrono::steady_clock::time_point started_mono;
  std::atomic<uint64_t> bytes{0};  // tool output read so far (updated from the thread pool)

  config::BackupConfig config;  // as when the job was created
  storage::LocalStore store{""};
  CatalogEntry entry;           // backup: being built; restore: the backup restored

  std::vector<Step> steps;
  size_t step_index{0};
  ToolRunPtr tool;
  // The artifact being written and verified.
  Artifact current;
  std::shared_ptr<storage::ArtifactSink> sink;
  std::shared_ptr<PgSession> pg;  // holds the exported snapshot while pg_dump runs
  std::string pg_snapshot;
  int pg_dump_major{0};
  std::string restore_data_dir;  // point-in-time restore: the new data directory, removed on failure
  std::string restore_wal_dir;   // point-in-time restore from s3: the downloaded WAL, removed on failure
  std::shared_ptr<RestoreRun> restore;  // restore: plan, per-target progress, temp Redis
  std::optional<OperationLock::Guard> guard;
};

}  // namespace levee::companion::backup
