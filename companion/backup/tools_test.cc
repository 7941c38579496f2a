#include "companion/backup/tools.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "companion/storage/local_store.h"
#include "tests/test_common/test_loop.h"

namespace levee::companion::backup {
namespace {

class ToolsTest : public testing::Test {
protected:
  std::optional<ToolResult> run(std::vector<std::string> args, StdoutSink sink = {},
                                std::atomic<uint64_t>* progress = nullptr) {
    std::optional<ToolResult> out;
    ToolRunPtr handle = runTool(loop_.dispatcher(), std::move(args), std::move(sink),
                                [&](ToolResult r) { out = std::move(r); }, progress);
    loop_.runUntil([&] { return out.has_value(); });
    return out;
  }
  test::TestLoop loop_;
};

TEST_F(ToolsTest, CapturesStdoutStderrAndExitCode) {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(3, r->exit.exit_code);
  EXPECT_FALSE(r->exit.ok());
  EXPECT_EQ("out\n", r->captured);
  EXPECT_EQ("err\n", r->stderr_tail);
  EXPECT_EQ("sh: exit code 3: err", r->describe("sh"));
}

TEST_F(ToolsTest, StreamsStdoutIntoTheSink) {
  uint64_t seen = 0;
  std::atomic<uint64_t> progress{0};
  auto r = run({"sh", "-c", "head -c 3000000 /dev/zero"},
               [&](const char*, size_t n) -> Status {
                 seen += n;  // one pool thread at a time
                 return {};
               },
               &progress);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->exit.ok()) << r->describe("head");
  EXPECT_EQ(3000000u, seen);
  EXPECT_EQ(3000000u, progress.load());
  EXPECT_TRUE(r->captured.empty());
}

TEST_F(ToolsTest, SinkErrorStopsTheChild) {
  auto r = run({"yes"}, [](const char*, size_t) -> Status { return makeError("disk full"); });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ("disk full", r->sink_error);
  EXPECT_NE(std::string::npos, r->describe("yes").find("disk full"));
}

TEST_F(ToolsTest, MissingProgramIsASpawnError) {
  auto r = run({"/nonexistent/levee-no-such-tool"});
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->exit.spawn_error.empty());
  EXPECT_FALSE(r->exit.ok());
}

TEST_F(ToolsTest, DroppingTheHandleKillsTheChildAndDropsTheCallback) {
  bool called = false;
  ToolRunPtr handle = runTool(loop_.dispatcher(), {"sleep", "30"}, {}, [&](ToolResult) { called = true; });
  loop_.runNoWait(2);
  handle.reset();  // SIGKILL; the pipe reader sees EOF and the loop drains (TestLoop asserts it)
  bool drained = false;
  event::queueWork(loop_.dispatcher(), [] {}, [&] { drained = true; });
  loop_.runUntil([&] { return drained; });
  EXPECT_FALSE(called);
}

TEST(ToolsVersionTest, Parsing) {
  EXPECT_EQ(15, pgToolMajor("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"));
  EXPECT_EQ(9, pgToolMajor("pg_dump (PostgreSQL) 9.6.24"));
  EXPECT_EQ(0, pgToolMajor("nonsense"));
  EXPECT_EQ(15, pgServerMajor(150018));
  EXPECT_EQ(9, pgServerMajor(90624));
  EXPECT_EQ("host=h connect_timeout=10 dbname='app'", conninfoFor("host=h", "app"));
  EXPECT_EQ("host=h connect_timeout=3 dbname='app'", conninfoFor("host=h connect_timeout=3", "app"));
}

TEST(ArtifactSinkTest, GzipRoundTripAndChecksum) {
  const std::filesystem::path dir = std::filesystem::path(testing::TempDir()) / "levee_sink_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.gz").string();
  std::string data;
  for (int i = 0; i < 100000; ++i) {
    data += "row " + std::to_string(i) + "\n";
  }
  storage::ArtifactSink sink;
  ASSERT_TRUE(sink.open(path, true));
  ASSERT_TRUE(sink.write(data.data(), data.size() / 2));
  ASSERT_TRUE(sink.write(data.data() + data.size() / 2, data.size() - data.size() / 2));
  ASSERT_TRUE(sink.finish());
  EXPECT_EQ(data.size(), sink.rawBytes());
  EXPECT_LT(sink.storedBytes(), sink.rawBytes());
  const std::string inflated = (dir / "a.raw").string();
  auto r = storage::reReadArtifact(path, true, inflated);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(sink.sha256(), r->sha256);
  EXPECT_EQ(sink.storedBytes(), r->size);
  EXPECT_EQ(data.size(), r->raw_size);
  std::ifstream in(inflated, std::ios::binary);
  EXPECT_EQ(data, std::string(std::istreambuf_iterator<char>(in), {}));
  // A truncated file is caught by the re-read.
  std::filesystem::resize_file(path, sink.storedBytes() / 2);
  EXPECT_FALSE(storage::reReadArtifact(path, true, "").has_value());
  // open() refuses to overwrite.
  storage::ArtifactSink again;
  EXPECT_FALSE(again.open(path, false));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace levee::companion::backup
