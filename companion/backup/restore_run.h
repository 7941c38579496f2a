#pragma once
// Internal to companion/backup: the runtime state of one restore job (Job::restore).

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "companion/backup/restore_targets.h"
#include "proxy/common/json.h"
#include "proxy/event/process.h"

namespace levee::companion::backup {

struct RestoreTarget {
  std::string target;  // "postgres:app", "files:/srv/uploads", "redis"
  std::string state{"pending"};  // pending, preparing, verified, swapped, failed
  std::string detail;
};

struct RestoreRun {
  RestoreJournal journal;  // the names this restore uses (written to the store before use)
  std::vector<RestoreTarget> targets;
  // The temporary redis-server (Redis restore), its exit flag for pool loops, and the step
  // waiting for it to exit.
  event::ChildProcessPtr temp_redis;
  std::shared_ptr<std::atomic<bool>> temp_redis_gone = std::make_shared<std::atomic<bool>>(false);
  std::function<void()> on_temp_redis_exit;
  std::string temp_redis_exit;
  // AUTH for the live Redis, read on the pool by the first Redis step (never journaled).
  std::shared_ptr<RedisAuth> redis_auth = std::make_shared<RedisAuth>();

  ~RestoreRun() { temp_redis_gone->store(true); }  // pool loops waiting on it give up
};

// `"targets": [{target, state, detail}]` of a restore job (restore_steps.cc).
void writeRestoreTargets(json::Writer& w, const RestoreRun& run);

}  // namespace levee::companion::backup
