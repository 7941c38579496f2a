#include "companion/wal/wal_archiver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "companion/backup/tools.h"
#include "companion/failover/lsn.h"
#include "proxy/common/json.h"
#include "proxy/common/logger.h"

namespace levee::companion::wal {
namespace {

constexpr std::string_view kLogFile = "pg_receivewal.log";
constexpr off_t kMaxLogBytes = 1 << 20;  // the log is truncated at a (re)start beyond this
// The primary's position, and the archive's: the slot's confirmed flush position (kept across
// disconnects) and the live connection's flush_lsn.
constexpr const char* kStatusQuery =
    "SELECT pg_current_wal_lsn()::text, s.restart_lsn::text, s.active::text, r.flush_lsn::text "
    "FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1 "
    "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid";

double unixSeconds(const TimeSource& time) {
  return std::chrono::duration<double>(time.systemTime().time_since_epoch()).count();
}

// Pool: the archive directory exists (0700) and the log file is open for appending.
struct Prepared {
  int log_fd{-1};
  std::string error;
};

void prepareDir(const std::string& dir, Prepared& out) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    out.error = "create " + dir + ": " + ec.message();
    return;
  }
  ::chmod(dir.c_str(), 0700);
  const std::string log = dir + "/" + std::string(kLogFile);
  struct stat st {};
  const bool big = ::stat(log.c_str(), &st) == 0 && st.st_size > kMaxLogBytes;
  out.log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (big ? O_TRUNC : 0), 0600);
  if (out.log_fd < 0) {
    out.error = "open " + log + ": " + std::strerror(errno);
  }
}

// Pool: the last `max` bytes of the log, trimmed to whole lines.
std::string logTail(const std::string& dir, size_t max) {
  const std::string log = dir + "/" + std::string(kLogFile);
  int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return {};
  }
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const off_t from = st.st_size > static_cast<off_t>(max) ? st.st_size - static_cast<off_t>(max) : 0;
    out.resize(static_cast<size_t>(st.st_size - from));
    const ssize_t n = ::pread(fd, out.data(), out.size(), from);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (from > 0) {
      if (auto nl = out.find('\n'); nl != std::string::npos) {
        out.erase(0, nl + 1);
      }
    }
  }
  ::close(fd);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  std::ranges::replace(out, '\n', '|');
  return out;
}

struct PollResult {
  std::string error;
  uint64_t primary{0};
  uint64_t archived{0};
  bool slot_exists{false};
  bool slot_active{false};
  std::string newest_segment;
  double newest_mtime{0};
};

// Pool: the newest complete segment in the archive and its modification time.
void newestSegment(const std::string& dir, PollResult& out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return;
  }
  std::optional<SegmentId> best;
  std::string best_name;
  while (dirent* e = ::readdir(d)) {
    auto id = parseSegmentName(e->d_name);
    if (!id || id->partial) {
      continue;
    }
    if (!best || std::tie(id->timeline, id->segno) > std::tie(best->timeline, best->segno)) {
      best = id;
      best_name = e->d_name;
    }
  }
  ::closedir(d);
  struct stat st {};
  if (best && ::stat((dir + "/" + best_name).c_str(), &st) == 0) {
    out.newest_segment = best_name;
    out.newest_mtime = static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
  }
}

}  // namespace

