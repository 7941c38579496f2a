#include "proxy/common/cron.h"

#include <charconv>
#include <vector>

namespace levee::common {
namespace {

using namespace std::chrono;

constexpr int kSearchDays = 5 * 366;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) {
      return out;
    }
    start = at + 1;
  }
}

std::optional<int> number(std::string_view s) {
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ptr != s.data() + s.size() || r.ec != std::errc()) {
    return std::nullopt;
  }
  return v;
}

// Parses one field into `bits` (indices lo..hi). Returns an error message or empty.
template <size_t N>
std::string parseField(std::string_view field, std::string_view name, int lo, int hi,
                       std::bitset<N>& bits, bool& restricted) {
  restricted = field != "*";
  const std::string range_text = " (" + std::to_string(lo) + "-" + std::to_string(hi) + ")";
  for (std::string_view part : split(field, ',')) {
    int step = 1;
    std::string_view base = part;
    if (auto slash = part.find('/'); slash != std::string_view::npos) {
      auto s = number(part.substr(slash + 1));
      if (!s || *s <= 0) {
        return std::string(name) + ": bad step in " + std::string(part);
      }
      step = *s;
      base = part.substr(0, slash);
    }
    int from = lo;
    int to = hi;
    if (base != "*") {
      auto dash = base.find('-');
      auto a = number(base.substr(0, dash));
      auto b = dash == std::string_view::npos ? a : number(base.substr(dash + 1));
      if (!a || !b) {
        return std::string(name) + ": expected a number, range or *, got \"" + std::string(part) + "\"";
      }
      if (*a < lo || *b > hi || *a > *b) {
        return std::string(name) + ": " + std::string(part) + " is out of range" + range_text;
      }
      from = *a;
      to = dash == std::string_view::npos && step > 1 ? hi : *b;
    }
    for (int v = from; v <= to; v += step) {
      bits.set(static_cast<size_t>(v));
    }
  }
  return {};
}

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view text) {
  std::vector<std::string_view> fields;
  for (std::string_view f : split(text, ' ')) {
    if (!f.empty()) {
      fields.push_back(f);
    }
  }
  if (fields.size() != 5) {
    return makeError("expected 5 fields \"minute hour day-of-month month day-of-week\", got " +
                     std::to_string(fields.size()));
  }
  CronSchedule c;
  c.text_ = std::string(text);
  bool unused = false;
  std::bitset<8> weekdays;
  std::string err = parseField(fields[0], "minute", 0, 59, c.minutes_, unused);
  if (err.empty()) err = parseField(fields[1], "hour", 0, 23, c.hours_, unused);
  if (err.empty()) err = parseField(fields[2], "day of month", 1, 31, c.days_, c.days_restricted_);
  if (err.empty()) err = parseField(fields[3], "month", 1, 12, c.months_, unused);
  if (err.empty()) err = parseField(fields[4], "day of week", 0, 7, weekdays, c.weekdays_restricted_);
  if (!err.empty()) {
    return makeError(err);
  }
  for (size_t i = 0; i < 7; ++i) {
    c.weekdays_[i] = weekdays[i];
  }
  if (weekdays[7]) {
    c.weekdays_.set(0);
  }
  return c;
}

bool CronSchedule::matchesDay(sys_days day) const {
  year_month_day ymd(day);
  if (!months_[static_cast<unsigned>(ymd.month())]) {
    return false;
  }
  const bool dom = days_[static_cast<unsigned>(ymd.day())];
  const bool dow = weekdays_[weekday(day).c_encoding()];
  if (days_restricted_ && weekdays_restricted_) {
    return dom || dow;
  }
  return dom && dow;
}

bool CronSchedule::matchesMinuteOfDay(int m) const {
  return hours_[static_cast<size_t>(m / 60)] && minutes_[static_cast<size_t>(m % 60)];
}

std::optional<SysSeconds> CronSchedule::next(SysSeconds t) const {
  const auto start = floor<minutes>(t) + minutes(1);
  sys_days day = floor<days>(start);
  int minute = static_cast<int>(duration_cast<minutes>(start - day).count());
  for (int d = 0; d < kSearchDays; ++d, day += days(1), minute = 0) {
    if (!matchesDay(day)) {
      continue;
    }
    for (int m = minute; m < 24 * 60; ++m) {
      if (matchesMinuteOfDay(m)) {
        return SysSeconds(day) + minutes(m);
      }
    }
  }
  return std::nullopt;
}

std::optional<SysSeconds> CronSchedule::previous(SysSeconds t) const {
  const auto start = floor<minutes>(t);
  sys_days day = floor<days>(start);
  int minute = static_cast<int>(duration_cast<minutes>(start - day).count());
  for (int d = 0; d < kSearchDays; ++d, day -= days(1), minute = 24 * 60 - 1) {
    if (!matchesDay(day)) {
      continue;
    }
    for (int m = minute; m >= 0; --m) {
      if (matchesMinuteOfDay(m)) {
        return SysSeconds(day) + minutes(m);
      }
    }
  }
  return std::nullopt;
}

bool missedRun(const CronSchedule& schedule, std::optional<SysSeconds> last_run, SysSeconds now) {
  if (!last_run) {
    return false;
  }
  auto prev = schedule.previous(now);
  return prev && *prev > *last_run;
}

}  // namespace levee::common
