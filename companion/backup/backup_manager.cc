#include "companion/backup/backup_manager.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "companion/backup/job.h"
#include "companion/backup/restore_run.h"
#include "companion/json_value.h"
#include "companion/storage/s3_store.h"
#include "proxy/common/json.h"
#include "proxy/common/logger.h"
#include "proxy/event/process.h"

namespace levee::companion::backup {
namespace {

constexpr size_t kFinishedJobsKept = 100;
constexpr std::string_view kPrefix = "/api/v1/backup";
constexpr std::string_view kTypes[] = {"database", "storage", "full", "base"};

ApiResponse error(int status, std::string_view message) {
  std::string body;
  json::Writer w(body);
  w.beginObject().key("error").value(message).endObject();
  return {status, body};
}

int64_t unixNow(const TimeSource& time) {
  return std::chrono::duration_cast<std::chrono::seconds>(time.systemTime().time_since_epoch()).count();
}

const std::vector<double>& durationBuckets() {
  static const std::vector<double> kBuckets{1, 5, 15, 60, 300, 900, 1800, 3600, 10800, 43200};
  return kBuckets;
}

}  // namespace

BackupManager::BackupManager(event::Dispatcher& dispatcher, stats::Store& store, OperationLock& lock,
                             const TimeSource& time)
    : dispatcher_(dispatcher), store_(store), lock_(lock), time_(time), alive_(std::make_shared<bool>(true)) {
  for (std::string_view type : kTypes) {
    const stats::Labels labels{{"type", std::string(type)}};
    store_.gauge("levee_backup_last_success_timestamp_seconds",
                 "Unix time of the newest verified backup of this type (0: none yet).", labels);
    store_.gauge("levee_backup_last_size_bytes", "Stored size of the newest verified backup of this type.", labels);
    store_.counter("levee_backup_failures_total", "Backup jobs that failed, by type.", labels);
    store_.counter("levee_backup_success_total", "Backup jobs verified and cataloged, by type.", labels);
    store_.histogram("levee_backup_duration_seconds", "Duration of successful backup jobs (dump and verification).",
                     durationBuckets(), labels);
  }
  for (std::string_view result : {"success", "failure"}) {
    store_.counter("levee_restore_total", "Restores by result.", {{"result", std::string(result)}});
  }
  store_.counter("levee_backup_expired_total", "Backups removed by retention.");
}

BackupManager::~BackupManager() {
  alive_.reset();
  schedule_timer_.reset();
  catalog_retry_timer_.reset();
  queue_.clear();
  running_backup_.reset();
  jobs_.clear();  // kills running children; pool callbacks find their job gone
}

void BackupManager::configure(const config::BackupConfig& config) {
  const bool store_changed = config.dir != config_.dir || config.s3 != config_.s3 || configure_generation_ == 0;
  if (wal_ && (!config.wal_archive.enabled || wal_->config() != config.wal_archive)) {
    retireWalArchiver();
  }
  if (config.wal_archive.enabled && !wal_) {
    wal_ = std::make_unique<wal::WalArchiver>(dispatcher_, store_, time_, config.wal_archive);
    wal_->start();
  }
  config_ = config;
  retention_ = RetentionPolicy{config.retention_daily, config.retention_weekly, config.retention_monthly};
  schedule_.reset();
  if (!config.schedule.empty()) {
    if (auto parsed = common::CronSchedule::parse(config.schedule)) {
      schedule_ = std::move(*parsed);
    }
  }
  if (!store_changed) {
    scheduleTimer();
    return;
  }
  ++configure_generation_;
  catalog_loaded_ = false;
  catalog_error_.clear();
  if (catalog_retry_timer_) {
    catalog_retry_timer_->disable();
  }
  loadCatalog();
}

void BackupManager::loadCatalog() {
  const uint64_t generation = configure_generation_;
  struct Loaded {
    storage::SetStore::Loaded sets;
    std::optional<int64_t> last_run;
    JournalReplay replay;  // a restore interrupted by a crash (restore_targets.h)
  };
  auto loaded = std::make_shared<Loaded>();
  storage::SetStore sets(config_);
  storage::LocalStore store(config_.dir);
  const std::string maint = conninfoFor(config_.postgres_dsn, "postgres");
  std::weak_ptr<bool> alive = alive_;
  event::queueWork(
      dispatcher_,
      [sets, store, loaded, maint, config = config_] {
        // A restore interrupted by a crash is rolled back or forward before the catalog is served.
        loaded->replay = replayJournal(store.dir(), maint, [&config] { return readRedisAuth(config); });
        loaded->sets = sets.load();
        loaded->last_run = store.readLastRun();
      },
      [this, alive, loaded, generation, store] {
        if (alive.expired() || generation != configure_generation_) {
          return;
        }
        const storage::SetStore::Loaded& l = loaded->sets;
        if (!l.error.empty()) {
          LEVEE_LOG(Main, err, "backup: store {}: {}", config_.dir, l.error);
          if (config_.s3.enabled) {  // the bucket is the source of truth: no catalog without it
            catalog_error_ = l.error;
            if (!catalog_retry_timer_) {
              catalog_retry_timer_ = dispatcher_.createTimer([this] { loadCatalog(); });
            }
            catalog_retry_timer_->enable(std::chrono::milliseconds(15000));
            return;
          }
        }
        catalog_error_.clear();
        if (const JournalReplay& r = loaded->replay; r.found) {
          LEVEE_LOG(Main, err, "backup: restore {} was interrupted (levee stopped in its {} phase): {}",
                    r.restore_id.empty() ? "?" : r.restore_id, r.phase.empty() ? "?" : r.phase,
                    r.error.empty() ? (r.phase == "swap" ? "rolling forward" : "rolling back") : r.error);
          for (const auto& a : r.actions) {
            LEVEE_LOG(Main, err, "backup: interrupted restore: {}", a);
          }
        }
        for (const auto& p : l.problems) {
          LEVEE_LOG(Main, err, "backup: catalog: {} (skipped)", p);
        }
        for (const auto& o : l.orphans) {
          LEVEE_LOG(Main, warn, "backup: removed unverified set {} (interrupted job)", o);
        }
        catalog_ = std::move(loaded->sets.entries);
        catalog_loaded_ = true;
        updateCatalogMetrics();
        pruneWalArchive();
        LEVEE_LOG(Main, info, "backup: {} verified backup(s) in {}", catalog_.size(),
                  config_.s3.enabled ? "s3://" + config_.s3.bucket + "/" + config_.s3.prefix : config_.dir);
        const int64_t now = unixNow(time_);
        if (schedule_) {
          if (!loaded->last_run) {
            // First start with a schedule: the baseline for missed-run detection.
            event::queueWork(dispatcher_, [store, now] { (void)store.writeLastRun(now); }, [] {});
            last_run_ = now;
          } else {
            last_run_ = *loaded->last_run;
            if (common::missedRun(*schedule_, std::chrono::sys_seconds(std::chrono::seconds(*loaded->last_run)),
                                  std::chrono::sys_seconds(std::chrono::seconds(now)))) {
              LEVEE_LOG(Main, warn, "backup: a scheduled run was missed while levee was down: running it now");
              markScheduledRun(now);
              enqueue(newJob("backup", "full", "schedule-missed"));
            }
          }
        }
        scheduleTimer();
        startNext();
      });
}

// A reload changed or removed wal_archive: the old pg_receivewal is stopped and reaped by the
// loop (never waited for on it); a new one on the same slot restarts with backoff until the old
// one has let go of the slot.
void BackupManager::retireWalArchiver() {
  wal::WalArchiver* old = wal_.get();
  retired_wal_.push_back(std::move(wal_));
  std::weak_ptr<bool> alive = alive_;
  old->retire([this, alive, old] {
    if (!alive.expired()) {
      std::erase_if(retired_wal_, [old](const auto& w) { return w.get() == old; });
    }
  });
}

// === scheduling ===

void BackupManager::scheduleTimer() {
  if (!schedule_) {
    schedule_timer_.reset();
    return;
  }
  if (!schedule_timer_) {
    schedule_timer_ = dispatcher_.createTimer([this] { onScheduleTick(); });
  }
  const auto now = std::chrono::floor<std::chrono::seconds>(time_.systemTime());
  auto next = schedule_->next(now);
  std::chrono::milliseconds delay(60000);
  if (next) {
    delay = std::min(delay, std::chrono::duration_cast<std::chrono::milliseconds>(*next - now) +
                                std::chrono::milliseconds(50));
  }
  schedule_timer_->enable(std::max(delay, std::chrono::milliseconds(50)));
}

void BackupManager::markScheduledRun(int64_t now) {
  last_run_ = now;
  storage::LocalStore store(config_.dir);
  event::queueWork(dispatcher_, [store, now] {
    if (auto st = store.writeLastRun(now); !st) {
      LEVEE_LOG(Main, err, "backup: cannot record the schedule's last run: {}", st.error().message);
    }
  }, [] {});
}

void BackupManager::onScheduleTick() {
  if (schedule_ && catalog_loaded_) {
    const int64_t now = unixNow(time_);
    auto prev = schedule_->previous(std::chrono::sys_seconds(std::chrono::seconds(now)));
    if (prev && prev->time_since_epoch().count() > last_run_) {
      markScheduledRun(now);
      enqueue(newJob("backup", "full", "schedule"));
    }
  }
  scheduleTimer();
}

// === jobs ===

JobPtr BackupManager::newJob(std::string kind, std::string type, std::string trigger) {
  auto job = std::make_shared<Job>();
  const int64_t now = unixNow(time_);
  std::string stamp = isoTime(now);
  std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });  // 20261202T004512Z
  static thread_local std::mt19937 rng{std::random_device{}()};
  // A per-process sequence number orders backups finished within the same second (retention
  // sorts by finish time, then id); two random hex digits keep ids unique across restarts.
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "%04x%02x", static_cast<unsigned>(++id_counter_ & 0xffff),
                static_cast<unsigned>(rng() & 0xff));
  job->id = std::string(kind == "restore" ? "r-" : "b-") + stamp + "-" + suffix;
  job->kind = std::move(kind);
  job->type = std::move(type);
  job->trigger = std::move(trigger);
  job->state = "queued";
  job->created_at = now;
  job->config = config_;
  job->store = storage::LocalStore(config_.dir);
  jobs_[job->id] = job;
  return job;
}

