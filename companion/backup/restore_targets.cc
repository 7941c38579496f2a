#include "companion/backup/restore_targets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "companion/backup/restore_checks.h"
#include "companion/json_value.h"
#include "companion/storage/local_store.h"
#include "companion/storage/s3_store.h"
#include "proxy/common/json.h"

namespace levee::companion::backup {
namespace {

using Clock = std::chrono::steady_clock;

bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string sysMessage(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// One hiredis connection (blocking, bounded by timeouts).
class RedisConn {
public:
  ~RedisConn() {
    if (c_ != nullptr) {
      redisFree(c_);
    }
  }
  // With a password in `auth`: AUTH [username] password right after connecting.
  Status connect(const std::string& host, uint16_t port, int timeout_ms, const RedisAuth& auth = {}) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    c_ = redisConnectWithTimeout(host.c_str(), port, tv);
    if (c_ == nullptr) {
      return makeError("redis " + host + ":" + std::to_string(port) + ": out of memory");
    }
    if (c_->err != 0) {
      return makeError("redis " + host + ":" + std::to_string(port) + ": " + c_->errstr);
    }
    redisSetTimeout(c_, timeval{10, 0});
    if (!auth.password.empty()) {
      std::vector<std::string> args{"AUTH"};
      if (!auth.username.empty()) {
        args.push_back(auth.username);
      }
      args.push_back(auth.password);
      if (auto st = command(std::move(args)); !st) {  // the message is the server's, never the password
        return makeError("redis " + host + ":" + std::to_string(port) + ": " + st.error().message);
      }
    }
    return {};
  }
  // Status, string and integer replies as text; an error reply is an error.
  Result<std::string> command(std::vector<std::string> args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r == nullptr) {
      return makeError("redis " + args[0] + ": " + (c_->err != 0 ? std::string(c_->errstr) : "no reply"));
    }
    std::string out;
    bool failed = false;
    switch (r->type) {
      case REDIS_REPLY_INTEGER:
        out = std::to_string(r->integer);
        break;
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
        out.assign(r->str, r->len);
        break;
      case REDIS_REPLY_ERROR:
        out.assign(r->str, r->len);
        failed = true;
        break;
      default:
        break;
    }
    freeReplyObject(r);
    if (failed) {
      return makeError("redis " + args[0] + ": " + out);
    }
    return out;
  }

private:
  redisContext* c_{nullptr};
};

std::string pgLine(const PgItem& i, std::string_view what) { return "postgres " + i.db + ": " + std::string(what); }

Result<bool> dbExists(PgSession& maint, const std::string& name) {
  LEVEE_ASSIGN_OR_RETURN(auto rows, maint.query("SELECT 1 FROM pg_database WHERE datname = $1", {name}));
  return !rows.empty();
}

void allowConnections(PgSession& maint, const std::string& name, std::vector<std::string>& out) {
  auto rows = maint.query("SELECT datallowconn FROM pg_database WHERE datname = $1", {name});
  if (rows && !rows->empty() && rows->at(0).at(0) == "f") {
    if (auto st = maint.exec("ALTER DATABASE " + maint.quoteIdent(name) + " ALLOW_CONNECTIONS true"); st) {
      out.push_back("postgres " + name + ": connections allowed again (ALLOW_CONNECTIONS was false)");
    } else {
      out.push_back("postgres " + name + ": ALLOW_CONNECTIONS true FAILED: " + st.error().message);
    }
  }
}

void pgRoll(const RestoreJournal& j, const std::string& conninfo, bool forward, std::vector<std::string>& out) {
  if (j.postgres.empty()) {
    return;
  }
  PgSession maint;
  if (auto st = maint.connect(conninfo); !st) {
    out.push_back("postgres: cannot connect to repair the interrupted restore (" + st.error().message +
                  "): check by hand for databases named *_rst_* and ALLOW_CONNECTIONS false");
    return;
  }
  for (const PgItem& i : j.postgres) {
    auto live = dbExists(maint, i.db);
    auto temp = dbExists(maint, i.temp_db);
    auto old = dbExists(maint, i.old_db);
    if (!live || !temp || !old) {
      out.push_back(pgLine(i, "cannot inspect pg_database"));
      continue;
    }
    if (forward && *temp) {
      if (*live && *old) {
        out.push_back(pgLine(i, "both " + i.db + " and " + i.old_db + " exist beside the verified " + i.temp_db +
                                    ": left as it is, swap by hand"));
      } else if (auto st = swapDatabase(maint, i); st) {
        out.push_back(pgLine(i, "swap completed: " + i.temp_db + " (verified before the crash) is now " + i.db +
                                    (*live ? ", the previous one is " + i.old_db : "")));
      } else {
        out.push_back(pgLine(i, "completing the swap FAILED: " + st.error().message));
      }
    } else if (!forward) {
      if (!*live && *old) {
        if (auto st = maint.exec("ALTER DATABASE " + maint.quoteIdent(i.old_db) + " RENAME TO " + maint.quoteIdent(i.db));
            st) {
          out.push_back(pgLine(i, "renamed " + i.old_db + " back to " + i.db));
        } else {
          out.push_back(pgLine(i, "renaming " + i.old_db + " back FAILED: " + st.error().message));
        }
      }
      if (*temp) {
        if (auto st = maint.exec("DROP DATABASE IF EXISTS " + maint.quoteIdent(i.temp_db)); st) {
          out.push_back(pgLine(i, "dropped the temporary database " + i.temp_db));
        } else {
          out.push_back(pgLine(i, "dropping " + i.temp_db + " FAILED: " + st.error().message));
        }
      }
    }
    allowConnections(maint, i.db, out);
    allowConnections(maint, i.old_db, out);
  }
}

void filesRoll(const RestoreJournal& j, bool forward, std::vector<std::string>& out) {
  for (const FilesItem& i : j.files) {
    const bool live = exists(i.path);
    const bool staged = exists(i.staged);
    const bool pre = exists(i.pre);
    if (forward && staged) {
      if (live && pre) {
        out.push_back("files " + i.path + ": both it and " + i.pre + " exist beside the verified " + i.staged +
                      ": left as it is, swap by hand");
        continue;
      }
      if (auto st = swapFiles(i); st) {
        out.push_back("files " + i.path + ": swap completed from " + i.staged + " (verified before the crash)" +
                      (live || pre ? "; the previous tree is " + i.pre : ""));
      } else {
        out.push_back("files " + i.path + ": completing the swap FAILED: " + st.error().message);
      }
      continue;
    }
    if (!forward && !live && pre) {
      if (::rename(i.pre.c_str(), i.path.c_str()) == 0) {
        out.push_back("files " + i.path + ": renamed " + i.pre + " back");
      } else {
        out.push_back("files " + i.path + ": renaming " + i.pre + " back FAILED: " + std::strerror(errno));
      }
    }
    if (exists(i.staging)) {
      if (auto st = removeTree(i.staging); st) {
        out.push_back("files " + i.path + ": removed the staging directory " + i.staging);
      } else {
        out.push_back("files " + i.path + ": removing " + i.staging + " FAILED: " + st.error().message);
      }
    }
  }
}

void redisRoll(const RestoreJournal& j, const RedisAuth& auth, std::vector<std::string>& out) {
  if (!j.redis) {
    return;
  }
  if (std::string line = detachFromTemp(*j.redis, auth); !line.empty()) {
    out.push_back(line);
  }
  if (!j.redis->dir.empty() && exists(j.redis->dir)) {
    (void)removeTree(j.redis->dir);
  }
}

}  // namespace

