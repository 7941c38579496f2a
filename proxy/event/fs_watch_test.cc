#include "proxy/event/fs_watch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "tests/test_common/test_loop.h"

namespace levee::event {
namespace {

namespace fs = std::filesystem;

class FsWatchTest : public testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/levee-fswatch-XXXXXX";
    ASSERT_NE(nullptr, ::mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }

  test::TestLoop loop_;
  fs::path dir_;
};

TEST_F(FsWatchTest, SeesInPlaceWritesAndSymlinkSwaps) {
  std::set<std::string> seen;
  auto w = DirWatcher::create(loop_.dispatcher(), dir_.string(), [&](const std::string& n) { seen.insert(n); });
  ASSERT_TRUE(w.has_value()) << w.error().message;
  write("policy.yaml", "a");
  ASSERT_TRUE(loop_.runUntil([&] { return seen.contains("policy.yaml"); }));
  // The kubelet's ConfigMap update: a new symlink renamed over `..data`.
  fs::create_directory(dir_ / "..v2");
  fs::create_directory_symlink("..v2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  ASSERT_TRUE(loop_.runUntil([&] { return seen.contains("..data"); }));
}

TEST_F(FsWatchTest, MissingDirectoryIsAnError) {
  auto w = DirWatcher::create(loop_.dispatcher(), (dir_ / "nope").string(), [](const std::string&) {});
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(std::string::npos, w.error().message.find("nope")) << w.error().message;
}

TEST_F(FsWatchTest, DestroyedWatcherReportsNothing) {
  int calls = 0;
  auto w = DirWatcher::create(loop_.dispatcher(), dir_.string(), [&](const std::string&) { ++calls; });
  ASSERT_TRUE(w.has_value());
  w->reset();
  write("x", "1");
  loop_.runNoWait(3);
  EXPECT_EQ(0, calls);
}

TEST_F(FsWatchTest, RunOffLoopRunsWorkOnAnotherThreadThenDoneOnTheLoop) {
  std::thread::id work_thread;
  std::thread::id done_thread;
  bool done = false;
  ASSERT_TRUE(runOffLoop(
      loop_.dispatcher(), [&] { work_thread = std::this_thread::get_id(); },
      [&] {
        done_thread = std::this_thread::get_id();
        done = true;
      }));
  ASSERT_TRUE(loop_.runUntil([&] { return done; }));
  EXPECT_NE(std::this_thread::get_id(), work_thread);
  EXPECT_EQ(std::this_thread::get_id(), done_thread);
}

}  // namespace
}  // namespace levee::event
