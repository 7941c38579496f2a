#include "proxy/event/process.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "proxy/event/dispatcher.h"
#include "tests/test_common/test_loop.h"

namespace levee::event {
namespace {

// 'R', 'S', 'Z', ... or 0 when the process is gone.
char procState(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

bool waitGone(int pid, bool zombie_ok) {
  for (int i = 0; i < 200; ++i) {
    const char s = procState(pid);
    if (s == 0 || (zombie_ok && s == 'Z')) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // polling /proc, bounded (5 s)
  }
  return false;
}

TEST(ProcessTest, SpawnArgvWrapsWithSetprivOnlyForFindablePrograms) {
  SpawnOptions o;
  o.args = {"sh", "-c", "true"};
  const bool have = ::access("/usr/bin/setpriv", X_OK) == 0;
  auto argv = spawnArgv(o);
  if (have) {
    EXPECT_EQ((std::vector<std::string>{"/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "sh", "-c", "true"}), argv);
  } else {
    EXPECT_EQ(o.args, argv);
  }
  o.die_with_parent = false;
  EXPECT_EQ(o.args, spawnArgv(o));
  o.die_with_parent = true;
  o.args = {"/nonexistent/levee-no-such-tool"};
  EXPECT_EQ(o.args, spawnArgv(o));  // stays a spawn error
}

TEST(ProcessTest, DestroyingARunningChildKillsItsGroupAndReapsIt) {
  test::TestLoop loop;
  const std::string pidfile = testing::TempDir() + "/levee_process_test_" + std::to_string(::getpid());
  ::unlink(pidfile.c_str());
  SpawnOptions o;
  o.args = {"sh", "-c", "sleep 1000 & echo $$ $! > " + pidfile + "; wait"};
  auto child = std::make_unique<ChildProcess>(loop.dispatcher(), o, [](const ExitStatus&) { ADD_FAILURE(); });
  int sh = 0;
  int sleeper = 0;
  Timer tick(loop.dispatcher(), [] {});  // wakes the loop to re-read the file (bounded by runUntil)
  tick.enableRepeating(std::chrono::milliseconds(10));
  loop.runUntil([&] {
    std::ifstream f(pidfile);
    return static_cast<bool>(f >> sh >> sleeper);
  });
  tick.disable();
  ASSERT_EQ(child->pid(), sh);
  child.reset();  // SIGKILL to the group; the reap runs on the pool
  bool drained = false;
  queueWork(loop.dispatcher(), [] {}, [&] { drained = true; });
  loop.runUntil([&] { return drained; });
  EXPECT_TRUE(waitGone(sh, false)) << "the child was not reaped (state " << procState(sh) << ")";
  EXPECT_TRUE(waitGone(sleeper, true)) << "the grandchild survived";
  ::unlink(pidfile.c_str());
}

TEST(ProcessTest, KillSignalsTheWholeGroup) {
  test::TestLoop loop;
  SpawnOptions o;
  o.args = {"sh", "-c", "sleep 1000; exit 0"};
  std::optional<ExitStatus> exit;
  ChildProcess child(loop.dispatcher(), o, [&](const ExitStatus& st) { exit = st; });
  loop.runNoWait(1);
  child.kill(SIGTERM);
  loop.runUntil([&] { return exit.has_value(); });
  EXPECT_EQ(SIGTERM, exit->term_signal);
}

}  // namespace
}  // namespace levee::event
