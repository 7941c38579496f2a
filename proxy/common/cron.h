#pragma once
// Cron-like schedules (policy `companion.backup.schedule`): the classic five fields
// "minute hour day-of-month month day-of-week", evaluated in UTC. Each field is `*`, a number,
// a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those. Day of week 0-7 (0 and 7 are
// Sunday). As in Vixie cron, when both day fields are restricted a day matching either runs.
// Pure: time is passed in, so tests inject it. Used by companion/backup.

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/common/result.h"

namespace levee::common {

using SysSeconds = std::chrono::sys_seconds;

class CronSchedule {
public:
  static Result<CronSchedule> parse(std::string_view text);

  // The first matching minute strictly after `t` (nullopt: none within 5 years, e.g. "0 0 31 2 *").
  std::optional<SysSeconds> next(SysSeconds t) const;
  // The last matching minute at or before `t` (nullopt: none within 5 years).
  std::optional<SysSeconds> previous(SysSeconds t) const;
  const std::string& text() const { return text_; }

private:
  bool matchesDay(std::chrono::sys_days day) const;
  bool matchesMinuteOfDay(int minute_of_day) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_; // 0..6, Sunday = 0
  bool days_restricted_{false};
  bool weekdays_restricted_{false};
};

// True when a run was due between the last recorded run and `now` (missed while levee was
// down): the schedule's previous() instant is after `last_run` (and a first start, with no
// last run, is not a missed run).
bool missedRun(const CronSchedule& schedule, std::optional<SysSeconds> last_run, SysSeconds now);

}  // namespace levee::common
