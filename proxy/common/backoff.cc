#include "proxy/common/backoff.h"

#include <algorithm>
#include <array>
#include <limits>

#include "proxy/common/strings.h"

namespace levee::common {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// RFC 9111 section 1.2.2: an unrepresentable delta-seconds is taken as 2^31.
constexpr int64_t kMaxDeltaSeconds = int64_t{1} << 31;

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// A cursor over the value; each consume*() advances only on success.
class Cursor {
public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool done() const { return s_.empty(); }

  bool literal(std::string_view lit) {
    if (!s_.starts_with(lit)) {
      return false;
    }
    s_.remove_prefix(lit.size());
    return true;
  }

  // Exactly `n` digits.
  std::optional<int> digits(size_t n) {
    if (s_.size() < n) {
      return std::nullopt;
    }
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!isDigit(s_[i])) {
        return std::nullopt;
      }
      v = v * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    return v;
  }

  // One of `names`; returns its index.
  template <size_t N>
  std::optional<int> oneOf(const std::array<std::string_view, N>& names) {
    for (size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        return static_cast<int>(i);
      }
    }
    return std::nullopt;
  }

private:
  std::string_view s_;
};

struct Fields {
  int year;
  int month;  // 1..12
  int day;
  int hour;
  int minute;
  int second;
};

// "HH:MM:SS"
bool parseTimeOfDay(Cursor& c, Fields& f) {
  const auto h = c.digits(2);
  if (!h || !c.literal(":")) {
    return false;
  }
  const auto m = c.digits(2);
  if (!m || !c.literal(":")) {
    return false;
  }
  const auto s = c.digits(2);
  if (!s) {
    return false;
  }
  f.hour = *h;
  f.minute = *m;
  f.second = *s;
  return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<Fields> parseImfFixdate(std::string_view s) {
  Cursor c(s);
  Fields f{};
  if (!c.oneOf(kShortDays) || !c.literal(", ")) {
    return std::nullopt;
  }
  const auto day = c.digits(2);
  if (!day || !c.literal(" ")) {
    return std::nullopt;
  }
  const auto month = c.oneOf(kMonths);
  if (!month || !c.literal(" ")) {
    return std::nullopt;
  }
  const auto year = c.digits(4);
  if (!year || !c.literal(" ") || !parseTimeOfDay(c, f) || !c.literal(" GMT") || !c.done()) {
    return std::nullopt;
  }
  f.year = *year;
  f.month = *month + 1;
  f.day = *day;
  return f;
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". The two-digit year is resolved against `now_year`
// by RFC 9110 section 5.6.7: a year more than 50 years in the future is the most recent past
// year with the same last two digits.
std::optional<Fields> parseRfc850(std::string_view s, int now_year) {
  Cursor c(s);
  Fields f{};
  if (!c.oneOf(kLongDays) || !c.literal(", ")) {
    return std::nullopt;
  }
  const auto day = c.digits(2);
  if (!day || !c.literal("-")) {
    return std::nullopt;
  }
  const auto month = c.oneOf(kMonths);
  if (!month || !c.literal("-")) {
    return std::nullopt;
  }
  const auto yy = c.digits(2);
  if (!yy || !c.literal(" ") || !parseTimeOfDay(c, f) || !c.literal(" GMT") || !c.done()) {
    return std::nullopt;
  }
  int year = now_year - now_year % 100 + *yy;
  if (year > now_year + 50) {
    year -= 100;
  }
  f.year = year;
  f.month = *month + 1;
  f.day = *day;
  return f;
}

// asctime: "Sun Nov  6 08:49:37 1994" (day is 2DIGIT or SP 1DIGIT).
std::optional<Fields> parseAsctime(std::string_view s) {
  Cursor c(s);
  Fields f{};
  if (!c.oneOf(kShortDays) || !c.literal(" ")) {
    return std::nullopt;
  }
  const auto month = c.oneOf(kMonths);
  if (!month || !c.literal(" ")) {
    return std::nullopt;
  }
  std::optional<int> day;
  if (c.literal(" ")) {
    day = c.digits(1);
  } else {
    day = c.digits(2);
  }
  if (!day || !c.literal(" ") || !parseTimeOfDay(c, f) || !c.literal(" ")) {
    return std::nullopt;
  }
  const auto year = c.digits(4);
  if (!year || !c.done()) {
    return std::nullopt;
  }
  f.year = *year;
  f.month = *month + 1;
  f.day = *day;
  return f;
}

std::optional<SystemTime> toTime(const Fields& f) {
  const std::chrono::year_month_day ymd{std::chrono::year(f.year),
                                        std::chrono::month(static_cast<unsigned>(f.month)),
                                        std::chrono::day(static_cast<unsigned>(f.day))};
  // Second 60 is a leap second (RFC 5322 allows it); it is simply the next second here.
  if (!ymd.ok() || f.hour > 23 || f.minute > 59 || f.second > 60) {
    return std::nullopt;
  }
  const std::chrono::sys_seconds t = std::chrono::sys_days(ymd) + std::chrono::hours(f.hour) +
                                     std::chrono::minutes(f.minute) + seconds(f.second);
  return SystemTime(t);
}

std::optional<milliseconds> parseDeltaSeconds(std::string_view s) {
  int64_t v = 0;
  for (char ch : s) {
    if (!isDigit(ch)) {
      return std::nullopt;
    }
    v = std::min(v * 10 + (ch - '0'), kMaxDeltaSeconds);
  }
  return milliseconds(seconds(v));
}

}  // namespace

milliseconds fullJitterBackoff(uint32_t attempt, milliseconds base, milliseconds max,
                               uint64_t random) {
  const auto b = static_cast<uint64_t>(std::max<int64_t>(base.count(), 0));
  const auto m = static_cast<uint64_t>(std::max<int64_t>(max.count(), 0));
  const uint32_t shift = std::max<uint32_t>(attempt, 1) - 1;
  // base * 2^shift, saturating at max without ever overflowing.
  uint64_t cap = m;
  if (shift < 64 && b <= (m >> shift)) {
    cap = b << shift;
  }
  if (b == 0) {
    cap = 0;
  }
  // cap <= INT64_MAX, so cap + 1 cannot wrap.
  return milliseconds(static_cast<int64_t>(random % (cap + 1)));
}

std::optional<milliseconds> parseRetryAfter(std::string_view value, SystemTime now) {
  const std::string_view s = trimOws(value);
  if (s.empty()) {
    return std::nullopt;
  }
  if (isDigit(s.front())) {
    return parseDeltaSeconds(s);
  }
  std::optional<Fields> fields = parseImfFixdate(s);
  if (!fields) {
    const auto now_days = std::chrono::floor<std::chrono::days>(now);
    const int now_year = static_cast<int>(std::chrono::year_month_day(now_days).year());
    fields = parseRfc850(s, now_year);
  }
  if (!fields) {
    fields = parseAsctime(s);
  }
  if (!fields) {
    return std::nullopt;
  }
  const std::optional<SystemTime> at = toTime(*fields);
  if (!at) {
    return std::nullopt;
  }
  if (*at <= now) {
    return milliseconds(0);
  }
  return std::chrono::ceil<milliseconds>(*at - now);
}

}  // namespace levee::common
