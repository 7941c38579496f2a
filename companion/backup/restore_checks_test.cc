#include "companion/backup/restore_checks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "companion/backup/restore_targets.h"

namespace levee::companion::backup {
namespace {

namespace fs = std::filesystem;

TEST(RestoreChecksTest, CountsTarListingPerDirectory) {
  const std::string listing =
      "drwxr-xr-x 0/0               0 2026-12-02 03:44 srv/uploads/\n"
      "-rw-r--r-- 0/0               5 2026-12-02 03:44 srv/uploads/a.txt\n"
      "drwxr-xr-x 0/0               0 2026-12-02 03:44 srv/uploads/sub/\n"
      "-rw-r--r-- 1000/1000    100000 2026-12-02 03:44 srv/uploads/sub/b file.bin\n"
      "lrwxrwxrwx 0/0               0 2026-12-02 03:44 srv/uploads/link -> a.txt\n"
      "hrw-r--r-- 0/0               0 2026-12-02 03:44 srv/uploads/hard link to srv/uploads/a.txt\n"
      "drwxr-xr-x 0/0               0 2026-12-02 03:44 srv/uploads2/\n"  // not under srv/uploads
      "-rw-r--r-- 0/0               7 2026-12-02 03:44 srv/uploads2/c\n"
      "-rw-r--r-- 0/0               9 2026-12-02 03:44 etc/other\n"
      "garbage\n";
  auto counts = countTarListing(listing, {"/srv/uploads", "/srv/uploads2", "/missing"});
  ASSERT_EQ(2u, counts.size());
  EXPECT_EQ((TreeCounts{6, 100005}), counts["/srv/uploads"]);
  EXPECT_EQ((TreeCounts{2, 7}), counts["/srv/uploads2"]);
  EXPECT_TRUE(countTarListing("", {"/srv"}).empty());
}

TEST(RestoreChecksTest, CountTreeMatchesTheListingsRules) {
  const fs::path dir = fs::path(testing::TempDir()) / "levee_restore_tree";
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "a.txt") << "alpha";
  std::ofstream(dir / "sub" / "b") << std::string(1000, 'x');
  fs::create_symlink("a.txt", dir / "link");
  fs::create_hard_link(dir / "a.txt", dir / "hard");  // counted once in bytes
  auto c = countTree(dir.string());
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ((TreeCounts{6, 1005}), *c);
  EXPECT_FALSE(countTree((dir / "nope").string()).has_value());
  ASSERT_TRUE(removeTree(dir.string()));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(removeTree(dir.string()));  // missing is fine
}

TEST(RestoreChecksTest, ParsesRedisOutputs) {
  const std::string check =
      "[offset 0] Checking RDB file /tmp/x.rdb\n[offset 206] \\o/ RDB looks OK! \\o/\n"
      "[info] 3 keys read\n[info] 1 expires\n[info] 0 already expired\n";
  auto c = parseRdbCheck(check);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(3u, c->keys);
  EXPECT_EQ(1u, c->expires);
  EXPECT_EQ(0u, c->already_expired);
  EXPECT_FALSE(parseRdbCheck("[offset 0] Checking RDB file\n").has_value());
  const std::string keyspace = "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=997704\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n";
  EXPECT_EQ(3u, keyspaceKeys(keyspace));
  EXPECT_EQ(0u, keyspaceKeys("# Keyspace\r\n"));
  const std::string repl = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:4000\r\n"
                           "master_link_status:up\r\n";
  EXPECT_EQ("slave", infoField(repl, "role"));
  EXPECT_EQ("4000", infoField(repl, "master_port"));
  EXPECT_EQ("up", infoField(repl, "master_link_status"));
  EXPECT_EQ("", infoField(repl, "master"));
  EXPECT_TRUE(isLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(isLoopbackHost("localhost"));
  EXPECT_FALSE(isLoopbackHost("10.0.0.5"));
  EXPECT_EQ((std::vector<std::string>{"/a", "/b c"}),
            archivedPaths({{"entries:/a", 1}, {"bytes:/a", 2}, {"entries:/b c", 3}, {"keys", 4}}));
}

RestoreJournal sampleJournal(const std::string& root) {
  RestoreJournal j;
  j.restore_id = "r-20261202T034400Z-0001ab";
  j.backup_id = "b-20261202T034000Z-0001cd";
  j.phase = "swap";
  j.postgres.push_back({"app", "app_rst_0001ab", "app_pre_0001ab"});
  j.files.push_back(filesItemFor(root + "/uploads", "0001ab"));
  j.redis = RedisItem{"127.0.0.1", 6379, "127.0.0.1", 40000, root + "/restore-tmp/x"};
  return j;
}

TEST(RestoreJournalTest, RoundTripAndRejects) {
  const RestoreJournal j = sampleJournal("/srv");
  EXPECT_EQ("/srv/uploads.levee-rst-0001ab/srv/uploads", j.files[0].staged);
  EXPECT_EQ("/srv/uploads.levee-pre-0001ab", j.files[0].pre);
  auto decoded = decodeJournal(encodeJournal(j));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(j, *decoded);
  EXPECT_FALSE(decodeJournal("[]").has_value());
  EXPECT_FALSE(decodeJournal(R"({"phase":"later"})").has_value());
  EXPECT_FALSE(decodeJournal(R"({"phase":"swap","postgres":[{"db":"app"}]})").has_value());
  EXPECT_FALSE(decodeJournal(R"({"phase":"swap","files":[{"path":"rel","staging":"/a","staged":"/a/b","pre":"/p"}]})")
                   .has_value());
  EXPECT_FALSE(decodeJournal(R"({"phase":"swap","files":[{"path":"/x","staging":"/a","staged":"/b/x","pre":"/p"}]})")
                   .has_value());
  EXPECT_FALSE(decodeJournal("{not json").has_value());
}

class FilesSwapTest : public testing::Test {
protected:
  void SetUp() override {
    root_ = (fs::path(testing::TempDir()) / ("levee_files_swap_" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/uploads");
    std::ofstream(root_ + "/uploads/live.txt") << "live";
    item_ = filesItemFor(root_ + "/uploads", "0001ab");
    fs::create_directories(item_.staged);
    std::ofstream(item_.staged + "/restored.txt") << "restored";
    journal_.phase = "prepare";
    journal_.files.push_back(item_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
  FilesItem item_;
  RestoreJournal journal_;
};

TEST_F(FilesSwapTest, SwapKeepsThePreviousTree) {
  ASSERT_TRUE(swapFiles(item_));
  EXPECT_TRUE(fs::exists(root_ + "/uploads/restored.txt"));
  EXPECT_TRUE(fs::exists(item_.pre + "/live.txt"));
  EXPECT_FALSE(fs::exists(item_.staging));
}

TEST_F(FilesSwapTest, RollBackRemovesStagingAndLeavesLiveUntouched) {
  auto lines = rollBack(journal_, "");
  EXPECT_TRUE(fs::exists(root_ + "/uploads/live.txt"));
  EXPECT_FALSE(fs::exists(item_.staging));
  ASSERT_EQ(1u, lines.size());
  EXPECT_NE(std::string::npos, lines[0].find("removed the staging directory"));
}

TEST_F(FilesSwapTest, RollBackUndoesAHalfSwap) {
  fs::rename(item_.path, item_.pre);  // cut between the two renames
  rollBack(journal_, "");
  EXPECT_TRUE(fs::exists(root_ + "/uploads/live.txt"));
  EXPECT_FALSE(fs::exists(item_.pre));
  EXPECT_FALSE(fs::exists(item_.staging));
}

TEST_F(FilesSwapTest, RollForwardCompletesAHalfSwap) {
  fs::rename(item_.path, item_.pre);
  journal_.phase = "swap";
  auto lines = rollForward(journal_, "");
  EXPECT_TRUE(fs::exists(root_ + "/uploads/restored.txt"));
  EXPECT_TRUE(fs::exists(item_.pre + "/live.txt"));
  EXPECT_FALSE(fs::exists(item_.staging));
  ASSERT_EQ(1u, lines.size());
  EXPECT_NE(std::string::npos, lines[0].find("swap completed"));
  // Once done, replaying again changes nothing.
  EXPECT_TRUE(rollForward(journal_, "").empty());
  EXPECT_TRUE(fs::exists(root_ + "/uploads/restored.txt"));
}

TEST_F(FilesSwapTest, RollForwardSwapsWhenNothingWasRenamedYet) {
  journal_.phase = "swap";
  rollForward(journal_, "");
  EXPECT_TRUE(fs::exists(root_ + "/uploads/restored.txt"));
  EXPECT_TRUE(fs::exists(item_.pre + "/live.txt"));
}

TEST_F(FilesSwapTest, ReplayReadsAndRemovesTheJournal) {
  const std::string store = root_ + "/store";
  fs::create_directories(store);
  std::ofstream(journalPath(store)) << encodeJournal(journal_);
  JournalReplay r = replayJournal(store, "");
  EXPECT_TRUE(r.found);
  EXPECT_EQ("prepare", r.phase);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(fs::exists(journalPath(store)));
  EXPECT_FALSE(fs::exists(item_.staging));
  EXPECT_FALSE(replayJournal(store, "").found);
  std::ofstream(journalPath(store)) << "{broken";
  r = replayJournal(store, "");
  EXPECT_TRUE(r.found);
  EXPECT_FALSE(r.error.empty());
  EXPECT_TRUE(fs::exists(journalPath(store)));  // left for a human
}

}  // namespace
}  // namespace levee::companion::backup