void BackupManager::enqueue(const JobPtr& job) {
  queue_.push_back(job);
  startNext();
}

void BackupManager::startNext() {
  if (running_backup_ || queue_.empty() || !catalog_loaded_) {
    return;
  }
  running_backup_ = queue_.front();
  queue_.pop_front();
  JobPtr job = running_backup_;
  job->state = "running";
  job->started_at = unixNow(time_);
  job->started_mono = time_.monotonicTime();
  job->entry.id = job->id;
  job->entry.type = job->type;
  job->entry.trigger = job->trigger;
  job->entry.started_at = job->started_at;
  LEVEE_LOG(Main, info, "backup {}: started ({}, {})", job->id, job->type, job->trigger);
  job->steps.clear();
  job->steps.push_back(poolStep("prepare", [](Job& j) -> std::function<Status()> {
    storage::LocalStore store = j.store;
    std::string id = j.id;
    return [store, id]() -> Status {
      auto dir = store.createSetDir(id);
      if (!dir) {
        return std::unexpected(dir.error());
      }
      return {};
    };
  }));
  const bool db = job->type != "storage" && job->type != "base";
  const bool files = job->type != "database" && job->type != "base";
  if (job->type == "base") {
    addBaseBackupSteps(job);
  }
  if (db && !job->config.postgres_databases.empty()) {
    addPostgresSteps(job);
  }
  if (db && job->config.redis_enabled) {
    addRedisSteps(job);
  }
  if (files && !job->config.file_paths.empty()) {
    addFilesSteps(job);
  }
  addFinalSteps(job);
  runSteps(job, 0);
}