WalArchiver::WalArchiver(event::Dispatcher& dispatcher, stats::Store& store, const TimeSource& time,
                         config::WalArchiveConfig config)
    : dispatcher_(dispatcher),
      store_(store),
      time_(time),
      config_(std::move(config)),
      alive_(std::make_shared<bool>(true)),
      pg_(std::make_shared<backup::PgSession>()),
      backoff_(config_.restart_backoff),
      restarts_(store.counter("levee_wal_archive_restarts_total",
                              "Times levee restarted pg_receivewal after it exited.")) {
  if (config_.s3.enabled) {
    bucket_ = std::make_shared<WalBucket>(config_.s3);
    constexpr std::string_view kUploads = "WAL files uploaded to the bucket (complete segments, history files and "
                                          ".partial snapshots), by result.";
    uploads_ok_ = &store.counter("levee_wal_archive_uploads_total", kUploads, {{"result", "ok"}});
    uploads_failed_ = &store.counter("levee_wal_archive_uploads_total", kUploads, {{"result", "failed"}});
    uploaded_bytes_ = &store.counter("levee_wal_archive_uploaded_bytes_total", "WAL bytes uploaded to the bucket.");
  }
}

WalArchiver::~WalArchiver() {
  alive_.reset();
  waiters_.clear();
  restart_timer_.reset();
  poll_timer_.reset();
  create_slot_.reset();  // kills a running --create-slot
  if (child_ && child_->running()) {
    const int pid = child_->pid();
    child_->kill(SIGINT);  // pg_receivewal flushes what it has and exits
    bool reaped = false;
    for (int i = 0; i < 500 && !reaped; ++i) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      reaped = r == pid || (r < 0 && errno == ECHILD);
      if (!reaped) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!reaped) {
      LEVEE_LOG(Companion, warn, "wal archive: pg_receivewal (pid {}) ignored SIGINT for 5 s: SIGKILL", pid);
      ::kill(pid, SIGKILL);
      int status = 0;
      (void)::waitpid(pid, &status, 0);
    }
    LEVEE_LOG(Companion, info, "wal archive: pg_receivewal (pid {}) stopped", pid);
  }
  child_.reset();
}

double WalArchiver::nowSeconds() const {
  return std::chrono::duration<double>(time_.monotonicTime().time_since_epoch()).count();
}

void WalArchiver::start() {
  LEVEE_LOG(Companion, info, "wal archive: streaming into {} through slot {}", config_.dir, config_.slot);
  poll_timer_ = dispatcher_.createTimer([this] { poll(); });
  poll_timer_->enableRepeating(config_.status_interval);
  restart_timer_ = dispatcher_.createTimer([this] { prepareAndSpawn(); });
  prepareAndSpawn();
}

void WalArchiver::retire(std::function<void()> stopped) {
  retiring_ = true;
  retired_ = std::move(stopped);
  for (auto& w : waiters_) {
    dispatcher_.post([done = std::move(w.done)] { done(makeError("the WAL archive was reconfigured (reload)")); });
  }
  waiters_.clear();
  restart_timer_.reset();
  poll_timer_.reset();
  create_slot_.reset();
  if (child_ && child_->running()) {
    LEVEE_LOG(Companion, info, "wal archive: stopping pg_receivewal (pid {}): the policy changed", child_->pid());
    child_->kill(SIGINT);  // onExit() reports the exit and calls `stopped`
    return;
  }
  reportRetired();
}

void WalArchiver::reportRetired() {
  std::weak_ptr<bool> alive = alive_;
  dispatcher_.post([this, alive] {
    if (!alive.expired() && retired_) {
      auto cb = std::move(retired_);
      cb();  // may destroy this archiver
    }
  });
}

bool WalArchiver::up() const { return child_ && child_->running() && polled_ok_ && slot_active_; }