std::string journalPath(const std::string& store_dir) { return store_dir + "/restore-journal.json"; }

FilesItem filesItemFor(const std::string& path, const std::string& suffix) {
  FilesItem i;
  i.path = path;
  i.staging = path + ".levee-rst-" + suffix;
  i.staged = i.staging + path;
  i.pre = path + ".levee-pre-" + suffix;
  return i;
}

std::string encodeJournal(const RestoreJournal& j) {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("restore").value(j.restore_id).key("backup").value(j.backup_id).key("phase").value(j.phase);
  w.key("postgres").beginArray();
  for (const auto& i : j.postgres) {
    w.beginObject().key("db").value(i.db).key("temp_db").value(i.temp_db).key("old_db").value(i.old_db).endObject();
  }
  w.endArray();
  w.key("files").beginArray();
  for (const auto& i : j.files) {
    w.beginObject().key("path").value(i.path).key("staging").value(i.staging).key("staged").value(i.staged);
    w.key("pre").value(i.pre).endObject();
  }
  w.endArray();
  if (j.redis) {
    w.key("redis").beginObject().key("host").value(j.redis->host).key("port").value(unsigned{j.redis->port});
    w.key("temp_host").value(j.redis->temp_host).key("temp_port").value(unsigned{j.redis->temp_port});
    w.key("dir").value(j.redis->dir).endObject();
  }
  w.endObject();
  return out;
}

