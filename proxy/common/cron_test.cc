#include "proxy/common/cron.h"

#include <gtest/gtest.h>

namespace levee::common {
namespace {

using namespace std::chrono;

sys_seconds at(int y, unsigned mo, unsigned d, int h, int mi) {
  return sys_days(year(y) / mo / d) + hours(h) + minutes(mi);
}

CronSchedule cron(std::string_view text) {
  auto c = CronSchedule::parse(text);
  EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
  return c ? *c : *CronSchedule::parse("* * * * *");
}

TEST(CronTest, NextRunTable) {
  struct Case {
    std::string_view expr;
    sys_seconds from;
    sys_seconds want;
  };
  const Case cases[] = {
      {"0 2 * * *", at(2026, 12, 2, 1, 59), at(2026, 12, 2, 2, 0)},
      {"0 2 * * *", at(2026, 12, 2, 2, 0), at(2026, 12, 3, 2, 0)},  // strictly after
      {"*/15 * * * *", at(2026, 12, 2, 10, 7), at(2026, 12, 2, 10, 15)},
      {"5,35 8-9 * * *", at(2026, 12, 2, 9, 36), at(2026, 12, 3, 8, 5)},
      {"0 0 1 * *", at(2026, 12, 15, 0, 0), at(2027, 1, 1, 0, 0)},     // year rollover
      {"0 0 29 2 *", at(2026, 3, 1, 0, 0), at(2028, 2, 29, 0, 0)},    // leap day
      {"30 4 * * 0", at(2026, 12, 2, 0, 0), at(2026, 12, 6, 4, 30)},  // Sunday (2026-12-02 is a Wednesday)
      {"30 4 * * 7", at(2026, 12, 2, 0, 0), at(2026, 12, 6, 4, 30)},  // 7 is Sunday too
      {"0 12 1 * 1", at(2026, 12, 2, 0, 0), at(2026, 12, 7, 12, 0)},  // day-of-month OR Monday
      {"0 3 * * 1-5/2", at(2026, 12, 2, 4, 0), at(2026, 12, 4, 3, 0)},  // Mon, Wed, Fri
  };
  for (const Case& c : cases) {
    auto next = cron(c.expr).next(c.from);
    ASSERT_TRUE(next.has_value()) << c.expr;
    EXPECT_EQ(c.want, *next) << c.expr;
  }
  EXPECT_FALSE(cron("0 0 31 2 *").next(at(2026, 1, 1, 0, 0)).has_value());
}

TEST(CronTest, PreviousRun) {
  EXPECT_EQ(at(2026, 12, 2, 2, 0), *cron("0 2 * * *").previous(at(2026, 12, 2, 2, 0)));  // at or before
  EXPECT_EQ(at(2026, 12, 1, 2, 0), *cron("0 2 * * *").previous(at(2026, 12, 2, 1, 59)));
  EXPECT_EQ(at(2026, 12, 1, 0, 0), *cron("*/15 * * * *").previous(at(2026, 12, 1, 0, 14)));
  EXPECT_EQ(at(2026, 11, 30, 23, 45), *cron("*/15 23 * * *").previous(at(2026, 12, 1, 0, 14)));  // day before
}

TEST(CronTest, MissedRunAfterRestart) {
  const CronSchedule daily = cron("0 2 * * *");
  // Down from 01:00 to 03:00: the 02:00 run was missed.
  EXPECT_TRUE(missedRun(daily, at(2026, 12, 2, 1, 0), at(2026, 12, 2, 3, 0)));
  // Last ran at 02:00, restarted at 03:00: nothing missed.
  EXPECT_FALSE(missedRun(daily, at(2026, 12, 2, 2, 0), at(2026, 12, 2, 3, 0)));
  // Down for three days: still one catch-up run (the caller runs it once).
  EXPECT_TRUE(missedRun(daily, at(2026, 11, 28, 2, 0), at(2026, 12, 2, 3, 0)));
  // First start: no last run, nothing missed.
  EXPECT_FALSE(missedRun(daily, std::nullopt, at(2026, 12, 2, 3, 0)));
}

TEST(CronTest, ParseErrors) {
  const std::pair<std::string_view, std::string_view> bad[] = {
      {"0 2 * *", "expected 5 fields"},
      {"60 * * * *", "minute: 60 is out of range (0-59)"},
      {"* 24 * * *", "hour: 24 is out of range (0-23)"},
      {"* * 0 * *", "day of month: 0 is out of range (1-31)"},
      {"* * * 13 *", "month: 13 is out of range (1-12)"},
      {"* * * * 8", "day of week: 8 is out of range (0-7)"},
      {"*/0 * * * *", "minute: bad step"},
      {"a * * * *", "minute: expected a number"},
      {"5-1 * * * *", "out of range"},
  };
  for (const auto& [expr, message] : bad) {
    auto c = CronSchedule::parse(expr);
    ASSERT_FALSE(c.has_value()) << expr;
    EXPECT_NE(std::string::npos, c.error().message.find(message)) << expr << ": " << c.error().message;
  }
}

}  // namespace
}  // namespace levee::common
