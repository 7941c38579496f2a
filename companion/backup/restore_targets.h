#pragma once
// The restore of a backup set's artifacts into their live targets, and the restore journal that
// makes a crash during a restore repairable at the next start.
//
// A restore prepares every target first without touching live data (PostgreSQL: a temporary
// database, verified; files: the archive extracted into a staging directory beside each path,
// verified; Redis: a temporary redis-server loaded from the RDB, verified), then swaps them in.
// Before anything is created, the journal `<store>/restore-journal.json` lists the names the
// restore uses (phase "prepare"); before the first swap it is rewritten with phase "swap". At
// start (replayJournal):
//   - phase "prepare": nothing live was changed yet: roll back (drop the temporary databases,
//     re-allow connections, remove staging directories, detach Redis from the temp server);
//   - phase "swap": every target was verified: roll forward (finish each swap that did not
//     happen or was cut between its two renames).
// Either way the journal is removed and each action is logged at error level.
//
// Everything here blocks (libpq, hiredis, file system): thread pool only.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "companion/backup/tools.h"
#include "config/policy.h"
#include "proxy/common/result.h"

namespace levee::companion::backup {

struct PgItem {
  std::string db;       // live database
  std::string temp_db;  // <db>_rst_<suffix>: restored and verified here
  std::string old_db;   // <db>_pre_<suffix>: the live one after the swap (kept)
  bool operator==(const PgItem&) const = default;
};

struct FilesItem {
  std::string path;     // live directory
  std::string staging;  // <path>.levee-rst-<suffix>: the archive is extracted here
  std::string staged;   // staging + path: the restored tree (tar keeps the full relative path)
  std::string pre;      // <path>.levee-pre-<suffix>: the live tree after the swap (kept)
  bool operator==(const FilesItem&) const = default;
};

// AUTH for levee's own connections to the live Redis (`targets.redis.username`, `password_*`);
// never written to the journal. Empty password: no AUTH.
struct RedisAuth {
  std::string username;
  std::string password;
};
// Reads the password of `targets.redis` (thread pool: a file read). No password configured: empty.
Result<RedisAuth> readRedisAuth(const config::BackupConfig& config);

struct RedisItem {
  std::string host;  // live Redis
  uint16_t port{0};
  std::string temp_host;  // the temporary redis-server
  uint16_t temp_port{0};
  std::string dir;  // its directory (RDB, log), removed afterwards
  bool operator==(const RedisItem&) const = default;
};

struct RestoreJournal {
  std::string restore_id;
  std::string backup_id;
  std::string phase;  // prepare | swap
  std::vector<PgItem> postgres;
  std::vector<FilesItem> files;
  std::optional<RedisItem> redis;
  bool operator==(const RestoreJournal&) const = default;
};

std::string encodeJournal(const RestoreJournal& j);
Result<RestoreJournal> decodeJournal(std::string_view json);
std::string journalPath(const std::string& store_dir);

// `<path>.levee-rst-<suffix>` etc. for one directory.
FilesItem filesItemFor(const std::string& path, const std::string& suffix);

// PostgreSQL swap: no new sessions on the live database, end its sessions, rename it to old_db,
// rename temp_db to db, re-allow connections on old_db. A missing live database is fine.
Status swapDatabase(PgSession& maint, const PgItem& item);
// Files swap: path -> pre (when path exists), staged -> path, then the staging directory goes.
Status swapFiles(const FilesItem& item);

// Roll back / forward every target of the journal (see above). Returns what was done, one line
// per action, for the log and the job's notes. Never throws; errors are in the lines.
std::vector<std::string> rollBack(const RestoreJournal& j, const std::string& maint_conninfo,
                                  const RedisAuth& redis_auth = {});
std::vector<std::string> rollForward(const RestoreJournal& j, const std::string& maint_conninfo,
                                     const RedisAuth& redis_auth = {});

struct JournalReplay {
  bool found{false};
  std::string restore_id;
  std::string phase;
  std::vector<std::string> actions;
  std::string error;  // the journal could not be read (left in place)
};
// At start, before any new restore: reads the journal, rolls back or forward, removes it.
// `redis_auth` is called only when the journal names a Redis target (the password is read
// only when it is needed).
JournalReplay replayJournal(const std::string& store_dir, const std::string& maint_conninfo,
                            const std::function<Result<RedisAuth>()>& redis_auth = {});

// --- Redis (hiredis, blocking) ---

// Waits until host:port answers PING with PONG (not LOADING), bounded by `timeout_ms`; gives up
// early when `stop` becomes true (the job was dropped or the server exited).
Status waitRedisReady(const std::string& host, uint16_t port, int timeout_ms, const std::atomic<bool>& stop);
// INFO <section> of host:port (after AUTH when `auth` has a password).
Result<std::string> redisInfo(const std::string& host, uint16_t port, const std::string& section,
                              const RedisAuth& auth = {});
// The live Redis replicates the temporary server (REPLICAOF, a full sync replaces its data set),
// waits for master_link_status:up with as many keys as the temporary server, then REPLICAOF NO ONE. On any error
// after REPLICAOF the live server is detached again (it keeps its old data set when the sync did
// not finish: a replica swaps the data set only once the whole RDB is loaded).
Status replicateFrom(const RedisItem& item, const RedisAuth& auth, int timeout_ms, const std::atomic<bool>& stop);
// If the live Redis replicates the temporary server, REPLICAOF NO ONE; returns what was done.
std::string detachFromTemp(const RedisItem& item, const RedisAuth& auth);

// A free TCP port on `host` (bind to port 0), for the temporary redis-server.
Result<uint16_t> freePort(const std::string& host);

}  // namespace levee::companion::backup