void WalArchiver::prepareAndSpawn() {
  // 1. The slot exists before pg_receivewal streams from it, so the primary keeps every WAL
  //    segment the archive has not confirmed, across restarts of pg_receivewal and of levee.
  std::weak_ptr<bool> alive = alive_;
  create_slot_ = backup::runTool(
      dispatcher_,
      {"pg_receivewal", "--create-slot", "--if-not-exists", "--slot", config_.slot, "-d", config_.dsn}, {},
      [this, alive](backup::ToolResult r) {
        if (alive.expired()) {
          return;
        }
        auto keep = std::move(create_slot_);
        if (!r.exit.ok()) {
          last_exit_ = r.describe("pg_receivewal --create-slot");
          LEVEE_LOG(Companion, err, "wal archive: {}", last_exit_);
          scheduleRestart();
          return;
        }
        // 2. The directory and the log file, off the loop; then spawn.
        auto prepared = std::make_shared<Prepared>();
        const std::string dir = config_.dir;
        event::queueWork(
            dispatcher_, [dir, prepared] { prepareDir(dir, *prepared); },
            [this, alive, prepared] {
              if (alive.expired() || retiring_) {
                if (prepared->log_fd >= 0) {
                  ::close(prepared->log_fd);
                }
                return;
              }
              if (!prepared->error.empty()) {
                last_exit_ = prepared->error;
                LEVEE_LOG(Companion, err, "wal archive: {}", prepared->error);
                scheduleRestart();
                return;
              }
              event::SpawnOptions opts;
              opts.args = {"pg_receivewal", "-D", config_.dir, "--slot", config_.slot, "--no-loop", "-v",
                           "-d", config_.dsn + " application_name=levee_wal_archive"};
              if (config_.synchronous) {
                opts.args.insert(opts.args.begin() + 1, "--synchronous");
              }
              opts.stdout_fd = prepared->log_fd;
              opts.stderr_fd = prepared->log_fd;
              std::weak_ptr<bool> alive2 = alive_;
              child_ = std::make_unique<event::ChildProcess>(dispatcher_, std::move(opts),
                                                             [this, alive2](const event::ExitStatus& st) {
                                                               if (!alive2.expired()) {
                                                                 onExit(st);
                                                               }
                                                             });
              ::close(prepared->log_fd);  // the child has its copy
              ++starts_;
              child_started_ = time_.monotonicTime();
              if (starts_ > 1) {
                restarts_.inc();
              }
              if (child_->running()) {
                LEVEE_LOG(Companion, info, "wal archive: pg_receivewal started (pid {}, start #{}, slot {}, {})",
                          child_->pid(), starts_, config_.slot, config_.dir);
              }
            });
      });
}

void WalArchiver::onExit(const event::ExitStatus& st) {
  last_exit_ = "pg_receivewal: " + st.describe();
  const auto ran = time_.monotonicTime() - child_started_;
  // The callback runs inside child_: release it on the next iteration, not here.
  const int pid = child_->pid();
  dispatcher_.post([child = std::shared_ptr<event::ChildProcess>(std::move(child_))] {});
  if (retiring_) {
    LEVEE_LOG(Companion, info, "wal archive: pg_receivewal (pid {}) stopped ({})", pid, st.describe());
    reportRetired();
    return;
  }
  if (ran >= config_.max_restart_backoff) {
    backoff_ = config_.restart_backoff;  // it ran fine for a while: start the backoff over
  }
  std::weak_ptr<bool> alive = alive_;
  auto tail = std::make_shared<std::string>();
  const std::string dir = config_.dir;
  event::queueWork(
      dispatcher_, [dir, tail] { *tail = logTail(dir, 600); },
      [this, alive, tail] {
        if (alive.expired()) {
          return;
        }
        LEVEE_LOG(Companion, err, "wal archive: {} (restart in {} ms): {}", last_exit_, backoff_.count(),
                  tail->empty() ? "no output" : *tail);
      });
  scheduleRestart();
}

void WalArchiver::scheduleRestart() {
  if (retiring_ || !restart_timer_) {
    return;
  }
  restart_timer_->enable(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(config_.max_restart_backoff));
}

