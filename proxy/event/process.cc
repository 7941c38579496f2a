#include "proxy/event/process.h"

#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string_view>

#include "proxy/event/dispatcher.h"

extern char** environ;

namespace levee::event {

std::string ExitStatus::describe() const {
  if (!spawn_error.empty()) {
    return "spawn: " + spawn_error;
  }
  if (term_signal != 0) {
    return "killed by signal " + std::to_string(term_signal);
  }
  return "exit code " + std::to_string(exit_code);
}

namespace {

constexpr const char* kSetpriv = "/usr/bin/setpriv";

bool haveSetpriv() {
  static const bool have = ::access(kSetpriv, X_OK) == 0;
  return have;
}

// Whether execvp would find `program` (so that a missing program stays a spawn error, which
// setpriv would turn into its own exit code).
bool findable(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return ::access(program.c_str(), X_OK) == 0;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
    if (::access(((dir.empty() ? "." : dir) + "/" + program).c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> spawnArgv(const SpawnOptions& options) {
  if (options.args.empty() || !options.die_with_parent || !haveSetpriv() || !findable(options.args[0])) {
    return options.args;
  }
  std::vector<std::string> out{kSetpriv, "--pdeathsig", "KILL", "--"};
  out.insert(out.end(), options.args.begin(), options.args.end());
  return out;
}

ChildProcess::ChildProcess(Dispatcher& dispatcher, SpawnOptions options, ExitCb on_exit)
    : dispatcher_(dispatcher), on_exit_(std::move(on_exit)), alive_(std::make_shared<bool>(true)) {
  std::vector<std::string> args = spawnArgv(options);
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    env_store.emplace_back(*e);
  }
  for (auto& e : options.env) {
    env_store.push_back(e);
  }
  std::vector<char*> envp;
  for (auto& e : env_store) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  const int fds[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    if (fds[i] < 0) {
      stdio[i].flags = UV_IGNORE;
    } else {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = fds[i];
    }
  }
  uv_process_options_t opts{};
  opts.exit_cb = &ChildProcess::onUvExit;
  opts.file = argv[0];
  opts.args = argv.data();
  opts.env = envp.data();
  opts.stdio_count = 3;
  opts.stdio = stdio;
  if (options.own_process_group) {
    opts.flags |= UV_PROCESS_DETACHED;  // setsid(): the child leads a new process group
  }
  handle_ = new uv_process_t;
  handle_->data = this;
  std::string error;
  if (options.args.empty()) {
    error = "no program given";
  } else if (int rc = uv_spawn(dispatcher.loop(), handle_, &opts); rc != 0) {
    error = uv_strerror(rc);
  }
  if (!error.empty()) {
    // uv_spawn initialised the handle even on failure: it must still be closed.
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
    handle_ = nullptr;
    std::weak_ptr<bool> alive = alive_;
    dispatcher_.post([this, alive, error] {
      if (alive.expired()) {
        return;
      }
      ExitStatus st;
      st.spawn_error = error;
      if (on_exit_) {
        auto cb = std::move(on_exit_);
        cb(st);
      }
    });
    return;
  }
  pid_ = handle_->pid;
  running_ = true;
  group_ = options.own_process_group;
}

ChildProcess::~ChildProcess() {
  alive_.reset();
  if (handle_ == nullptr) {
    return;
  }
  const bool reap = running_;
  if (running_) {
    kill(SIGKILL);
  }
  handle_->data = nullptr;
  auto* h = reinterpret_cast<uv_handle_t*>(handle_);
  if (!uv_is_closing(h)) {
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<uv_process_t*>(closed); });
  }
  if (reap) {
    // A closed process handle leaves libuv's SIGCHLD list: nobody would wait for the child. It
    // got SIGKILL, so the wait is short; it runs on the pool, never on the loop.
    const int pid = pid_;
    queueWork(dispatcher_, [pid] {
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }, [] {});
  }
}

void ChildProcess::kill(int signum) {
  if (running_ && handle_ != nullptr) {
    if (group_ && ::kill(-pid_, signum) == 0) {
      return;
    }
    uv_process_kill(handle_, signum);
  }
}

void ChildProcess::onUvExit(uv_process_t* p, int64_t exit_status, int term_signal) noexcept {
  auto* self = static_cast<ChildProcess*>(p->data);
  if (self == nullptr) {
    return;
  }
  self->running_ = false;
  ExitStatus st;
  st.exit_code = exit_status;
  st.term_signal = term_signal;
  if (self->on_exit_) {
    auto cb = std::move(self->on_exit_);
    cb(st);  // may destroy `self`: nothing touches it afterwards
  }
}

namespace {

struct Work {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> done;
};

}  // namespace

void queueWork(Dispatcher& dispatcher, std::function<void()> work, std::function<void()> done) {
  auto w = std::make_unique<Work>();
  w->work = std::move(work);
  w->done = std::move(done);
  w->req.data = w.get();
  int rc = uv_queue_work(
      dispatcher.loop(), &w->req,
      [](uv_work_t* req) { static_cast<Work*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<Work> self(static_cast<Work*>(req->data));  // adopt back from libuv
        if (self->done) {
          self->done();
        }
      });
  if (rc == 0) {
    (void)w.release();
  }
}

}  // namespace levee::event
