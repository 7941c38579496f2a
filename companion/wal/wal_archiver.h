#pragma once
// Continuous WAL archiving (policy `companion.backup.wal_archive`, companion/wal/README.md): a
// supervised `pg_receivewal` streaming from a physical replication slot into the archive
// directory, restarted with backoff when it exits, and a status poll that measures how far the
// archive's durable position is behind the primary (bytes and achieved RPO).
//
// Main loop only. The child runs through uv_spawn (its stderr goes to <dir>/pg_receivewal.log);
// directory creation, the log tail and the libpq status queries run on the thread pool.
// With `companion.backup.s3`, every status poll is followed by an upload pass (WalBucket, on the
// pool): complete segments go to the bucket in order, and a snapshot of the .partial every
// `partial_upload_interval`; the bucket's position and RPO are measured like the archive's.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "companion/wal/wal_bucket.h"
#include "companion/wal/wal_math.h"
#include "config/policy.h"
#include "proxy/common/time_source.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/process.h"
#include "proxy/stats/store.h"

namespace levee::companion::backup {
class ToolRun;
class PgSession;
}  // namespace levee::companion::backup

namespace levee::companion::wal {

class WalArchiver {
public:
  WalArchiver(event::Dispatcher& dispatcher, stats::Store& store, const TimeSource& time,
              config::WalArchiveConfig config);
  // Stops pg_receivewal with SIGINT (it flushes and exits) and reaps it: at most 5 s, then
  // SIGKILL. Called at levee's shutdown (the loop no longer runs) and on a reload that changes
  // or removes the block.
  ~WalArchiver();
  WalArchiver(const WalArchiver&) = delete;
  WalArchiver& operator=(const WalArchiver&) = delete;

  void start();
  // A reload replaced or removed the block: stop without blocking the loop. pg_receivewal gets
  // SIGINT and is reaped by the loop; `stopped` runs (on the loop) once it exited, and may
  // destroy this archiver. Nothing is restarted or polled any more.
  void retire(std::function<void()> stopped);
  const config::WalArchiveConfig& config() const { return config_; }

  // The archive's durable position from the last successful status poll (0: not known yet).
  uint64_t archivedLsn() const { return archived_lsn_; }
  uint64_t primaryLsn() const { return primary_lsn_; }
  bool up() const;
  std::string statusJson() const;
  bool usesBucket() const { return bucket_ != nullptr; }
  // Base backups with s3: `done` runs (on the loop) once the bucket holds every segment of
  // [start_lsn, end_lsn] on `timeline` (a snapshot of the .partial is uploaded for it at once),
  // or with an error after `timeout` or when the archiver is retired.
  void whenBucketCovers(uint32_t timeline, uint64_t start_lsn, uint64_t end_lsn, std::chrono::milliseconds timeout,
                        std::function<void(Status)> done);
  // WAL retention in the bucket: the next upload pass removes the segments before `segno`.
  void pruneBucket(uint64_t segno) { prune_before_ = segno; }
  // For the scrape-time gauges (registerWalMetrics).
  void collect(std::string_view family, std::vector<std::pair<stats::Labels, double>>& out) const;

private:
  void prepareAndSpawn();
  void spawn();
  void onExit(const event::ExitStatus& st);
  void scheduleRestart();
  void reportRetired();
  void poll();
  void upload();
  void checkWaiters();
  double nowSeconds() const;

  event::Dispatcher& dispatcher_;
  stats::Store& store_;
  const TimeSource& time_;
  const config::WalArchiveConfig config_;
  std::shared_ptr<bool> alive_;
  std::shared_ptr<backup::ToolRun> create_slot_;
  std::unique_ptr<event::ChildProcess> child_;
  event::TimerPtr restart_timer_;
  event::TimerPtr poll_timer_;
  std::shared_ptr<backup::PgSession> pg_;  // used by one pool task at a time
  bool poll_running_{false};
  std::function<void()> retired_;  // set by retire()
  bool retiring_{false};
  std::chrono::milliseconds backoff_;
  MonotonicTime child_started_{};
  uint64_t starts_{0};
  std::string last_exit_;
  std::string last_error_;  // of the status poll
  // The last status poll.
  bool polled_ok_{false};
  bool slot_active_{false};
  uint64_t primary_lsn_{0};
  uint64_t archived_lsn_{0};
  double rpo_seconds_{0};
  double last_caught_up_{0};     // unix seconds
  double last_segment_time_{0};  // unix seconds: mtime of the newest complete segment
  std::string last_segment_;
  RpoEstimator rpo_;
  stats::Counter& restarts_;
  // The S3 copy (nullptr without companion.backup.s3).
  std::shared_ptr<WalBucket> bucket_;  // used by one pool task at a time
  bool upload_running_{false};
  std::set<std::string> bucket_names_;  // complete segments and history files in the bucket
  std::optional<PartialSnapshot> bucket_partial_;
  uint64_t bucket_lsn_{0};
  double bucket_rpo_seconds_{0};
  size_t upload_pending_{0};
  std::string upload_error_;
  double last_snapshot_{0};  // nowSeconds() of the last snapshot decision
  bool force_snapshot_{false};
  std::optional<uint64_t> prune_before_;
  struct Waiter {
    uint32_t timeline;
    uint64_t start_lsn;
    uint64_t end_lsn;
    MonotonicTime deadline;
    std::function<void(Status)> done;
  };
  std::vector<Waiter> waiters_;
  stats::Counter* uploads_ok_{nullptr};
  stats::Counter* uploads_failed_{nullptr};
  stats::Counter* uploaded_bytes_{nullptr};
};

// Registers the levee_wal_archive_* gauges once per store; `get` returns the running archiver
// (or nullptr: no samples).
void registerWalMetrics(stats::Store& store, std::function<const WalArchiver*()> get);

}  // namespace levee::companion::wal
