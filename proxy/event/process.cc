#include "proxy/event/process.h"

#include <uv.h>

#include <csignal>

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

ChildProcess::ChildProcess(Dispatcher& dispatcher, SpawnOptions options, ExitCb on_exit)
    : dispatcher_(dispatcher), on_exit_(std::move(on_exit)), alive_(std::make_shared<bool>(true)) {
  std::vector<char*> argv;
  for (auto& a : options.args) {
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
}

ChildProcess::~ChildProcess() {
  alive_.reset();
  if (handle_ == nullptr) {
    return;
  }
  if (running_) {
    uv_process_kill(handle_, SIGKILL);
  }
  handle_->data = nullptr;
  auto* h = reinterpret_cast<uv_handle_t*>(handle_);
  if (!uv_is_closing(h)) {
    // The process handle is reaped by libuv's SIGCHLD handler even when closed early.
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<uv_process_t*>(closed); });
  }
}

void ChildProcess::kill(int signum) {
  if (running_ && handle_ != nullptr) {
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
