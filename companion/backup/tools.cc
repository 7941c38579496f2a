#include "companion/backup/tools.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstring>

namespace levee::companion::backup {
namespace {

constexpr size_t kStderrTail = 4096;
constexpr size_t kMaxCapture = 64 * 1024 * 1024;

// Pool-side state of one run: the pipe read ends and what was read.
struct PumpState {
  int out_fd{-1};
  int err_fd{-1};
  StdoutSink sink;
  std::atomic<uint64_t>* progress{nullptr};
  std::string captured;
  std::string stderr_tail;
  std::string sink_error;

  void run() {
    std::vector<char> buf(1 << 20);
    while (out_fd >= 0 || err_fd >= 0) {
      pollfd fds[2];
      nfds_t n = 0;
      if (out_fd >= 0) {
        fds[n++] = {out_fd, POLLIN, 0};
      }
      if (err_fd >= 0) {
        fds[n++] = {err_fd, POLLIN, 0};
      }
      if (::poll(fds, n, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        break;
      }
      for (nfds_t i = 0; i < n; ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        const bool is_out = fds[i].fd == out_fd;
        ssize_t r = ::read(fds[i].fd, buf.data(), buf.size());
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
          continue;
        }
        if (r <= 0) {
          ::close(fds[i].fd);
          (is_out ? out_fd : err_fd) = -1;
          continue;
        }
        const auto len = static_cast<size_t>(r);
        if (!is_out) {
          stderr_tail.append(buf.data(), len);
          if (stderr_tail.size() > kStderrTail) {
            stderr_tail.erase(0, stderr_tail.size() - kStderrTail);
          }
          continue;
        }
        if (progress != nullptr) {
          progress->fetch_add(len, std::memory_order_relaxed);
        }
        if (sink) {
          if (auto st = sink(buf.data(), len); !st) {
            sink_error = st.error().message;
            ::close(out_fd);  // the child gets EPIPE and ends
            out_fd = -1;
          }
        } else if (captured.size() + len <= kMaxCapture) {
          captured.append(buf.data(), len);
        }
      }
    }
    for (int* fd : {&out_fd, &err_fd}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }
};

}  // namespace

class ToolRun {
public:
  std::unique_ptr<event::ChildProcess> child;
  std::shared_ptr<PumpState> pump;
  std::function<void(ToolResult)> done;
  ToolResult result;
  bool exited{false};
  bool pumped{false};

  void maybeFinish() {
    if (!exited || !pumped || !done) {
      return;
    }
    result.stderr_tail = std::move(pump->stderr_tail);
    result.sink_error = std::move(pump->sink_error);
    result.captured = std::move(pump->captured);
    auto cb = std::move(done);
    cb(std::move(result));  // may drop the last reference to this run
  }
};

std::string ToolResult::describe(std::string_view tool) const {
  std::string out(tool);
  out += ": ";
  out += sink_error.empty() ? exit.describe() : sink_error;
  std::string err = stderr_tail;
  while (!err.empty() && std::isspace(static_cast<unsigned char>(err.back())) != 0) {
    err.pop_back();
  }
  if (!err.empty()) {
    out += ": " + err;
  }
  return out;
}

ToolRunPtr runTool(event::Dispatcher& dispatcher, std::vector<std::string> args, StdoutSink sink,
                   std::function<void(ToolResult)> done, std::atomic<uint64_t>* progress,
                   std::vector<std::string> env) {
  auto run = std::make_shared<ToolRun>();
  run->done = std::move(done);
  run->pump = std::make_shared<PumpState>();
  run->pump->sink = std::move(sink);
  run->pump->progress = progress;
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    run->pumped = true;
    run->exited = true;
    run->result.exit.spawn_error = std::string("pipe: ") + std::strerror(errno);
    std::weak_ptr<ToolRun> weak = run;
    dispatcher.post([weak] {
      if (auto r = weak.lock()) {
        r->maybeFinish();
      }
    });
    return run;
  }
  run->pump->out_fd = out[0];
  run->pump->err_fd = err[0];
  event::SpawnOptions opts;
  opts.args = std::move(args);
  opts.env = std::move(env);
  opts.stdout_fd = out[1];
  opts.stderr_fd = err[1];
  std::weak_ptr<ToolRun> weak = run;
  // The exit callback is stored in the ChildProcess that `run` owns; `weak` guards the rest.
  run->child = std::make_unique<event::ChildProcess>(dispatcher, std::move(opts),
                                                     [weak](const event::ExitStatus& st) {
                                                       if (auto r = weak.lock()) {
                                                         r->result.exit = st;
                                                         r->exited = true;
                                                         r->maybeFinish();
                                                       }
                                                     });
  ::close(out[1]);  // the child holds its copies; EOF comes when it exits
  ::close(err[1]);
  std::shared_ptr<PumpState> pump = run->pump;
  event::queueWork(
      dispatcher, [pump] { pump->run(); },
      [weak] {
        if (auto r = weak.lock()) {
          r->pumped = true;
          r->maybeFinish();
        }
      });
  return run;
}

int pgToolMajor(std::string_view text) {
  auto at = text.find(") ");
  size_t i = at == std::string_view::npos ? 0 : at + 2;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) == 0) {
    ++i;
  }
  int major = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0) {
    major = major * 10 + (text[i] - '0');
    ++i;
    if (major > 10000) {
      return 0;
    }
  }
  return major;
}