Result<RestoreJournal> decodeJournal(std::string_view text) {
  LEVEE_ASSIGN_OR_RETURN(JsonValue v, JsonValue::parse(text));
  if (!v.isObject()) {
    return makeError("restore journal is not a JSON object");
  }
  RestoreJournal j;
  j.restore_id = v.getString("restore");
  j.backup_id = v.getString("backup");
  j.phase = v.getString("phase");
  if (j.phase != "prepare" && j.phase != "swap") {
    return makeError("restore journal: phase must be prepare or swap");
  }
  auto absolute = [](const std::string& p) { return p.size() > 1 && p[0] == '/'; };
  if (const JsonValue* pg = v.find("postgres"); pg != nullptr && pg->isArray()) {
    for (const auto& e : pg->items()) {
      PgItem i{e.getString("db"), e.getString("temp_db"), e.getString("old_db")};
      if (i.db.empty() || i.temp_db.empty() || i.old_db.empty()) {
        return makeError("restore journal: a postgres item without db, temp_db and old_db");
      }
      j.postgres.push_back(std::move(i));
    }
  }
  if (const JsonValue* files = v.find("files"); files != nullptr && files->isArray()) {
    for (const auto& e : files->items()) {
      FilesItem i{e.getString("path"), e.getString("staging"), e.getString("staged"), e.getString("pre")};
      if (!absolute(i.path) || !absolute(i.staging) || !absolute(i.staged) || !absolute(i.pre) ||
          !i.staged.starts_with(i.staging + "/")) {
        return makeError("restore journal: a files item with relative or inconsistent paths");
      }
      j.files.push_back(std::move(i));
    }
  }
  if (const JsonValue* r = v.find("redis"); r != nullptr && r->isObject()) {
    RedisItem i;
    i.host = r->getString("host");
    i.port = static_cast<uint16_t>(r->getUint("port"));
    i.temp_host = r->getString("temp_host");
    i.temp_port = static_cast<uint16_t>(r->getUint("temp_port"));
    i.dir = r->getString("dir");
    if (i.host.empty() || i.port == 0 || (!i.dir.empty() && !absolute(i.dir))) {
      return makeError("restore journal: a redis item without host and port");
    }
    j.redis = std::move(i);
  }
  return j;
}

Status swapDatabase(PgSession& maint, const PgItem& item) {
  LEVEE_ASSIGN_OR_RETURN(bool live_exists, dbExists(maint, item.db));
  const std::string live = maint.quoteIdent(item.db);
  const std::string old = maint.quoteIdent(item.old_db);
  if (live_exists) {
    // No new sessions, end the current ones, then rename: the swap is two catalog updates.
    LEVEE_RETURN_IF_ERROR(maint.exec("ALTER DATABASE " + live + " ALLOW_CONNECTIONS false"));
    LEVEE_RETURN_IF_ERROR(maint.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        {item.db}));
    LEVEE_RETURN_IF_ERROR(maint.exec("DROP DATABASE IF EXISTS " + old));
    Status renamed;
    for (int attempt = 0; attempt < 50; ++attempt) {  // terminated backends take a moment to exit
      renamed = maint.exec("ALTER DATABASE " + live + " RENAME TO " + old);
      if (renamed) {
        break;
      }
      ::usleep(100 * 1000);  // thread pool, not a loop
    }
    LEVEE_RETURN_IF_ERROR(renamed);
    (void)maint.exec("ALTER DATABASE " + old + " ALLOW_CONNECTIONS true");
  }
  return maint.exec("ALTER DATABASE " + maint.quoteIdent(item.temp_db) + " RENAME TO " + live);
}

