#include "companion/wal/pitr.h"

#include <gtest/gtest.h>

#include "companion/backup/catalog.h"

namespace levee::companion::wal {
namespace {

TEST(PitrTest, TargetTimeForms) {
  auto t = parseTargetTime("2026-12-02T04:10:00Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->postgres, "2026-12-02 04:10:00.000000+00:00");
  EXPECT_DOUBLE_EQ(t->unix_seconds, 1796184600);
  auto o = parseTargetTime("2026-12-02 05:10:00.25+01:00");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->postgres, "2026-12-02 05:10:00.250000+01:00");
  EXPECT_DOUBLE_EQ(o->unix_seconds, 1796184600.25);
  auto n = parseTargetTime("2026-12-01T23:40:00-04:30");
  ASSERT_TRUE(n.has_value());
  EXPECT_DOUBLE_EQ(n->unix_seconds, 1796184600);
}

TEST(PitrTest, TargetTimeRejects) {
  for (const char* bad : {"", "2026-12-02", "2026-12-02T04:10:00", "2026-12-02T04:10:00+0100", "2026-02-30T00:00:00Z",
                          "2026-12-02T24:00:00Z", "2026-12-02T04:10:00.Z", "2026-12-02T04:10:00.1234567Z",
                          "2026-12-02T04:10:00Z; DROP", "now", "2026-12-02T04:10:00'Z"}) {
    EXPECT_FALSE(parseTargetTime(bad).has_value()) << bad;
  }
}

TEST(PitrTest, PlainPaths) {
  EXPECT_TRUE(isPlainPath("/var/lib/levee/backups/wal"));
  EXPECT_TRUE(isPlainPath("/tmp/x-1/pg_data.new+2"));
  EXPECT_FALSE(isPlainPath("relative/dir"));
  EXPECT_FALSE(isPlainPath("/"));
  EXPECT_FALSE(isPlainPath("/a/../etc"));
  EXPECT_FALSE(isPlainPath("/a b"));
  EXPECT_FALSE(isPlainPath("/a'b"));
  EXPECT_FALSE(isPlainPath("/a;rm"));
  EXPECT_FALSE(isPlainPath("/a%f"));
}

TEST(PitrTest, RecoverySettings) {
  EXPECT_EQ(restoreCommand("/w"),
            "if test -f /w/%f; then cp /w/%f %p; elif test -f /w/%f.partial; then cp /w/%f.partial %p; "
            "else exit 1; fi");
  const std::string s = recoverySettings("/w", parseTargetTime("2026-12-02T04:10:00Z").value());
  EXPECT_NE(s.find("restore_command = 'if test -f /w/%f;"), std::string::npos);
  EXPECT_NE(s.find("recovery_target_time = '2026-12-02 04:10:00.000000+00:00'\n"), std::string::npos);
  EXPECT_NE(s.find("recovery_target_action = 'promote'\n"), std::string::npos);
  EXPECT_EQ(recoverySettings("/w", std::nullopt).find("recovery_target_time ="), std::string::npos);
}

TEST(PitrTest, ManifestWalRange) {
  auto r = manifestWalRange(R"({"PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
    "WAL-Ranges": [ { "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000138" } ],
    "Manifest-Checksum": "x"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->timeline, 1u);
  EXPECT_EQ(r->start_lsn, 0x2000028u);
  EXPECT_EQ(r->end_lsn, 0x2000138u);
  EXPECT_FALSE(manifestWalRange("{}").has_value());
  EXPECT_FALSE(manifestWalRange("not json").has_value());
  EXPECT_FALSE(manifestWalRange(R"({"WAL-Ranges": [ { "Timeline": 1, "Start-LSN": "0/3", "End-LSN": "0/2" } ]})")
                   .has_value());
}

TEST(PitrTest, CatalogKeepsBaseBackupFields) {
  backup::CatalogEntry e;
  e.id = "b-20261202T041000Z-0001aa";
  e.type = "base";
  e.base_backup = {{"start_lsn", "0/2000028"}, {"timeline", "1"}, {"archive_dir", "/w"}};
  e.artifacts.push_back(backup::Artifact{.target = "postgres", .kind = "postgres-base", .file = "base.tar.gz"});
  auto d = backup::decodeEntry(backup::encodeEntry(e));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, e);
}

}  // namespace
}  // namespace levee::companion::wal