void BackupManager::runSteps(const JobPtr& job, size_t index) {
  if (index >= job->steps.size()) {
    if (job->kind == "restore") {
      finishRestore(job);
    } else {
      finishBackup(job);
    }
    return;
  }
  job->step_index = index;
  std::weak_ptr<Job> weak = job;
  Step step = job->steps[index];
  step(job, [this, weak, index](Status st) {
    JobPtr j = weak.lock();
    if (!j || j->state == "failed") {
      return;
    }
    if (!st) {
      failJob(j, st.error().message);
      return;
    }
    runSteps(j, index + 1);
  });
}

void BackupManager::runInPool(const JobPtr& job, std::function<Status()> work,
                              std::function<void(Job&, Status)> then) {
  auto result = std::make_shared<Status>();
  std::weak_ptr<Job> weak = job;
  event::queueWork(
      dispatcher_, [work = std::move(work), result] { *result = work(); },
      [weak, result, then = std::move(then)] {
        if (JobPtr j = weak.lock()) {
          then(*j, *result);
        }
      });
}

BackupManager::Step BackupManager::poolStep(std::string label, std::function<std::function<Status()>(Job&)> prepare,
                                            std::function<Status(Job&)> after) {
  return [this, label, prepare, after](const JobPtr& job, Next next) {
    job->step = label;
    runInPool(job, prepare(*job), [after, next](Job& j, Status st) {
      if (st && after) {
        st = after(j);
      }
      next(std::move(st));
    });
  };
}

