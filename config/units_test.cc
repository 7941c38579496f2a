#include "config/units.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace levee::config {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

TEST(ParseDurationTest, AcceptsUnits) {
  const std::pair<const char*, int64_t> cases[] = {
      {"250ms", 250},  {"3s", 3000},       {"5m", 300000},    {"1h", 3600000},
      {"1.5s", 1500},  {"0.25s", 250},     {"0ms", 0},        {"0s", 0},
      {"1.5m", 90000}, {"10000ms", 10000}, {"2.5h", 9000000},
  };
  for (const auto& [text, ms] : cases) {
    auto d = parseDuration(text);
    ASSERT_TRUE(d.has_value()) << text << ": " << d.error().message;
    EXPECT_EQ(milliseconds(ms), *d) << text;
  }
}

TEST(ParseDurationTest, RejectsBareNumberWithHint) {
  auto d = parseDuration("5");
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ("invalid duration \"5\": missing unit (write \"5s\" or \"5ms\")", d.error().message);
}

TEST(ParseDurationTest, RejectsMalformed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty duration"},
      {"s", "expected e.g."},
      {"-1s", "must not be negative"},
      {"5sec", "unknown unit \"sec\""},
      {"5 s", "unknown unit \" s\""},
      {"1.s", "expected e.g."},
      {".5s", "expected e.g."},
      {"0.5ms", "whole number of milliseconds"},
      {"1.0001s", "whole number of milliseconds"},
      {"1d", "unknown unit \"d\""},
      {"99999999999999h", "too large"},
      {"1e3ms", "unknown unit \"e3ms\""},
  };
  for (const auto& [text, message] : cases) {
    auto d = parseDuration(text);
    ASSERT_FALSE(d.has_value()) << text;
    EXPECT_THAT(d.error().message, HasSubstr(message)) << text;
  }
}

TEST(ParseByteSizeTest, AcceptsUnits) {
  const std::pair<const char*, uint64_t> cases[] = {
      {"0", 0},
      {"65536", 65536},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"16MB", 16'000'000},
      {"1GiB", 1ULL << 30},
      {"1KB", 1000},
      {"2MiB", 2ULL << 20},
      {"1.5KiB", 1536},
      {"3GB", 3'000'000'000ULL},
      {"1TiB", 1ULL << 40},
  };
  for (const auto& [text, bytes] : cases) {
    auto s = parseByteSize(text);
    ASSERT_TRUE(s.has_value()) << text << ": " << s.error().message;
    EXPECT_EQ(bytes, *s) << text;
  }
}

TEST(ParseByteSizeTest, RejectsMalformed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty size"},
      {"-1", "must not be negative"},
      {"KiB", "invalid size"},
      {"64kib", "unknown unit \"kib\""},
      {"64 KiB", "unknown unit \" KiB\""},
      {"1.1B", "whole number of bytes"},
      {"999999999999999TiB", "too large"},
  };
  for (const auto& [text, message] : cases) {
    auto s = parseByteSize(text);
    ASSERT_FALSE(s.has_value()) << text;
    EXPECT_THAT(s.error().message, HasSubstr(message)) << text;
  }
}

TEST(ParseSocketAddressTest, AcceptsIpLiterals) {
  auto v4 = parseSocketAddress("127.0.0.1:8080", false);
  ASSERT_TRUE(v4.has_value()) << v4.error().message;
  EXPECT_EQ("127.0.0.1", v4->host);
  EXPECT_EQ(8080, v4->port);
  EXPECT_TRUE(v4->is_ip);
  EXPECT_EQ("127.0.0.1:8080", v4->toString());

  auto v6 = parseSocketAddress("[::1]:80", false);
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_EQ("::1", v6->host);
  EXPECT_EQ(80, v6->port);
  EXPECT_TRUE(v6->is_ip);
  EXPECT_EQ("[::1]:80", v6->toString());

  auto any6 = parseSocketAddress("[0:0:0:0:0:0:0:0]:65535", false);
  ASSERT_TRUE(any6.has_value()) << any6.error().message;
  EXPECT_EQ("::", any6->host);  // canonical form
  EXPECT_EQ(65535, any6->port);
}

TEST(ParseSocketAddressTest, DnsNamesOnlyWhenAllowed) {
  auto name = parseSocketAddress("App.Svc:8080", true);
  ASSERT_TRUE(name.has_value()) << name.error().message;
  EXPECT_EQ("app.svc", name->host);
  EXPECT_FALSE(name->is_ip);
  EXPECT_EQ("app.svc:8080", name->toString());

  auto refused = parseSocketAddress("app.svc:8080", false);
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message, HasSubstr("is not an IP address"));
}

TEST(ParseSocketAddressTest, RejectsMalformed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty address"},
      {"127.0.0.1", "missing port"},
      {"127.0.0.1:0", "port must be an integer in [1,65535]"},
      {"127.0.0.1:65536", "port must be an integer in [1,65535]"},
      {"127.0.0.1:http", "port must be an integer in [1,65535]"},
      {"127.0.0.1:", "port must be an integer in [1,65535]"},
      {":8080", "missing host"},
      {"::1:80", "needs brackets"},
      {"[::1]", "missing port"},
      {"[::1:80", "missing ']'"},
      {"[1.2.3.4]:80", "is not an IPv6 address"},
      {"256.1.1.1:80", "is not an IPv4 address"},
      {"-bad-.svc:80", "neither an IP address nor a valid DNS name"},
      {"a_b.svc:80", "neither an IP address nor a valid DNS name"},
  };
  for (const auto& [text, message] : cases) {
    auto a = parseSocketAddress(text, true);
    ASSERT_FALSE(a.has_value()) << text;
    EXPECT_THAT(a.error().message, HasSubstr(message)) << text;
  }
}

}  // namespace
}  // namespace levee::config
