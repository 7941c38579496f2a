#pragma once
// Helpers for the backup jobs.
//  - runTool(): one child process (uv_spawn on the loop) whose stdout/stderr are pipes read on
//    the thread pool, so a multi-gigabyte pg_dump streams without touching the loop.
//  - PgSession: blocking libpq calls, for the thread pool only.
//  - version parsing for the pg_dump-vs-server check.

#include <libpq-fe.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/result.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/process.h"

namespace levee::companion::backup {

// Called on a pool thread with each chunk of the child's stdout. An error stops reading (the
// pipe is closed, so the child gets EPIPE) and is reported in ToolResult::sink_error.
using StdoutSink = std::function<Status(const char* data, size_t n)>;

struct ToolResult {
  event::ExitStatus exit;
  std::string stderr_tail;   // last 4 KiB
  std::string sink_error;
  std::string captured;      // stdout when no sink was given (bounded, 64 MiB)
  std::string describe(std::string_view tool) const;  // "pg_dump: exit code 1: <stderr>"
};

class ToolRun;
using ToolRunPtr = std::shared_ptr<ToolRun>;

// Starts `args`; `done` runs on the loop once the child exited and its output was read. Keep the
// returned handle: dropping it kills the child (SIGKILL) and `done` is never called.
// `progress` (optional) counts stdout bytes as they are read. `env`: extra "NAME=value" entries
// (secrets for the child go here, never into `args`, which `ps` shows).
ToolRunPtr runTool(event::Dispatcher& dispatcher, std::vector<std::string> args, StdoutSink sink,
                   std::function<void(ToolResult)> done, std::atomic<uint64_t>* progress = nullptr,
                   std::vector<std::string> env = {});

// The major version in "pg_dump (PostgreSQL) 15.18 (Debian ...)": 15; 0 when not found.
int pgToolMajor(std::string_view version_text);
// server_version_num 150018 -> 15, 90624 -> 9.
int pgServerMajor(int64_t server_version_num);

// Adds " dbname='x'" (later keywords win in libpq conninfo) and a connect timeout if none.
std::string conninfoFor(const std::string& dsn, const std::string& dbname);

// A blocking libpq connection: thread pool only; one thread at a time.
class PgSession {
public:
  PgSession() = default;
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  Status connect(const std::string& conninfo);
  // Rows of text values; an error carries the server message.
  Result<std::vector<std::vector<std::string>>> query(const std::string& sql,
                                                      const std::vector<std::string>& params = {});
  Status exec(const std::string& sql, const std::vector<std::string>& params = {});
  std::string quoteIdent(const std::string& name);
  // "schema.table" -> exact row count of every ordinary user table (count(*) FROM ONLY).
  Result<std::map<std::string, uint64_t>> rowCounts();
  void close();

private:
  PGconn* conn_{nullptr};
};

}  // namespace levee::companion::backup
