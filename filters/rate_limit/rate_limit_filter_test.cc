#include "filters/rate_limit/rate_limit_filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy/http/header_map.h"
#include "proxy/http/stream_info.h"
#include "tests/mocks/http/mocks.h"

namespace levee::filters::rate_limit {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Return;
using ::testing::ReturnRef;
using ::testing::StrictMock;

using MockCallbacks = http::MockDecoderFilterCallbacks;

class RateLimitFilterTest : public ::testing::Test {
protected:
  void setup(config::RateLimitConfig c, bool trust_forwarded = false) {
    c.enabled = true;
    state_ = std::make_shared<RateLimitState>("inbound", "orders", c, trust_forwarded, time_, store_);
    info_.downstream_ip = "10.0.0.1";
  }
  std::unique_ptr<RateLimitFilter> newFilter() {
    auto f = std::make_unique<RateLimitFilter>(state_);
    f->setDecoderCallbacks(cb_);
    return f;
  }
  uint64_t limited(const char* mode) {
    return store_.counter("levee_rate_limited_total", "", {{"route", "orders"}, {"mode", mode}}).value();
  }
  static config::RateLimitConfig cfg(double rate, uint32_t burst) {
    config::RateLimitConfig c;
    c.rate_per_second = rate;
    c.burst = burst;
    return c;
  }

  SimulatedTimeSource time_;
  stats::Store store_{1};
  RateLimitStateSharedPtr state_;
  http::StreamInfo info_;
  http::RequestHead head_;
  StrictMock<MockCallbacks> cb_;
};

TEST_F(RateLimitFilterTest, AdmitsBurstThenRepliesTooManyRequestsWithHeaders) {
  setup(cfg(10, 3));
  EXPECT_CALL(cb_, streamInfo()).WillRepeatedly(ReturnRef(info_));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(http::FilterHeadersStatus::Continue, newFilter()->decodeHeaders(head_, true));
  }
  EXPECT_CALL(cb_, sendLocalReply(429, std::string_view("rate_limited"), _, 1u,
                                  AllOf(HasSubstr("ratelimit-policy: \"orders\";q=3;w=1\r\n"),
                                        HasSubstr("ratelimit: \"orders\";r=0;t=1\r\n"))));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, newFilter()->decodeHeaders(head_, true));
  EXPECT_EQ(1u, limited("enforce"));
  // 100 ms at 10/s refills one token.
  time_.advance(std::chrono::milliseconds(100));
  EXPECT_EQ(http::FilterHeadersStatus::Continue, newFilter()->decodeHeaders(head_, true));
}

TEST_F(RateLimitFilterTest, ShadowAdmitsAndCounts) {
  auto c = cfg(1, 1);
  c.shadow = true;
  setup(c);
  EXPECT_CALL(cb_, streamInfo()).WillRepeatedly(ReturnRef(info_));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(http::FilterHeadersStatus::Continue, newFilter()->decodeHeaders(head_, true));
  }
  EXPECT_EQ(3u, limited("shadow"));
}

TEST_F(RateLimitFilterTest, KeysSeparateBuckets) {
  auto c = cfg(1, 1);
  c.key = config::RateLimitConfig::Key::Header;
  c.header = "x-user";
  setup(c);
  EXPECT_CALL(cb_, streamInfo()).WillRepeatedly(ReturnRef(info_));
  head_.headers.add("X-User", "alice");
  EXPECT_EQ(http::FilterHeadersStatus::Continue, newFilter()->decodeHeaders(head_, true));
  http::RequestHead bob;
  bob.headers.add("X-User", "bob");
  EXPECT_EQ(http::FilterHeadersStatus::Continue, newFilter()->decodeHeaders(bob, true));
  EXPECT_CALL(cb_, sendLocalReply(429, _, _, _, _));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, newFilter()->decodeHeaders(head_, true));
}

TEST_F(RateLimitFilterTest, KeyFor) {
  config::RateLimitConfig c;
  http::RequestHead h;
  h.headers.add("X-Forwarded-For", " 203.0.113.9 , 10.1.1.1");
  h.headers.add("X-Tenant", "t1");
  EXPECT_EQ("10.0.0.1", RateLimitFilter::keyFor(c, false, h, "10.0.0.1"));  // untrusted: peer
  EXPECT_EQ("203.0.113.9", RateLimitFilter::keyFor(c, true, h, "10.0.0.1"));  // trusted: first hop
  c.key = config::RateLimitConfig::Key::Route;
  EXPECT_EQ("", RateLimitFilter::keyFor(c, true, h, "10.0.0.1"));
  c.key = config::RateLimitConfig::Key::Header;
  c.header = "x-tenant";
  EXPECT_EQ("t1", RateLimitFilter::keyFor(c, false, h, "10.0.0.1"));
  http::RequestHead none;
  c.key = config::RateLimitConfig::Key::ClientIp;
  EXPECT_EQ("10.0.0.2", RateLimitFilter::keyFor(c, true, none, "10.0.0.2"));  // no XFF: peer
}

}  // namespace
}  // namespace levee::filters::rate_limit
