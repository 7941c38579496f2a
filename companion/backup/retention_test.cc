#include "companion/backup/retention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

namespace levee::companion::backup {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using namespace std::chrono;

int64_t day(int y, unsigned m, unsigned d, int h = 2) {
  return duration_cast<seconds>((sys_days(year(y) / m / d) + hours(h)).time_since_epoch()).count();
}

// Adds a backup the way the manager does: tagged against the catalog so far.
void add(std::vector<CatalogEntry>& catalog, std::string id, int64_t t, std::string type = "full") {
  CatalogEntry e;
  e.id = std::move(id);
  e.type = std::move(type);
  e.finished_at = t;
  e.tags = tagsFor(catalog, e.type, t);
  catalog.push_back(std::move(e));
}

TEST(RetentionTest, TagsAtCreation) {
  std::vector<CatalogEntry> c;
  add(c, "a", day(2026, 11, 30));  // Monday
  add(c, "b", day(2026, 11, 30, 14));
  add(c, "c", day(2026, 12, 1));   // new month, same ISO week
  add(c, "d", day(2026, 12, 7));   // next Monday
  add(c, "x", day(2026, 12, 7), "database");  // other types are tagged on their own
  EXPECT_THAT(c[0].tags, ElementsAre("daily", "weekly", "monthly"));
  EXPECT_THAT(c[1].tags, ElementsAre("daily"));
  EXPECT_THAT(c[2].tags, ElementsAre("daily", "monthly"));
  EXPECT_THAT(c[3].tags, ElementsAre("daily", "weekly"));
  EXPECT_THAT(c[4].tags, ElementsAre("daily", "weekly", "monthly"));
}

TEST(RetentionTest, ExpiresPerTier) {
  std::vector<CatalogEntry> c;
  // One backup a day for 70 days from 2026-10-01.
  for (int i = 0; i < 70; ++i) {
    add(c, "d" + std::to_string(i), duration_cast<seconds>((sys_days(year(2026) / 10 / 1) + days(i) + hours(2)).time_since_epoch()).count());
  }
  auto expired = expiredIds(c, RetentionPolicy{3, 2, 2});
  std::set<std::string> kept;
  for (const auto& e : c) {
    if (std::ranges::find(expired, e.id) == expired.end()) {
      kept.insert(e.id);
    }
  }
  // daily: the newest 3 (d69 d68 d67); weekly: the newest 2 Mondays (2026-12-07 = d67, 2026-11-30 = d60);
  // monthly: the first of the newest 2 months (2026-12-01 = d61, 2026-11-01 = d31).
  EXPECT_THAT(kept, UnorderedElementsAre("d69", "d68", "d67", "d60", "d61", "d31"));
  EXPECT_EQ(64u, expired.size());
}

TEST(RetentionTest, NewestOfEachTierIsProtected) {
  std::vector<CatalogEntry> c;
  add(c, "a", day(2026, 12, 2));
  add(c, "b", day(2026, 12, 2, 3));
  add(c, "c", day(2026, 12, 2, 4));
  EXPECT_EQ("weekly", protectedTier(c, "a"));  // also the newest monthly
  EXPECT_EQ("", protectedTier(c, "b"));
  EXPECT_EQ("daily", protectedTier(c, "c"));
  EXPECT_EQ("", protectedTier(c, "unknown"));
  // Even with a zero budget the newest of each tier stays.
  EXPECT_THAT(expiredIds(c, RetentionPolicy{0, 0, 0}), ElementsAre("b"));
  EXPECT_THAT(expiredIds(c, RetentionPolicy{}), IsEmpty());
}

}  // namespace
}  // namespace levee::companion::backup