BackupManager::Step BackupManager::toolStep(std::string label, std::function<std::vector<std::string>(Job&)> args,
                                            std::function<Status(Job&, ToolResult&)> check, bool stream_to_sink,
                                            std::function<std::vector<std::string>(Job&)> env) {
  return [this, label, args, check, stream_to_sink, env](const JobPtr& job, Next next) {
    job->step = label;
    StdoutSink sink;
    if (stream_to_sink) {
      std::shared_ptr<storage::ArtifactSink> artifact = job->sink;
      sink = [artifact](const char* data, size_t n) { return artifact->write(data, n); };
    }
    std::weak_ptr<Job> weak = job;
    job->tool = runTool(
        dispatcher_, args(*job), std::move(sink),
        [weak, check, next](ToolResult result) {
          JobPtr j = weak.lock();
          if (!j) {
            return;
          }
          // Keep the run alive until this callback returns (it owns the callback being run).
          ToolRunPtr keep = std::move(j->tool);
          Status st = check(*j, result);
          next(std::move(st));
        },
        stream_to_sink ? &job->bytes : nullptr, env ? env(*job) : std::vector<std::string>{});
  };
}

void BackupManager::finishBackup(const JobPtr& job) {
  job->state = "verified";
  job->step.clear();
  job->finished_at = job->entry.finished_at;
  catalog_.push_back(job->entry);
  const stats::Labels labels{{"type", job->type}};
  store_.counter("levee_backup_success_total", "", labels).inc();
  const double seconds =
      std::chrono::duration<double>(time_.monotonicTime() - job->started_mono).count();
  store_.histogram("levee_backup_duration_seconds", "", durationBuckets(), labels).record(seconds);
  updateCatalogMetrics();
  LEVEE_LOG(Main, info, "backup {}: verified and cataloged ({} artifact(s), {} bytes, {:.1f}s)", job->id,
            job->entry.artifacts.size(), job->entry.totalSize(), seconds);
  rememberFinished(job);
  running_backup_.reset();
  applyRetention();
  startNext();
}

void BackupManager::finishRestore(const JobPtr& job) {
  job->state = "succeeded";
  job->step.clear();
  job->finished_at = unixNow(time_);
  job->guard.reset();
  store_.counter("levee_restore_total", "", {{"result", "success"}}).inc();
  if (storage::SetStore sets(job->config); sets.usesS3()) {
    event::queueWork(dispatcher_, [sets, id = job->id] { sets.cleanupRestore(id); }, [] {});
  }
  if (job->type == "base") {
    LEVEE_LOG(Main, info, "restore {}: backup {} prepared in {}: start PostgreSQL on it", job->id, job->entry.id,
              job->restore_data_dir);
    job->restore_data_dir.clear();
    job->restore_wal_dir.clear();
  } else {
    LEVEE_LOG(Main, info, "restore {}: backup {} restored and swapped in", job->id, job->entry.id);
  }
  rememberFinished(job);
}