Status swapFiles(const FilesItem& item) {
  if (::rename(item.path.c_str(), item.pre.c_str()) != 0 && errno != ENOENT) {
    return makeError(sysMessage("rename", item.path) + " -> " + item.pre);
  }
  if (::rename(item.staged.c_str(), item.path.c_str()) != 0) {
    return makeError(sysMessage("rename", item.staged) + " -> " + item.path);
  }
  return removeTree(item.staging);
}

std::vector<std::string> rollBack(const RestoreJournal& j, const std::string& maint_conninfo,
                                  const RedisAuth& redis_auth) {
  std::vector<std::string> out;
  redisRoll(j, redis_auth, out);
  pgRoll(j, maint_conninfo, false, out);
  filesRoll(j, false, out);
  return out;
}

std::vector<std::string> rollForward(const RestoreJournal& j, const std::string& maint_conninfo,
                                     const RedisAuth& redis_auth) {
  std::vector<std::string> out;
  pgRoll(j, maint_conninfo, true, out);
  filesRoll(j, true, out);
  if (j.redis) {
    std::string line = detachFromTemp(*j.redis, redis_auth);
    auto info = redisInfo(j.redis->host, j.redis->port, "keyspace", redis_auth);
    out.push_back("redis " + j.redis->host + ":" + std::to_string(j.redis->port) + ": the restore was cut during " +
                  "the swap phase; " + (line.empty() ? "not replicating the temporary server" : line) + "; it holds " +
                  (info ? std::to_string(keyspaceKeys(*info)) + " keys" : "an unknown number of keys") +
                  ": if that is not the backup's data, restore the backup again");
    if (!j.redis->dir.empty() && exists(j.redis->dir)) {
      (void)removeTree(j.redis->dir);
    }
  }
  return out;
}

JournalReplay replayJournal(const std::string& store_dir, const std::string& maint_conninfo,
                            const std::function<Result<RedisAuth>()>& read_redis_auth) {
  JournalReplay r;
  const std::string path = journalPath(store_dir);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      r.found = true;
      r.error = sysMessage("open", path);
    }
    return r;
  }
  r.found = true;
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && text.size() < (1 << 20)) {
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto j = decodeJournal(text);
  if (!j) {
    r.error = path + ": " + j.error().message + " (left in place: repair by hand, then remove it)";
    return r;
  }
  r.restore_id = j->restore_id;
  r.phase = j->phase;
  RedisAuth redis_auth;
  if (j->redis && read_redis_auth) {
    if (auto auth = read_redis_auth(); auth) {
      redis_auth = std::move(*auth);
    } else {
      r.actions.push_back("redis: " + auth.error().message + " (trying without AUTH)");
    }
  }
  auto actions = j->phase == "swap" ? rollForward(*j, maint_conninfo, redis_auth) : rollBack(*j, maint_conninfo, redis_auth);
  r.actions.insert(r.actions.end(), actions.begin(), actions.end());
  if (::unlink(path.c_str()) != 0) {
    r.actions.push_back(sysMessage("unlink", path));
  }
  return r;
}

// === Redis ===

Status waitRedisReady(const std::string& host, uint16_t port, int timeout_ms, const std::atomic<bool>& stop) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last = "no answer";
  while (Clock::now() < deadline) {
    if (stop.load()) {
      return makeError("the temporary redis-server exited (" + last + ")");
    }
    RedisConn c;
    if (auto st = c.connect(host, port, 1000); !st) {
      last = st.error().message;
    } else if (auto pong = c.command({"PING"}); pong && *pong == "PONG") {
      return {};
    } else {
      last = pong ? *pong : pong.error().message;
    }
    ::usleep(50 * 1000);  // thread pool
  }
  return makeError("redis " + host + ":" + std::to_string(port) + " not ready after " +
                   std::to_string(timeout_ms / 1000) + " s: " + last);
}

Result<RedisAuth> readRedisAuth(const config::BackupConfig& config) {
  RedisAuth auth;
  if (config.redis_password_file.empty() && config.redis_password_env.empty()) {
    return auth;
  }
  auth.username = config.redis_username;
  LEVEE_ASSIGN_OR_RETURN(auth.password, storage::readCredential(config.redis_password_file, config.redis_password_env,
                                                                "redis password"));
  return auth;
}