void WalArchiver::poll() {
  if (poll_running_) {
    return;
  }
  poll_running_ = true;
  auto result = std::make_shared<PollResult>();
  auto pg = pg_;
  const std::string conninfo = backup::conninfoFor(config_.dsn, "postgres");
  const std::string slot = config_.slot;
  const std::string dir = config_.dir;
  std::weak_ptr<bool> alive = alive_;
  event::queueWork(
      dispatcher_,
      [pg, conninfo, slot, dir, result] {
        newestSegment(dir, *result);
        auto rows = pg->query(
            kStatusQuery, {slot});
        if (!rows) {  // not connected yet, or the connection broke: one reconnect per poll
          pg->close();
          if (auto st = pg->connect(conninfo); !st) {
            result->error = st.error().message;
            return;
          }
          rows = pg->query(
              kStatusQuery, {slot});
        }
        if (!rows) {
          result->error = rows.error().message;
          pg->close();
          return;
        }
        const auto& row = rows->at(0);
        result->primary = failover::parseLsn(row.at(0)).value_or(0);
        result->slot_exists = !row.at(1).empty() || !row.at(2).empty();
        result->slot_active = row.at(2) == "true";
        // The slot's restart_lsn is the flush position pg_receivewal last confirmed (kept across
        // disconnects); flush_lsn of the live connection can be newer.
        result->archived = std::max(failover::parseLsn(row.at(1)).value_or(0),
                                    failover::parseLsn(row.at(3)).value_or(0));
      },
      [this, alive, result] {
        if (alive.expired()) {
          return;
        }
        poll_running_ = false;
        if (!result->newest_segment.empty()) {
          last_segment_ = result->newest_segment;
          last_segment_time_ = result->newest_mtime;
        }
        if (!result->error.empty()) {
          if (result->error != last_error_) {
            LEVEE_LOG(Companion, warn, "wal archive: status query failed: {}", result->error);
          }
          last_error_ = result->error;
          polled_ok_ = false;
          if (bucket_) {
            upload();  // the local archive still goes up while the primary cannot be queried
          }
          return;
        }
        last_error_.clear();
        polled_ok_ = true;
        slot_active_ = result->slot_active;
        primary_lsn_ = result->primary;
        if (result->slot_exists) {
          archived_lsn_ = result->archived;
        }
        const double now = nowSeconds();
        rpo_.addPrimarySample(now, primary_lsn_);
        rpo_seconds_ = archived_lsn_ == 0 ? 0 : rpo_.rpoSeconds(now, archived_lsn_);
        if (archived_lsn_ != 0 && archived_lsn_ >= primary_lsn_) {
          last_caught_up_ = unixSeconds(time_);
        }
        if (bucket_) {
          bucket_rpo_seconds_ = bucket_lsn_ == 0 ? 0 : rpo_.rpoSeconds(now, bucket_lsn_);
          upload();
        }
      });
}

void WalArchiver::upload() {
  checkWaiters();
  if (upload_running_ || retiring_) {
    return;
  }
  upload_running_ = true;
  const double now = nowSeconds();
  WalBucket::PassInput in;
  in.dir = config_.dir;
  in.archived_lsn = archived_lsn_;
  in.keep_local = config_.s3.keep_local;
  const auto interval = std::chrono::duration<double>(config_.partial_upload_interval).count();
  in.snapshot_partial = force_snapshot_ || (interval > 0 && now - last_snapshot_ >= interval);
  if (in.snapshot_partial) {
    last_snapshot_ = now;
    force_snapshot_ = false;
  }
  in.prune_before = std::exchange(prune_before_, std::nullopt);
  auto result = std::make_shared<WalBucket::PassResult>();
  auto bucket = bucket_;
  std::weak_ptr<bool> alive = alive_;
  event::queueWork(
      dispatcher_, [bucket, in, result] { bucket->pass(in, *result); },
      [this, alive, result, location = bucket_->location()] {
        if (alive.expired()) {
          return;
        }
        upload_running_ = false;
        const WalBucket::PassResult& r = *result;
        bucket_names_.insert(r.added.begin(), r.added.end());
        for (const auto& name : r.removed) {
          bucket_names_.erase(name);
        }
        bucket_partial_ = r.partial;
        upload_pending_ = r.pending;
        uploads_ok_->inc(r.uploaded);
        uploads_failed_->inc(r.failed);
        uploaded_bytes_->inc(r.bytes);
        if (r.uploaded > (r.snapshot_uploaded ? 1u : 0u)) {  // not for the .partial snapshots alone
          LEVEE_LOG(Companion, info, "wal archive: {} file(s), {} bytes uploaded to {} ({} removed locally, {} pending)",
                    r.uploaded, r.bytes, location, r.removed_local, r.pending);
        }
        if (!r.removed.empty()) {
          LEVEE_LOG(Companion, info, "wal archive: WAL retention removed {} segment(s) from {}", r.removed.size(),
                    location);
        }
        if (!r.error.empty() && r.error != upload_error_) {
          LEVEE_LOG(Companion, err, "wal archive: upload to {} failed (retried every status_interval): {}", location,
                    r.error);
        }
        upload_error_ = r.error;
        bucket_lsn_ = bucketPosition(bucket_names_, bucket_partial_);
        bucket_rpo_seconds_ = bucket_lsn_ == 0 ? 0 : rpo_.rpoSeconds(nowSeconds(), bucket_lsn_);
        checkWaiters();
      });
}

