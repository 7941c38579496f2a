#include "filters/fault/fault_filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "proxy/http/header_map.h"
#include "proxy/http/stream_info.h"
#include "tests/mocks/http/mocks.h"
#include "tests/test_common/test_loop.h"

namespace levee::filters::fault {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::ReturnRef;
using ::testing::StrictMock;

using MockCallbacks = http::MockDecoderFilterCallbacks;

config::FaultConfig abortAt(double percent, int status = 503) {
  config::FaultConfig f;
  f.enabled = true;
  f.abort_ppm = static_cast<uint32_t>(percent * 10000);
  f.abort_status = status;
  return f;
}

config::FaultConfig delayOf(std::chrono::milliseconds d, double percent = 100) {
  config::FaultConfig f;
  f.enabled = true;
  f.delay = d;
  f.delay_ppm = static_cast<uint32_t>(percent * 10000);
  return f;
}

class FaultFilterTest : public ::testing::Test {
protected:
  FaultFilterTest() {
    route_.name = "orders";
    route_.upstream = "app";
  }

  std::unique_ptr<FaultFilter> newFilter(const config::FaultConfig& f) {
    route_.fault = f;
    auto filter = FaultFilter::create(route_, head_, worker_);
    if (filter) {
      filter->setDecoderCallbacks(cb_);
    }
    return filter;
  }
  uint64_t injected(const char* kind) {
    return store_.counter("levee_faults_injected_total", "", {{"route", "orders"}, {"kind", kind}}).value();
  }

  test::TestLoop loop_;
  stats::Store store_{1};
  SimulatedTimeSource time_;
  FaultRegistry registry_{time_};
  std::mt19937_64 rng_{42};  // seeded: the same rolls every run
  WorkerFaults worker_{&registry_, store_, [this] { return rng_(); }};
  config::Route route_;
  http::RequestHead head_;
  http::StreamInfo info_;
  StrictMock<MockCallbacks> cb_;
};

TEST_F(FaultFilterTest, NoFaultNoFilter) {
  EXPECT_EQ(nullptr, newFilter(config::FaultConfig{}));
}

TEST_F(FaultFilterTest, AbortsWithConfiguredStatusAtHundredPercent) {
  auto f = newFilter(abortAt(100, 502));
  ASSERT_NE(nullptr, f);
  EXPECT_CALL(cb_, sendLocalReply(502, std::string_view("fault_abort"), _, 0u, std::string_view()));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, f->decodeHeaders(head_, true));
  f->onDestroy();
  EXPECT_EQ(1u, injected("abort"));
  EXPECT_EQ(0u, injected("delay"));
}

TEST_F(FaultFilterTest, ZeroPercentNeverFires) {
  for (int i = 0; i < 1000; ++i) {
    auto f = newFilter(abortAt(0));
    ASSERT_NE(nullptr, f);
    EXPECT_EQ(http::FilterHeadersStatus::Continue, f->decodeHeaders(head_, true));
    f->onDestroy();
  }
  EXPECT_EQ(0u, injected("abort"));
}

TEST_F(FaultFilterTest, PercentIsHonouredWithSeededRandom) {
  EXPECT_CALL(cb_, sendLocalReply(503, _, _, _, _)).Times(::testing::AnyNumber());
  int aborted = 0;
  for (int i = 0; i < 10000; ++i) {
    auto f = newFilter(abortAt(25));
    if (f->decodeHeaders(head_, true) == http::FilterHeadersStatus::StopIteration) {
      ++aborted;
    }
    f->onDestroy();
  }
  // 25% of 10000 with a fixed seed: deterministic, and near 2500 (binomial sd ~43).
  EXPECT_NEAR(2500, aborted, 200);
  EXPECT_EQ(static_cast<uint64_t>(aborted), injected("abort"));
}

TEST_F(FaultFilterTest, ResetClosesWithoutResponse) {
  config::FaultConfig f;
  f.enabled = true;
  f.reset_ppm = 1'000'000;
  auto filter = newFilter(f);
  EXPECT_CALL(cb_, streamInfo()).WillRepeatedly(ReturnRef(info_));
  EXPECT_CALL(cb_, resetStream());
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, filter->decodeHeaders(head_, true));
  EXPECT_EQ("fault_reset", info_.reason);
  filter->onDestroy();
  EXPECT_EQ(1u, injected("reset"));
}

TEST_F(FaultFilterTest, DelayContinuesWhenTheTimerFires) {
  auto f = newFilter(delayOf(std::chrono::milliseconds(1)));
  EXPECT_CALL(cb_, dispatcher()).WillRepeatedly(ReturnRef(loop_.dispatcher()));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, f->decodeHeaders(head_, false));
  EXPECT_TRUE(f->delayArmedForTest());
  EXPECT_EQ(http::FilterDataStatus::Continue, f->decodeData("x", 1, false));
  bool continued = false;
  EXPECT_CALL(cb_, continueDecoding()).WillOnce(Invoke([&] { continued = true; }));
  ASSERT_TRUE(loop_.runUntil([&] { return continued; }));
  EXPECT_FALSE(f->delayArmedForTest());
  f->onDestroy();
  EXPECT_EQ(1u, injected("delay"));
}

