#include "proxy/common/backoff.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kMaxRandom = std::numeric_limits<uint64_t>::max();

struct BackoffCase {
  uint32_t attempt;
  int64_t base_ms;
  int64_t max_ms;
  uint64_t random;
  int64_t expected_ms;
};

TEST(FullJitterBackoffTest, Table) {
  const std::vector<BackoffCase> cases = {
      // attempt 1: [0, base]; random is taken modulo cap + 1.
      {1, 25, 250, 0, 0},
      {1, 25, 250, 25, 25},
      {1, 25, 250, 26, 0},
      {1, 25, 250, 27, 1},
      {0, 25, 250, 25, 25},  // attempt 0 is treated as 1
      // doubling: 50, 100, 200
      {2, 25, 250, 50, 50},
      {2, 25, 250, 51, 0},
      {3, 25, 250, 100, 100},
      {4, 25, 250, 200, 200},
      {4, 25, 250, 201, 0},
      // capped at max from attempt 5 (400 > 250)
      {5, 25, 250, 250, 250},
      {5, 25, 250, 251, 0},
      {6, 25, 250, 250, 250},
      {100, 25, 250, 250, 250},
      {100, 25, 250, 251, 0},
      {std::numeric_limits<uint32_t>::max(), 25, 250, 250, 250},
      {100, 25, 250, kMaxRandom, static_cast<int64_t>(kMaxRandom % 251)},
      // max below base: max wins
      {1, 100, 50, 50, 50},
      // zero or negative inputs
      {3, 0, 250, 123, 0},
      {3, -5, 250, 123, 0},
      {3, 25, -1, 123, 0},
      {3, 25, 0, kMaxRandom, 0},
      // a huge base never overflows the doubling
      {2, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(),
       static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
       std::numeric_limits<int64_t>::max()},
      {64, 1, std::numeric_limits<int64_t>::max(), uint64_t{1} << 62, int64_t{1} << 62},
      {65, 1, std::numeric_limits<int64_t>::max(), 7, 7},
  };
  for (const BackoffCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "attempt=" << c.attempt << " base=" << c.base_ms
                                    << " max=" << c.max_ms << " random=" << c.random);
    EXPECT_EQ(milliseconds(c.expected_ms), fullJitterBackoff(c.attempt, milliseconds(c.base_ms),
                                                             milliseconds(c.max_ms), c.random));
  }
}

// For every attempt up to 200, every result lies in [0, cap] and the cap itself is reachable.
TEST(FullJitterBackoffTest, BoundsPerAttempt) {
  const milliseconds base(10);
  const milliseconds max(5000);
  int64_t expected_cap = base.count();
  for (uint32_t attempt = 1; attempt <= 200; ++attempt) {
    SCOPED_TRACE(attempt);
    for (uint64_t random : {uint64_t{0}, uint64_t{1}, uint64_t{12345}, uint64_t{0xdeadbeefcafe},
                            kMaxRandom, kMaxRandom - 1}) {
      const milliseconds d = fullJitterBackoff(attempt, base, max, random);
      EXPECT_GE(d.count(), 0);
      EXPECT_LE(d.count(), expected_cap);
    }
    EXPECT_EQ(milliseconds(expected_cap),
              fullJitterBackoff(attempt, base, max, static_cast<uint64_t>(expected_cap)));
    expected_cap = std::min<int64_t>(expected_cap * 2, max.count());
  }
}

struct RetryAfterCase {
  std::string value;
  std::optional<int64_t> expected_ms;
};

// "Sun, 06 Nov 1994 08:49:37 GMT" is 784111777 seconds after the epoch.
constexpr int64_t kRfcExample = 784111777;