void WalArchiver::whenBucketCovers(uint32_t timeline, uint64_t start_lsn, uint64_t end_lsn,
                                   std::chrono::milliseconds timeout, std::function<void(Status)> done) {
  if (!bucket_ || retiring_) {
    dispatcher_.post([done = std::move(done)] { done(makeError("the WAL archive does not upload to a bucket")); });
    return;
  }
  waiters_.push_back({timeline, start_lsn, end_lsn, time_.monotonicTime() + timeout, std::move(done)});
  checkWaiters();
}

void WalArchiver::checkWaiters() {
  const MonotonicTime now = time_.monotonicTime();
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (bucketCovers(bucket_names_, bucket_partial_, it->timeline, it->start_lsn, it->end_lsn)) {
      dispatcher_.post([done = std::move(it->done)] { done({}); });
    } else if (now >= it->deadline) {
      const std::string why = "the bucket " + (bucket_ ? bucket_->location() : std::string()) +
                              " did not get the WAL " + failover::formatLsn(it->start_lsn) + ".." +
                              failover::formatLsn(it->end_lsn) + " in time" +
                              (upload_error_.empty() ? std::string() : " (last upload error: " + upload_error_ + ")");
      dispatcher_.post([done = std::move(it->done), why] { done(makeError(why)); });
    } else {
      force_snapshot_ = true;  // the end is usually in the .partial: upload it now
      ++it;
      continue;
    }
    it = waiters_.erase(it);
  }
}

std::string WalArchiver::statusJson() const {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("dir").value(config_.dir).key("slot").value(config_.slot).key("synchronous").value(config_.synchronous);
  w.key("running").value(child_ && child_->running());
  w.key("pid").value(static_cast<int64_t>(child_ && child_->running() ? child_->pid() : 0));
  w.key("up").value(up());
  w.key("starts").value(starts_);
  w.key("restarts").value(starts_ > 0 ? starts_ - 1 : 0);
  w.key("last_exit").value(last_exit_);
  w.key("slot_active").value(slot_active_);
  w.key("primary_lsn").value(failover::formatLsn(primary_lsn_));
  w.key("archived_lsn").value(failover::formatLsn(archived_lsn_));
  w.key("lag_bytes").value(failover::lsnLag(primary_lsn_, archived_lsn_));
  w.key("rpo_seconds").value(rpo_seconds_);
  w.key("last_caught_up").value(last_caught_up_);
  w.key("last_segment").value(last_segment_);
  w.key("last_segment_time").value(last_segment_time_);
  if (!last_error_.empty()) {
    w.key("status_error").value(last_error_);
  }
  if (bucket_) {
    w.key("bucket").beginObject();
    w.key("location").value(bucket_->location());
    w.key("position_lsn").value(failover::formatLsn(bucket_lsn_));
    w.key("lag_bytes").value(failover::lsnLag(primary_lsn_, bucket_lsn_));
    w.key("rpo_seconds").value(bucket_rpo_seconds_);
    w.key("files").value(static_cast<uint64_t>(bucket_names_.size()));
    w.key("pending").value(static_cast<uint64_t>(upload_pending_));
    w.key("partial_lsn").value(bucket_partial_ ? failover::formatLsn(bucket_partial_->lsn) : std::string());
    if (!upload_error_.empty()) {
      w.key("upload_error").value(upload_error_);
    }
    w.endObject();
  }
  w.endObject();
  return out;
}

