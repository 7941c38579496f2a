#pragma once
// Continuous WAL archiving (policy `companion.backup.wal_archive`, companion/wal/README.md): a
// supervised `pg_receivewal` streaming from a physical replication slot into the archive
// directory, restarted with backoff when it exits, and a status poll that measures how far the
// archive's durable position is behind the primary (bytes and achieved RPO).
//
// Main loop only. The child runs through uv_spawn (its stderr goes to <dir>/pg_receivewal.log);
// directory creation, the log tail and the libpq status queries run on the thread pool.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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
  // For the scrape-time gauges (registerWalMetrics).
  void collect(std::string_view family, std::vector<std::pair<stats::Labels, double>>& out) const;

private:
  void prepareAndSpawn();
  void spawn();
  void onExit(const event::ExitStatus& st);
  void scheduleRestart();
  void reportRetired();
  void poll();
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
};

// Registers the levee_wal_archive_* gauges once per store; `get` returns the running archiver
// (or nullptr: no samples).
void registerWalMetrics(stats::Store& store, std::function<const WalArchiver*()> get);

}  // namespace levee::companion::wal