void BackupManager::failJob(const JobPtr& job, const std::string& message) {
  job->state = "failed";
  job->error = job->step.empty() ? message : job->step + ": " + message;
  job->finished_at = unixNow(time_);
  job->tool.reset();
  job->sink.reset();
  std::shared_ptr<PgSession> pg = std::move(job->pg);
  if (job->kind == "restore") {
    store_.counter("levee_restore_total", "", {{"result", "failure"}}).inc();
    LEVEE_LOG(Main, err, "restore {} of backup {} FAILED: {}", job->id, job->entry.id, job->error);
    if (pg) {
      event::queueWork(dispatcher_, [pg] { pg->close(); }, [] {});
    }
    if (storage::SetStore sets(job->config); sets.usesS3()) {  // the downloaded artifacts
      event::queueWork(dispatcher_, [sets, id = job->id] { sets.cleanupRestore(id); }, [] {});
    }
    if (!job->restore_data_dir.empty()) {
      // A half-prepared data directory (point-in-time restore): removed under the lock.
      auto guard = std::make_shared<std::optional<OperationLock::Guard>>(std::move(job->guard));
      event::queueWork(
          dispatcher_,
          [data_dir = job->restore_data_dir, wal_dir = job->restore_wal_dir] {
            std::error_code ec;
            std::filesystem::remove_all(data_dir, ec);
            if (!wal_dir.empty()) {
              std::filesystem::remove_all(wal_dir, ec);
            }
          },
          [guard] { guard->reset(); });
    } else {
      cleanupRestore(job);  // restore_steps.cc: rolls back, then releases the lock
    }
  } else {
    store_.counter("levee_backup_failures_total", "", {{"type", job->type}}).inc();
    LEVEE_LOG(Main, err, "backup {} ({}) FAILED: {}", job->id, job->type, job->error);
    storage::SetStore sets(job->config);  // the staged set, and what an S3 upload left behind
    const std::string id = job->id;
    event::queueWork(
        dispatcher_,
        [pg, sets, id] {
          if (pg) {
            pg->close();
          }
          if (auto st = sets.removeSet(id); !st) {
            LEVEE_LOG(Main, err, "backup {}: removing the failed set: {}", id, st.error().message);
          }
        },
        [] {});
    if (running_backup_ == job) {
      running_backup_.reset();
    }
  }
  rememberFinished(job);
  startNext();
}