int pgServerMajor(int64_t num) {
  // 150018 -> 15; before 10 the number was 90624 (9.6.24) and the "major" 9.6: 9 is enough here.
  return static_cast<int>(num / 10000);
}

std::string conninfoFor(const std::string& dsn, const std::string& dbname) {
  std::string out = dsn;
  if (out.find("connect_timeout") == std::string::npos) {
    out += " connect_timeout=10";
  }
  out += " dbname='" + dbname + "'";  // names are [A-Za-z0-9_-] (checked by the loader)
  return out;
}

PgSession::~PgSession() { close(); }

void PgSession::close() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

Status PgSession::connect(const std::string& conninfo) {
  close();
  conn_ = PQconnectdb(conninfo.c_str());
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
      msg.pop_back();
    }
    close();
    return makeError("connect: " + msg);
  }
  return {};
}

Result<std::vector<std::vector<std::string>>> PgSession::query(const std::string& sql,
                                                               const std::vector<std::string>& params) {
  if (conn_ == nullptr) {
    return makeError("not connected");
  }
  std::vector<const char*> values;
  for (const auto& p : params) {
    values.push_back(p.c_str());
  }
  PGresult* res = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
  const auto status = PQresultStatus(res);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
      msg.pop_back();
    }
    PQclear(res);
    return makeError(msg);
  }
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(res); ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < PQnfields(res); ++c) {
      row.emplace_back(PQgetvalue(res, r, c));
    }
    rows.push_back(std::move(row));
  }
  PQclear(res);
  return rows;
}

Status PgSession::exec(const std::string& sql, const std::vector<std::string>& params) {
  auto r = query(sql, params);
  if (!r) {
    return std::unexpected(r.error());
  }
  return {};
}

std::string PgSession::quoteIdent(const std::string& name) {
  char* q = PQescapeIdentifier(conn_, name.c_str(), name.size());
  if (q == nullptr) {
    return "\"\"";
  }
  std::string out(q);
  PQfreemem(q);
  return out;
}

Result<std::map<std::string, uint64_t>> PgSession::rowCounts() {
  LEVEE_ASSIGN_OR_RETURN(
      auto tables,
      query("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2"));
  std::map<std::string, uint64_t> out;
  for (const auto& row : tables) {
    LEVEE_ASSIGN_OR_RETURN(auto count, query("SELECT count(*) FROM ONLY " + quoteIdent(row[0]) + "." +
                                             quoteIdent(row[1])));
    const std::string& text = count.at(0).at(0);
    uint64_t rows = 0;
    std::from_chars(text.data(), text.data() + text.size(), rows);
    out[row[0] + "." + row[1]] = rows;
  }
  return out;
}

}  // namespace levee::companion::backup
