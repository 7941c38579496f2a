#include "companion/backup/catalog.h"

#include <gtest/gtest.h>

#include "companion/json_value.h"

namespace levee::companion::backup {
namespace {

CatalogEntry sample() {
  CatalogEntry e;
  e.id = "b-20261202T004512Z-1a2b";
  e.type = "full";
  e.trigger = "api";
  e.started_at = 1796172312;
  e.finished_at = 1796172399;
  e.tags = {"daily", "weekly"};
  e.tool_versions = {{"pg_dump", "pg_dump (PostgreSQL) 15.18"}, {"redis-cli", "redis-cli 7.0.15"}};
  Artifact pg;
  pg.target = "postgres:app";
  pg.kind = "postgres";
  pg.file = "postgres-app.dump";
  pg.format = "pg_dump custom";
  pg.size = 123456789012ULL;
  pg.raw_size = 123456789012ULL;
  pg.sha256 = std::string(64, 'a');
  pg.verified = "pg_restore --list: 12 entries";
  pg.row_counts = {{"public.orders", 1000}, {"public.\"odd\" name", 0}};
  Artifact files;
  files.target = "files";
  files.kind = "files";
  files.file = "files.tar.gz";
  files.size = 10;
  files.counts = {{"entries:/srv/uploads", 3}, {"bytes:/srv/uploads", 100005}};
  e.artifacts = {pg, files};
  return e;
}

TEST(CatalogTest, RoundTrip) {
  const CatalogEntry e = sample();
  auto decoded = decodeEntry(encodeEntry(e));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(e, *decoded);
  EXPECT_EQ(123456789022ULL, decoded->totalSize());
  auto v = JsonValue::parse(encodeEntry(e));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ("verified", v->getString("state"));
  EXPECT_EQ("2026-12-02T00:45:12Z", v->getString("started"));
}

TEST(CatalogTest, RejectsBrokenEntries) {
  EXPECT_FALSE(decodeEntry("").has_value());
  EXPECT_FALSE(decodeEntry("[1]").has_value());
  EXPECT_FALSE(decodeEntry(R"({"id":"../x","type":"full","artifacts":[]})").has_value());
  EXPECT_FALSE(decodeEntry(R"({"id":"b-1","type":"full"})").has_value());
  EXPECT_FALSE(decodeEntry(R"({"id":"b-1","type":"full","artifacts":[{"file":"../../etc/passwd"}]})").has_value());
  EXPECT_TRUE(decodeEntry(R"({"id":"b-1","type":"full","artifacts":[]})").has_value());
}

TEST(CatalogTest, Ids) {
  EXPECT_TRUE(isValidId("b-20261202T004512Z-1a2b"));
  EXPECT_FALSE(isValidId(""));
  EXPECT_FALSE(isValidId("a/b"));
  EXPECT_FALSE(isValidId(".."));
  EXPECT_FALSE(isValidId(std::string(65, 'a')));
}

TEST(JsonValueTest, ParsesAndRejects) {
  auto v = JsonValue::parse(R"( {"type":"full","confirm":true,"n":[1,2.5,-3e2],"s":"a\"\u00e9\n","z":null} )");
  ASSERT_TRUE(v.has_value()) << v.error().message;
  EXPECT_EQ("full", v->getString("type"));
  EXPECT_TRUE(v->find("confirm")->asBool());
  EXPECT_EQ(3u, v->find("n")->items().size());
  EXPECT_DOUBLE_EQ(-300, v->find("n")->items()[2].asNumber());
  EXPECT_EQ("a\"\xc3\xa9\n", v->getString("s"));
  for (std::string_view bad : {"", "{", "{\"a\" 1}", "[1,]", "tru", "{\"a\":1}x", "\"\x01\"", "01x"}) {
    EXPECT_FALSE(JsonValue::parse(bad).has_value()) << bad;
  }
  EXPECT_FALSE(JsonValue::parse(std::string(100, '[') + std::string(100, ']')).has_value());
}

}  // namespace
}  // namespace levee::companion::backup