void BackupManager::rememberFinished(const JobPtr& job) {
  job->steps.clear();  // the steps' lambdas are not needed any more
  finished_order_.push_back(job->id);
  while (finished_order_.size() > kFinishedJobsKept) {
    jobs_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

// === retention and metrics ===

void BackupManager::applyRetention() {
  for (const std::string& id : expiredIds(catalog_, retention_)) {
    std::erase_if(catalog_, [&](const CatalogEntry& e) { return e.id == id; });
    store_.counter("levee_backup_expired_total", "").inc();
    LEVEE_LOG(Main, info, "backup {}: expired by retention", id);
    storage::SetStore sets(config_);
    event::queueWork(dispatcher_, [sets, id] {
      if (auto st = sets.removeSet(id); !st) {
        LEVEE_LOG(Main, err, "backup {}: removing the expired set failed: {}", id, st.error().message);
      }
    }, [] {});
  }
  updateCatalogMetrics();
  pruneWalArchive();
}

// WAL retention: once a base backup is kept, the archive only needs the segments from the oldest
// kept base backup's start on. Without any base backup nothing is removed.
void BackupManager::pruneWalArchive() {
  if (!wal_) {
    return;
  }
  std::optional<uint64_t> keep_from;
  for (const auto& e : catalog_) {
    auto seg = e.base_backup.find("start_segment");
    auto dir = e.base_backup.find("archive_dir");
    if (e.type != "base" || seg == e.base_backup.end() || dir == e.base_backup.end() ||
        dir->second != wal_->config().dir) {
      continue;
    }
    if (auto id = wal::parseSegmentName(seg->second); id && (!keep_from || id->segno < *keep_from)) {
      keep_from = id->segno;
    }
  }
  if (!keep_from) {
    return;
  }
  const std::string dir = wal_->config().dir;
  const uint64_t from = *keep_from;
  if (wal_->usesBucket()) {
    wal_->pruneBucket(from);  // done by the archiver's next upload pass
  }
  event::queueWork(dispatcher_, [dir, from] {
    std::vector<std::string> names;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    size_t removed = 0;
    for (const auto& name : wal::prunableSegments(names, from)) {
      removed += std::filesystem::remove(dir + "/" + name, ec) ? 1 : 0;
    }
    if (removed > 0) {
      LEVEE_LOG(Main, info, "backup: WAL retention removed {} segment(s) older than the oldest base backup", removed);
    }
  }, [] {});
}

void BackupManager::updateCatalogMetrics() {
  for (std::string_view type : kTypes) {
    const CatalogEntry* newest = nullptr;
    for (const auto& e : catalog_) {
      if (e.type == type && (newest == nullptr || e.finished_at > newest->finished_at)) {
        newest = &e;
      }
    }
    const stats::Labels labels{{"type", std::string(type)}};
    store_.gauge("levee_backup_last_success_timestamp_seconds", "", labels).set(newest ? newest->finished_at : 0);
    store_.gauge("levee_backup_last_size_bytes", "", labels)
        .set(newest ? static_cast<int64_t>(newest->totalSize()) : 0);
  }
}

// === admin API ===

ApiResponse BackupManager::handle(const std::string& method, const std::string& path, const std::string& body) {
  std::string_view rest = std::string_view(path).substr(std::min(path.size(), kPrefix.size()));
  const bool read = method == "GET" || method == "HEAD";
  auto allow = [](std::string_view methods) {
    return error(405, "method not allowed (allowed: " + std::string(methods) + ")");
  };
  if (!catalog_loaded_) {
    return error(503, catalog_error_.empty() ? "the backup catalog is still loading"
                                             : "the backup catalog cannot be read (retrying): " + catalog_error_);
  }
  if (rest == "/create") {
    return method == "POST" ? create(body) : allow("POST");
  }
  if (rest == "/list") {
    return read ? list() : allow("GET");
  }
  if (rest == "/wal") {
    if (!read) {
      return allow("GET");
    }
    return wal_ ? ApiResponse{200, wal_->statusJson()} : error(404, "companion.backup.wal_archive is not enabled");
  }
  if (rest.starts_with("/restore/")) {
    std::string id(rest.substr(9));
    if (!isValidId(id)) {
      return error(404, "unknown backup");
    }
    return method == "POST" ? restore(id, body) : allow("POST");
  }
  if (rest.size() > 1 && rest[0] == '/') {
    std::string id(rest.substr(1));
    if (!isValidId(id)) {
      return error(404, "not found");
    }
    if (read) {
      return show(id);
    }
    return method == "DELETE" ? remove(id) : allow("GET, DELETE");
  }
  return error(404, "not found (see /api/v1/backup/list)");
}

ApiResponse BackupManager::create(const std::string& body) {
  auto v = JsonValue::parse(body.empty() ? "{}" : body);
  if (!v || !v->isObject()) {
    return error(400, v ? "expected a JSON object like {\"type\":\"full\"}" : v.error().message);
  }
  const JsonValue* type = v->find("type");
  if (type == nullptr || !type->isString() ||
      std::ranges::find(kTypes, std::string_view(type->asString())) == std::end(kTypes)) {
    return error(400, "\"type\" must be one of database, storage, full, base");
  }
  const std::string t = type->asString();
  if (t == "base" && !wal_) {
    return error(400, "a base backup needs continuous WAL archiving (companion.backup.wal_archive)");
  }
  const bool has_db = !config_.postgres_databases.empty() || config_.redis_enabled;
  const bool has_files = !config_.file_paths.empty();
  if ((t == "database" && !has_db) || (t == "storage" && !has_files)) {
    return error(400, t == "database" ? "no database targets configured (companion.backup.targets.postgres/redis)"
                                      : "no storage targets configured (companion.backup.targets.files)");
  }
  JobPtr job = newJob("backup", t, "api");
  enqueue(job);
  std::string out;
  json::Writer w(out);
  w.beginObject().key("id").value(job->id).key("state").value(job->state);
  w.key("status_url").value(std::string(kPrefix) + "/" + job->id).endObject();
  return {202, out};
}

ApiResponse BackupManager::list() const {
  std::vector<const CatalogEntry*> sorted;
  for (const auto& e : catalog_) {
    sorted.push_back(&e);
  }
  std::ranges::sort(sorted, [](const CatalogEntry* a, const CatalogEntry* b) {
    return std::tie(a->finished_at, a->id) > std::tie(b->finished_at, b->id);
  });
  std::string out;
  json::Writer w(out);
  w.beginObject().key("backups").beginArray();
  for (const CatalogEntry* e : sorted) {
    w.raw(encodeEntry(*e));
  }
  w.endArray().endObject();
  return {200, out};
}

ApiResponse BackupManager::show(const std::string& id) const {
  if (auto it = jobs_.find(id); it != jobs_.end()) {
    return {200, jobJson(*it->second)};
  }
  auto e = std::ranges::find_if(catalog_, [&](const CatalogEntry& c) { return c.id == id; });
  if (e == catalog_.end()) {
    return error(404, "unknown backup or job " + id);
  }
  return {200, encodeEntry(*e)};
}

ApiResponse BackupManager::remove(const std::string& id) {
  auto e = std::ranges::find_if(catalog_, [&](const CatalogEntry& c) { return c.id == id; });
  if (e == catalog_.end()) {
    return error(404, "unknown backup " + id + " (only verified backups can be deleted)");
  }
  if (std::string tier = protectedTier(catalog_, id); !tier.empty()) {
    return error(409, "backup " + id + " is the newest " + tier + " " + e->type +
                          " backup and is never deleted (take a newer one first)");
  }
  for (const auto& [jid, job] : jobs_) {
    if (job->kind == "restore" && job->state == "running" && job->entry.id == id) {
      return error(409, "backup " + id + " is being restored by " + jid);
    }
  }
  catalog_.erase(e);
  updateCatalogMetrics();
  pruneWalArchive();
  storage::SetStore sets(config_);
  event::queueWork(dispatcher_, [sets, id] {
    if (auto st = sets.removeSet(id); !st) {
      LEVEE_LOG(Main, err, "backup {}: delete failed: {}", id, st.error().message);
    }
  }, [] {});
  LEVEE_LOG(Main, info, "backup {}: deleted through the admin API", id);
  std::string out;
  json::Writer w(out);
  w.beginObject().key("deleted").value(id).endObject();
  return {200, out};
}

ApiResponse BackupManager::restore(const std::string& id, const std::string& body) {
  auto v = JsonValue::parse(body.empty() ? "{}" : body);
  if (!v || !v->isObject()) {
    return error(400, v ? "expected a JSON object {\"confirm\": true}" : v.error().message);
  }
  const JsonValue* confirm = v->find("confirm");
  if (confirm == nullptr || !confirm->isBool() || !confirm->asBool()) {
    return error(400, "a restore replaces live data: send {\"confirm\": true}");
  }
  auto e = std::ranges::find_if(catalog_, [&](const CatalogEntry& c) { return c.id == id; });
  if (e == catalog_.end()) {
    return error(404, "unknown backup " + id);
  }
  if (e->type == "base") {
    return restoreBase(*e, *v);
  }
  if (std::string refusal = restoreRefusal(*e); refusal == "501") {
    return error(501, "backup " + id + " has no artifact this build can restore");
  } else if (!refusal.empty()) {
    return error(409, refusal);
  }
  auto guard = lock_.tryAcquire("restore of backup " + id);
  if (!guard) {
    return error(409, "refused: " + lock_.holder() + " is in progress");
  }
  JobPtr job = newJob("restore", e->type, "api");
  job->entry = *e;
  job->guard.emplace(std::move(*guard));
  job->state = "running";
  job->started_at = unixNow(time_);
  job->started_mono = time_.monotonicTime();
  LEVEE_LOG(Main, warn, "restore {}: restoring backup {} (confirmed through the admin API)", job->id, id);
  addRestoreSteps(job);
  runSteps(job, 0);
  std::string out;
  json::Writer w(out);
  w.beginObject().key("id").value(job->id).key("backup").value(id).key("state").value(job->state);
  w.key("status_url").value(std::string(kPrefix) + "/" + job->id).endObject();
  return {202, out};
}

std::string BackupManager::jobJson(const Job& job) const {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("id").value(job.id).key("kind").value(job.kind).key("type").value(job.type);
  w.key("trigger").value(job.trigger).key("state").value(job.state);
  w.key("progress").beginObject();
  w.key("step").value(job.step);
  w.key("step_index").value(static_cast<uint64_t>(job.step_index));
  w.key("steps").value(static_cast<uint64_t>(job.steps.size()));
  w.key("bytes").value(job.bytes.load(std::memory_order_relaxed));
  w.endObject();
  if (!job.error.empty()) {
    w.key("error").value(job.error);
  }
  w.key("created").value(isoTime(job.created_at));
  if (job.started_at != 0) {
    w.key("started").value(isoTime(job.started_at));
  }
  if (job.finished_at != 0) {
    w.key("finished").value(isoTime(job.finished_at));
  }
  if (!job.notes.empty()) {
    w.key("notes").beginArray();
    for (const auto& n : job.notes) {
      w.value(n);
    }
    w.endArray();
  }
  if (job.kind == "restore") {
    w.key("backup").value(job.entry.id);
    if (job.restore) {
      writeRestoreTargets(w, *job.restore);
    }
  } else if (job.state == "verified") {
    w.key("backup").raw(encodeEntry(job.entry));
  }
  w.endObject();
  return out;
}

}  // namespace levee::companion::backup