TEST(ParseRetryAfterTest, Table) {
  const SystemTime now{seconds(kRfcExample - 77)};
  const std::vector<RetryAfterCase> cases = {
      // delta-seconds
      {"120", 120000},
      {"0", 0},
      {"007", 7000},
      {" 5\t", 5000},
      {"2147483648", int64_t{2147483648} * 1000},
      {"99999999999999999999999999", int64_t{2147483648} * 1000},  // RFC 9111 1.2.2
      // the three HTTP-date forms of the same instant
      {"Sun, 06 Nov 1994 08:49:37 GMT", 77000},
      {"Sunday, 06-Nov-94 08:49:37 GMT", 77000},
      {"Sun Nov  6 08:49:37 1994", 77000},
      {"Sun Nov 06 08:49:37 1994", 77000},
      {"  Sun, 06 Nov 1994 08:49:37 GMT  ", 77000},
      // the day name is not checked against the date
      {"Mon, 06 Nov 1994 08:49:37 GMT", 77000},
      // the past, and now itself
      {"Sun, 06 Nov 1994 08:48:20 GMT", 0},
      {"Sun, 06 Nov 1994 08:40:00 GMT", 0},
      {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
      // leap second and end of a leap-year February
      {"Sun, 06 Nov 1994 08:49:60 GMT", 100000},
      {"Thu, 29 Feb 1996 00:00:00 GMT", (825552000 - (kRfcExample - 77)) * 1000},
      // garbage
      {"", std::nullopt},
      {"   ", std::nullopt},
      {"-1", std::nullopt},
      {"+5", std::nullopt},
      {"1.5", std::nullopt},
      {"12a", std::nullopt},
      {"1 2", std::nullopt},
      {"soon", std::nullopt},
      {"0x10", std::nullopt},
      {"Sun, 06 Nov 1994 08:49:37 UTC", std::nullopt},
      {"Sun, 06 Nov 1994 08:49:37 gmt", std::nullopt},
      {"sun, 06 Nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 06 nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 6 Nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 06 Nov 94 08:49:37 GMT", std::nullopt},
      {"Sun, 06 Nov 1994 08:49:37 GMT x", std::nullopt},
      {"Sun, 06 Nov 1994 8:49:37 GMT", std::nullopt},
      {"Sun, 31 Feb 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 29 Feb 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 00 Nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 06 Nov 1994 24:00:00 GMT", std::nullopt},
      {"Sun, 06 Nov 1994 08:60:00 GMT", std::nullopt},
      {"Sun, 06 Nov 1994 08:49:61 GMT", std::nullopt},
      {"Sun, 06 Foo 1994 08:49:37 GMT", std::nullopt},
      {"Xyz, 06 Nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun 06 Nov 1994 08:49:37 GMT", std::nullopt},
      {"Sun, 06-Nov-94 08:49:37 GMT", std::nullopt},  // RFC 850 needs the long day name
      {"Sunday, 06-Nov-1994 08:49:37 GMT", std::nullopt},
      {"Sun Nov 6 08:49:37 1994", std::nullopt},
      {"Sun Nov  6 08:49:37 94", std::nullopt},
      {"Sun Nov  6 08:49:37 1994 GMT", std::nullopt},
  };
  for (const RetryAfterCase& c : cases) {
    SCOPED_TRACE("value=\"" + c.value + "\"");
    const auto got = parseRetryAfter(c.value, now);
    if (c.expected_ms) {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(milliseconds(*c.expected_ms), *got);
    } else {
      EXPECT_FALSE(got.has_value()) << got->count();
    }
  }
}

// A date is rounded up to whole milliseconds, so a retry at now + result is never early.
TEST(ParseRetryAfterTest, SubSecondNowRoundsUp) {
  const SystemTime date{seconds(kRfcExample)};
  const std::string value = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_EQ(milliseconds(1500), parseRetryAfter(value, date - milliseconds(1500)));
  EXPECT_EQ(milliseconds(1), parseRetryAfter(value, date - std::chrono::nanoseconds(1)));
  EXPECT_EQ(milliseconds(0), parseRetryAfter(value, date));
  EXPECT_EQ(milliseconds(0), parseRetryAfter(value, date + std::chrono::nanoseconds(1)));
}

// RFC 9110 5.6.7: an RFC 850 two-digit year more than 50 years ahead is in the past century.
TEST(ParseRetryAfterTest, Rfc850TwoDigitYear) {
  using namespace std::chrono;
  const SystemTime now{sys_days(2023y / November / 14)};
  // 2073 is within 50 years of 2023: the future.
  EXPECT_EQ(duration_cast<milliseconds>(sys_days(2073y / January / 1) - now),
            parseRetryAfter("Sunday, 01-Jan-73 00:00:00 GMT", now));
  // 2074 is more than 50 years ahead: 1974, the past.
  EXPECT_EQ(milliseconds(0), parseRetryAfter("Tuesday, 01-Jan-74 00:00:00 GMT", now));
  // The current century.
  EXPECT_EQ(duration_cast<milliseconds>(sys_days(2024y / January / 1) - now),
            parseRetryAfter("Monday, 01-Jan-24 00:00:00 GMT", now));
}

}  // namespace
}  // namespace levee::common
