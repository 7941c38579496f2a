#pragma once
// Backups and restores of the companion (DESIGN section 8, issue 6): jobs, the catalog,
// retention, the schedule, metrics and the /api/v1/backup/* admin API. Main loop only: every
// child process goes through uv_spawn, every file and libpq call through the thread pool.
//
// A backup job runs a list of steps one after the other; each step ends by calling its `next`
// with a Status, and the first error fails the job (state "failed", the error, a log line and
// levee_backup_failures_total). Backups run one at a time (later ones wait as "queued"); a
// restore runs beside them, under the companion's OperationLock.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "companion/backup/catalog.h"
#include "companion/backup/retention.h"
#include "companion/json_value.h"
#include "companion/operation_lock.h"
#include "companion/wal/wal_archiver.h"
#include "config/policy.h"
#include "proxy/common/cron.h"
#include "proxy/common/time_source.h"
#include "proxy/event/dispatcher.h"
#include "proxy/stats/store.h"

namespace levee::companion::storage {
class SetStore;
}  // namespace levee::companion::storage

namespace levee::companion::backup {

struct Job;
struct ToolResult;
using JobPtr = std::shared_ptr<Job>;

struct ApiResponse {
  int status{200};
  std::string body;  // JSON
};

class BackupManager {
public:
  BackupManager(event::Dispatcher& dispatcher, stats::Store& store, OperationLock& lock,
                const TimeSource& time);
  ~BackupManager();
  BackupManager(const BackupManager&) = delete;
  BackupManager& operator=(const BackupManager&) = delete;

  // Applies `companion.backup` (startup and reload). Jobs already running keep the settings
  // they started with. The catalog is (re)loaded from the store directory asynchronously.
  void configure(const config::BackupConfig& config);

  // The admin API: `path` starts with /api/v1/backup. The caller has already checked the bearer
  // token for every method other than GET/HEAD.
  ApiResponse handle(const std::string& method, const std::string& path, const std::string& body);

  // Test and status hooks.
  bool catalogLoaded() const { return catalog_loaded_; }
  size_t catalogSize() const { return catalog_.size(); }
  // The WAL archiver of `wal_archive` (nullptr when off); for metrics and base backups.
  const wal::WalArchiver* walArchiver() const { return wal_.get(); }

private:
  using Next = std::function<void(Status)>;
  using Step = std::function<void(const JobPtr&, Next)>;

  ApiResponse create(const std::string& body);
  ApiResponse restore(const std::string& id, const std::string& body);
  ApiResponse remove(const std::string& id);
  ApiResponse list() const;
  ApiResponse show(const std::string& id) const;

  JobPtr newJob(std::string kind, std::string type, std::string trigger);
  void enqueue(const JobPtr& job);
  void startNext();
  void runSteps(const JobPtr& job, size_t index);
  void finishBackup(const JobPtr& job);
  void finishRestore(const JobPtr& job);
  void failJob(const JobPtr& job, const std::string& error);
  void rememberFinished(const JobPtr& job);

  // Step builders (backup_steps.cc).
  void addPostgresSteps(const JobPtr& job);
  void addRedisSteps(const JobPtr& job);
  void addFilesSteps(const JobPtr& job);
  void addFinalSteps(const JobPtr& job);
  // Restores (restore_steps.cc).
  void addRestoreSteps(const JobPtr& job);
  // Base backups and point-in-time restores (base_backup_steps.cc).
  void addBaseBackupSteps(const JobPtr& job);
  ApiResponse restoreBase(const CatalogEntry& entry, const JsonValue& body);
  void cleanupRestore(const JobPtr& job);  // a failed restore: roll back, then release the lock
  // A restore from the bucket: downloads `artifact` for the job (SetStore::fetchForRestore) and
  // notes how it got it (restore_steps.cc).
  Step fetchFromBucketStep(const storage::SetStore& sets, const Artifact& artifact);
  std::string restoreRefusal(const CatalogEntry& entry) const;  // empty: restorable
  // A step that runs a tool and then `check`s its result on the loop. `env` (optional): extra
  // environment entries for the child.
  Step toolStep(std::string label, std::function<std::vector<std::string>(Job&)> args,
                std::function<Status(Job&, ToolResult&)> check, bool stream_to_sink,
                std::function<std::vector<std::string>(Job&)> env = {});
  // A step whose work runs on the thread pool; `work` gets copies, never the Job.
  // `prepare` (loop) builds the work from the job; `after` (loop) applies its results.
  Step poolStep(std::string label, std::function<std::function<Status()>(Job&)> prepare,
                std::function<Status(Job&)> after = {});
  void runInPool(const JobPtr& job, std::function<Status()> work, std::function<void(Job&, Status)> then);

  void retireWalArchiver();
  void pruneWalArchive();
  // Loads the catalog from the store (the bucket when `s3` is configured; retried every 15 s
  // while the bucket cannot be read, the API answering 503 meanwhile).
  void loadCatalog();
  void applyRetention();
  void scheduleTimer();
  void onScheduleTick();
  void markScheduledRun(int64_t now);
  void updateCatalogMetrics();
  std::string jobJson(const Job& job) const;

  event::Dispatcher& dispatcher_;
  stats::Store& store_;
  OperationLock& lock_;
  const TimeSource& time_;
  config::BackupConfig config_;
  RetentionPolicy retention_;
  std::optional<common::CronSchedule> schedule_;
  event::TimerPtr schedule_timer_;
  bool catalog_loaded_{false};
  std::string catalog_error_;        // why the last catalog load failed (S3)
  event::TimerPtr catalog_retry_timer_;
  uint64_t configure_generation_{0};
  int64_t last_run_{0};  // unix seconds of the last scheduled run (persisted in the store)
  std::vector<CatalogEntry> catalog_;
  std::map<std::string, JobPtr> jobs_;      // running, queued and the last finished ones
  std::deque<std::string> finished_order_;  // bounded history
  std::deque<JobPtr> queue_;
  JobPtr running_backup_;
  std::shared_ptr<bool> alive_;
  uint32_t id_counter_{0};
  std::unique_ptr<wal::WalArchiver> wal_;  // companion.backup.wal_archive
  std::vector<std::unique_ptr<wal::WalArchiver>> retired_wal_;  // stopping after a reload
};

}  // namespace levee::companion::backup
