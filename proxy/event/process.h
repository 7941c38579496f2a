#pragma once
// Child processes (uv_spawn) and thread-pool work (uv_queue_work) for the main loop: the
// companion's backup jobs run pg_dump/tar/redis-cli this way and never block a loop
// (DESIGN section 1). Like the rest of proxy/event, this header does not include <uv.h>.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct uv_process_s;

namespace levee::event {

class Dispatcher;

struct SpawnOptions {
  std::vector<std::string> args;  // args[0] is looked up in PATH
  std::vector<std::string> env;   // extra "NAME=value" entries on top of this process's environment
  // File descriptors the child gets as 0/1/2; -1: /dev/null. The parent keeps its copies (close
  // them after spawn() returns when they are pipe ends the child should own).
  int stdin_fd{-1};
  int stdout_fd{-1};
  int stderr_fd{-1};
  // The child leads its own process group (setsid): kill() and the destructor signal the whole
  // group, so a tool's own children (tar's gzip, a shell's sleep) end with it.
  bool own_process_group{true};
  // The child gets SIGKILL when the thread that spawned it dies (prctl PR_SET_PDEATHSIG through
  // util-linux `setpriv --pdeathsig KILL`, which then execs args[0]): covers levee itself being
  // SIGKILLed, where no destructor runs. Ignored when /usr/bin/setpriv is missing.
  bool die_with_parent{true};
};

struct ExitStatus {
  int64_t exit_code{0};
  int term_signal{0};
  std::string spawn_error;  // uv_spawn failed (e.g. ENOENT): the child never ran
  bool ok() const { return spawn_error.empty() && exit_code == 0 && term_signal == 0; }
  // "exit code 1", "killed by signal 9", "spawn: no such file or directory"
  std::string describe() const;
};

// One child process, owned by its user. `on_exit` runs on the dispatcher thread when the child
// ends (never from spawn() itself; a failed spawn reports through on_exit on the next loop
// iteration). Destroying a running ChildProcess sends SIGKILL (to its process group) and drops
// the callback; the child is then reaped on the thread pool (the loop does not exit before), so
// no zombie is left behind even when the process' init does not reap.
class ChildProcess {
public:
  using ExitCb = std::function<void(const ExitStatus&)>;
  ChildProcess(Dispatcher& dispatcher, SpawnOptions options, ExitCb on_exit);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  bool running() const { return running_; }
  void kill(int signum);

private:
  static void onUvExit(uv_process_s* p, int64_t exit_status, int term_signal) noexcept;
  Dispatcher& dispatcher_;
  uv_process_s* handle_{nullptr};
  ExitCb on_exit_;
  int pid_{0};
  bool running_{false};
  bool group_{false};
  std::shared_ptr<bool> alive_;  // guards the deferred spawn-failure report
};
using ChildProcessPtr = std::unique_ptr<ChildProcess>;

// Runs `work` on libuv's thread pool, then `done` on the dispatcher thread. `done` must guard
// its own lifetime (weak_ptr): it can run after the caller is gone. The loop does not exit
// while work is queued, so `work` must end by itself (e.g. at EOF of a pipe whose writer is
// killed on shutdown).
void queueWork(Dispatcher& dispatcher, std::function<void()> work, std::function<void()> done);

// The argv that spawn uses for `args` (setpriv prefix when `die_with_parent`): exposed for tests.
std::vector<std::string> spawnArgv(const SpawnOptions& options);

}  // namespace levee::event