void WalArchiver::collect(std::string_view family, std::vector<std::pair<stats::Labels, double>>& out) const {
  if (family == "levee_wal_archive_up") {
    out.push_back({{}, up() ? 1.0 : 0.0});
  } else if (family == "levee_wal_archive_lag_bytes") {
    if (polled_ok_ || archived_lsn_ != 0) {
      out.push_back({{}, static_cast<double>(failover::lsnLag(primary_lsn_, archived_lsn_))});
    }
  } else if (family == "levee_wal_archive_rpo_seconds") {
    if (archived_lsn_ != 0) {
      out.push_back({{}, rpo_seconds_});
    }
  } else if (family == "levee_wal_archive_last_segment_timestamp_seconds") {
    out.push_back({{}, last_segment_time_});
  } else if (family == "levee_wal_archive_caught_up_timestamp_seconds") {
    out.push_back({{}, last_caught_up_});
  } else if (bucket_ && family == "levee_wal_archive_bucket_lag_bytes") {
    if (polled_ok_ || bucket_lsn_ != 0) {
      out.push_back({{}, static_cast<double>(failover::lsnLag(primary_lsn_, bucket_lsn_))});
    }
  } else if (bucket_ && family == "levee_wal_archive_bucket_rpo_seconds") {
    if (bucket_lsn_ != 0) {
      out.push_back({{}, bucket_rpo_seconds_});
    }
  } else if (bucket_ && family == "levee_wal_archive_upload_pending") {
    out.push_back({{}, static_cast<double>(upload_pending_)});
  }
}

void registerWalMetrics(stats::Store& store, std::function<const WalArchiver*()> get) {
  struct Family {
    std::string_view name;
    std::string_view help;
  };
  static constexpr Family kFamilies[] = {
      {"levee_wal_archive_up", "1 while pg_receivewal runs and streams from its slot."},
      {"levee_wal_archive_lag_bytes", "WAL bytes the primary wrote that the archive has not flushed yet."},
      {"levee_wal_archive_rpo_seconds",
       "Achieved RPO: seconds since the primary was at the archive's flushed position (0 when caught up)."},
      {"levee_wal_archive_last_segment_timestamp_seconds",
       "Unix time the newest complete WAL segment was written to the archive (0: none yet)."},
      {"levee_wal_archive_caught_up_timestamp_seconds",
       "Unix time of the last status poll that saw the archive caught up with the primary."},
      {"levee_wal_archive_bucket_lag_bytes",
       "WAL bytes the primary wrote that the S3 copy of the archive does not hold yet."},
      {"levee_wal_archive_bucket_rpo_seconds",
       "RPO of the S3 copy: seconds since the primary was at the bucket's position (0 when caught up)."},
      {"levee_wal_archive_upload_pending", "Complete WAL segments and history files waiting for their upload."},
  };
  for (const Family& f : kFamilies) {
    store.gaugeCallback(f.name, f.help,
                        [get, name = f.name](std::vector<std::pair<stats::Labels, double>>& out) {
                          if (const WalArchiver* a = get()) {
                            a->collect(name, out);
                          }
                        });
  }
}

}  // namespace levee::companion::wal