TEST_F(FaultFilterTest, DelayThenAbort) {
  config::FaultConfig fc = delayOf(std::chrono::milliseconds(1));
  fc.abort_ppm = 1'000'000;
  fc.abort_status = 504;
  auto f = newFilter(fc);
  EXPECT_CALL(cb_, dispatcher()).WillRepeatedly(ReturnRef(loop_.dispatcher()));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, f->decodeHeaders(head_, true));
  EXPECT_EQ(0u, injected("abort"));  // not before the delay
  bool replied = false;
  EXPECT_CALL(cb_, sendLocalReply(504, std::string_view("fault_abort"), _, _, _))
      .WillOnce(Invoke([&] { replied = true; }));
  ASSERT_TRUE(loop_.runUntil([&] { return replied; }));
  f->onDestroy();
  EXPECT_EQ(1u, injected("delay"));
  EXPECT_EQ(1u, injected("abort"));
}

TEST_F(FaultFilterTest, OnDestroyDisarmsTheDelayTimer) {
  auto f = newFilter(delayOf(std::chrono::milliseconds(1)));
  EXPECT_CALL(cb_, dispatcher()).WillRepeatedly(ReturnRef(loop_.dispatcher()));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, f->decodeHeaders(head_, true));
  ASSERT_TRUE(f->delayArmedForTest());
  f->onDestroy();  // the client went away mid-delay
  EXPECT_FALSE(f->delayArmedForTest());
  // Well past the delay: the StrictMock fails the test if continueDecoding() is called.
  bool sentinel = false;
  event::TimerPtr t = loop_.dispatcher().createTimer([&] { sentinel = true; });
  t->enable(std::chrono::milliseconds(20));
  ASSERT_TRUE(loop_.runUntil([&] { return sentinel; }));
  f.reset();  // the timer handle is closed with the filter (TestLoop asserts nothing leaked)
}

TEST_F(FaultFilterTest, ExperimentsTargetRouteUpstreamAndHeader) {
  config::FaultExperimentSpec spec;
  spec.fault = abortAt(100, 500);
  spec.headers.push_back({"x-drill", "1"});
  spec.ttl = std::chrono::minutes(1);
  FaultRule added;
  std::string error;
  ASSERT_TRUE(registry_.add(spec, 10, added, error)) << error;
  // No header: the experiment does not apply, and with no policy fault there is no filter.
  EXPECT_EQ(nullptr, newFilter(config::FaultConfig{}));
  head_.headers.add("X-Drill", "2");
  EXPECT_EQ(nullptr, newFilter(config::FaultConfig{}));
  http::RequestHead drill;
  drill.headers.add("X-Drill", "1");
  head_ = drill;
  auto f = newFilter(config::FaultConfig{});
  ASSERT_NE(nullptr, f);
  EXPECT_CALL(cb_, sendLocalReply(500, std::string_view("fault_abort"), _, _, _));
  f->decodeHeaders(head_, true);
  f->onDestroy();
  // Another route's experiment does not apply here.
  ASSERT_TRUE(registry_.remove(added.id));
  spec.route = "other";
  ASSERT_TRUE(registry_.add(spec, 10, added, error));
  EXPECT_EQ(nullptr, newFilter(config::FaultConfig{}));
  spec.route = "orders";
  spec.upstream = "elsewhere";
  ASSERT_TRUE(registry_.add(spec, 10, added, error));
  EXPECT_EQ(nullptr, newFilter(config::FaultConfig{}));
  // The kill switch: nothing applies any more.
  EXPECT_EQ(2u, registry_.clear());
  EXPECT_TRUE(worker_.view().current().rules.empty());
}

TEST_F(FaultFilterTest, PolicyFaultAndExperimentBothApply) {
  config::FaultExperimentSpec spec;
  spec.fault = delayOf(std::chrono::milliseconds(1));
  spec.ttl = std::chrono::minutes(1);
  FaultRule added;
  std::string error;
  ASSERT_TRUE(registry_.add(spec, 10, added, error));
  // Policy: abort 100%; experiment: delay 100% -> delayed, then aborted.
  auto f = newFilter(abortAt(100, 503));
  EXPECT_CALL(cb_, dispatcher()).WillRepeatedly(ReturnRef(loop_.dispatcher()));
  EXPECT_EQ(http::FilterHeadersStatus::StopIteration, f->decodeHeaders(head_, true));
  EXPECT_TRUE(f->delayArmedForTest());
  bool replied = false;
  EXPECT_CALL(cb_, sendLocalReply(503, _, _, _, _)).WillOnce(Invoke([&] { replied = true; }));
  ASSERT_TRUE(loop_.runUntil([&] { return replied; }));
  f->onDestroy();
}

}  // namespace
}  // namespace levee::filters::fault
