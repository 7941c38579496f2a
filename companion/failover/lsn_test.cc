#include "companion/failover/lsn.h"

#include <gtest/gtest.h>

namespace levee::companion::failover {
namespace {

TEST(LsnTest, ParsesPostgresFormat) {
  EXPECT_EQ(parseLsn("0/0"), 0u);
  EXPECT_EQ(parseLsn("16/B374D848"), 0x16B374D848u);
  EXPECT_EQ(parseLsn("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
  EXPECT_EQ(parseLsn("0/3000060"), 0x3000060u);
  EXPECT_EQ(parseLsn("0/3000060").value(), 50331744u);
}

TEST(LsnTest, RejectsGarbage) {
  for (const char* bad : {"", "/", "0/", "/1", "1", "g/1", "1/-1", "123456789/0", "0/0 ", "0x1/2"}) {
    EXPECT_EQ(parseLsn(bad), std::nullopt) << bad;
  }
}

TEST(LsnTest, FormatsRoundTrip) {
  EXPECT_EQ(formatLsn(0x16B374D848u), "16/B374D848");
  EXPECT_EQ(formatLsn(0), "0/0");
  EXPECT_EQ(parseLsn(formatLsn(0x123456789ABCull)), 0x123456789ABCull);
}

TEST(LsnTest, LagIsSaturating) {
  EXPECT_EQ(lsnLag(*parseLsn("1/0"), *parseLsn("0/FFFFFF00")), 0x100u);
  EXPECT_EQ(lsnLag(10, 20), 0u);  // samples taken at different times: never negative
}

}  // namespace
}  // namespace levee::companion::failover