Result<std::string> redisInfo(const std::string& host, uint16_t port, const std::string& section,
                              const RedisAuth& auth) {
  RedisConn c;
  LEVEE_RETURN_IF_ERROR(c.connect(host, port, 5000, auth));
  return c.command({"INFO", section});
}

Status replicateFrom(const RedisItem& item, const RedisAuth& auth, int timeout_ms, const std::atomic<bool>& stop) {
  RedisConn live;
  RedisConn temp;
  LEVEE_RETURN_IF_ERROR(live.connect(item.host, item.port, 5000, auth));
  LEVEE_RETURN_IF_ERROR(temp.connect(item.temp_host, item.temp_port, 5000));
  LEVEE_RETURN_IF_ERROR(live.command({"REPLICAOF", item.temp_host, std::to_string(item.temp_port)}));
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last = "no sync yet";
  Status result = makeError("timeout");
  while (true) {
    if (stop.load()) {
      result = makeError("the temporary redis-server exited during the sync");
      break;
    }
    if (Clock::now() >= deadline) {
      result = makeError("the live Redis did not complete the sync from " + item.temp_host + ":" +
                         std::to_string(item.temp_port) + " within " + std::to_string(timeout_ms / 1000) +
                         " s (" + last + "); can it reach that address?");
      break;
    }
    auto repl = live.command({"INFO", "replication"});
    if (!repl) {
      result = std::unexpected(repl.error());
      break;
    }
    const std::string link = infoField(*repl, "master_link_status");
    const std::string syncing = infoField(*repl, "master_sync_in_progress");
    last = "master_link_status:" + link;
    if (link == "up" && syncing == "0") {
      // Keys with a TTL may expire on the temporary server meanwhile (the DEL replicates too):
      // compare with its count now, which was verified against the backup before.
      auto ks = live.command({"INFO", "keyspace"});
      auto tks = temp.command({"INFO", "keyspace"});
      if (!ks || !tks) {
        result = std::unexpected(!ks ? ks.error() : tks.error());
        break;
      }
      const uint64_t keys = keyspaceKeys(*ks);
      const uint64_t expected = keyspaceKeys(*tks);
      if (keys == expected) {
        result = {};
        break;
      }
      last = "link up, " + std::to_string(keys) + " keys of " + std::to_string(expected);
    }
    ::usleep(50 * 1000);  // thread pool
  }
  auto detached = live.command({"REPLICAOF", "NO", "ONE"});
  if (result && !detached) {
    return makeError("REPLICAOF NO ONE: " + detached.error().message);
  }
  return result;
}

std::string detachFromTemp(const RedisItem& item, const RedisAuth& auth) {
  auto repl = redisInfo(item.host, item.port, "replication", auth);
  const std::string where = "redis " + item.host + ":" + std::to_string(item.port);
  if (!repl) {
    return where + ": cannot check whether it still replicates the temporary server (" + repl.error().message +
           "): run REPLICAOF NO ONE on it if INFO replication shows master_port:" + std::to_string(item.temp_port);
  }
  if (infoField(*repl, "role") != "slave" || infoField(*repl, "master_host") != item.temp_host ||
      infoField(*repl, "master_port") != std::to_string(item.temp_port)) {
    return {};
  }
  RedisConn c;
  if (auto st = c.connect(item.host, item.port, 5000, auth); !st) {
    return where + ": REPLICAOF NO ONE FAILED: " + st.error().message;
  }
  if (auto st = c.command({"REPLICAOF", "NO", "ONE"}); !st) {
    return where + ": REPLICAOF NO ONE FAILED: " + st.error().message;
  }
  return where + ": detached from the temporary server (REPLICAOF NO ONE)";
}

Result<uint16_t> freePort(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), "0", &hints, &res); rc != 0) {
    return makeError("address " + host + ": " + gai_strerror(rc));
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Result<uint16_t> out = makeError("bind " + host + ": " + std::strerror(errno));
  if (fd >= 0 && ::bind(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      out = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
  } else {
    out = makeError("bind " + host + ": " + std::strerror(errno));
  }
  if (fd >= 0) {
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return out;
}

}  // namespace levee::companion::backup
