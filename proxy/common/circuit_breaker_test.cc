#include "proxy/common/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;
using State = CircuitBreaker::State;
using Event = std::tuple<State, State, std::string>;

// Jitter 0 so every timing below is exact.
CircuitBreakerParams baseParams() {
  CircuitBreakerParams p;
  p.consecutive_failures = 3;
  p.failure_rate_threshold_percent = 0;
  p.failure_rate_minimum_requests = 10;
  p.failure_rate_window = milliseconds(1000);
  p.slow_call_duration = milliseconds(0);
  p.slow_call_threshold_percent = 0;
  p.open_for = milliseconds(1000);
  p.max_open_for = milliseconds(8000);
  p.half_open_permitted = 2;
  p.half_open_successes_to_close = 2;
  p.half_open_max_wait = milliseconds(500);
  p.shadow = false;
  p.jitter_percent = 0;
  return p;
}

class CircuitBreakerTest : public testing::Test {
protected:
  void make(CircuitBreakerParams p, CircuitBreaker::RandomFn random = [] { return uint64_t{0}; }) {
    cb_ = std::make_unique<CircuitBreaker>(
        p, time_, std::move(random),
        [this](State from, State to, std::string_view cause) {
          events_.emplace_back(from, to, std::string(cause));
        });
  }
  // One whole request: admit, then report.
  CircuitBreaker::Admission call(bool failure, milliseconds duration = milliseconds(1)) {
    const auto a = cb_->admit();
    cb_->onResult(a, failure, duration);
    return a;
  }
  void trip() {
    for (int i = 0; i < 3; ++i) {
      call(true);
    }
    ASSERT_EQ(State::Open, cb_->state());
  }
  void toHalfOpen() {
    time_.advance(cb_->snapshot().time_until_half_open);
    cb_->tick();
    ASSERT_EQ(State::HalfOpen, cb_->state());
  }

  SimulatedTimeSource time_;
  std::vector<Event> events_;
  std::unique_ptr<CircuitBreaker> cb_;
};

struct Call {
  milliseconds advance;
  bool failure;
  milliseconds duration;
  int repeat;
};

struct TripCase {
  std::string name;
  void (*tune)(CircuitBreakerParams&);
  std::vector<Call> calls;
  State expected;
  std::string cause;  // of the only transition, if any
};

TEST_F(CircuitBreakerTest, ClosedTriggers) {
  const milliseconds fast(1);
  const milliseconds slow(100);
  const TripCase cases[] = {
      {"consecutive_failures_trip", [](CircuitBreakerParams&) {},
       {{milliseconds(0), true, fast, 3}}, State::Open, "consecutive_failures"},
      {"success_resets_consecutive", [](CircuitBreakerParams&) {},
       {{milliseconds(0), true, fast, 2}, {milliseconds(0), false, fast, 1},
        {milliseconds(0), true, fast, 2}},
       State::Closed, ""},
      {"consecutive_zero_is_off", [](CircuitBreakerParams& p) { p.consecutive_failures = 0; },
       {{milliseconds(0), true, fast, 100}}, State::Closed, ""},
      {"rate_below_minimum_requests_does_not_trip",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_threshold_percent = 50;
       },
       {{milliseconds(0), true, fast, 9}}, State::Closed, ""},
      {"rate_trips_at_minimum_requests",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_threshold_percent = 50;
       },
       {{milliseconds(0), false, fast, 5}, {milliseconds(0), true, fast, 4},
        {milliseconds(0), true, fast, 1}},
       State::Open, "failure_rate"},
      {"rate_below_threshold_stays_closed",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_threshold_percent = 50;
       },
       {{milliseconds(0), false, fast, 6}, {milliseconds(0), true, fast, 4}}, State::Closed, ""},
      {"window_expiry_forgets_old_failures",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_threshold_percent = 50;
         p.failure_rate_minimum_requests = 4;
       },
       // 3 failures, then a full window later 1 failure + 3 successes: 25% < 50%.
       {{milliseconds(0), true, fast, 3}, {milliseconds(1000), false, fast, 3},
        {milliseconds(0), true, fast, 1}},
       State::Closed, ""},
      {"failures_inside_window_trip",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_threshold_percent = 50;
         p.failure_rate_minimum_requests = 4;
       },
       {{milliseconds(0), true, fast, 3}, {milliseconds(800), false, fast, 1}},
       State::Open, "failure_rate"},
      {"slow_call_rate_trips",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_minimum_requests = 4;
         p.slow_call_duration = milliseconds(100);
         p.slow_call_threshold_percent = 50;
       },
       {{milliseconds(0), false, fast, 2}, {milliseconds(0), false, slow, 2}},
       State::Open, "slow_call_rate"},
      {"slow_call_needs_minimum_requests",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_minimum_requests = 4;
         p.slow_call_duration = milliseconds(100);
         p.slow_call_threshold_percent = 50;
       },
       {{milliseconds(0), false, slow, 3}}, State::Closed, ""},
      {"just_below_slow_duration_is_fast",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_minimum_requests = 4;
         p.slow_call_duration = milliseconds(100);
         p.slow_call_threshold_percent = 50;
       },
       {{milliseconds(0), false, milliseconds(99), 10}}, State::Closed, ""},
      {"slow_duration_zero_is_off",
       [](CircuitBreakerParams& p) {
         p.consecutive_failures = 0;
         p.failure_rate_minimum_requests = 4;
         p.slow_call_threshold_percent = 50;
       },
       {{milliseconds(0), false, milliseconds(100000), 10}}, State::Closed, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    events_.clear();
    CircuitBreakerParams p = baseParams();
    c.tune(p);
    make(p);
    for (const Call& step : c.calls) {
      time_.advance(step.advance);
      for (int i = 0; i < step.repeat; ++i) {
        call(step.failure, step.duration);
      }
    }
    EXPECT_EQ(c.expected, cb_->state());
    if (c.cause.empty()) {
      EXPECT_TRUE(events_.empty());
    } else {
      ASSERT_EQ(1u, events_.size());
      EXPECT_EQ(Event(State::Closed, State::Open, c.cause), events_[0]);
    }
  }
}

TEST_F(CircuitBreakerTest, OpenRefusesUntilOpenForThenHalfOpens) {
  make(baseParams());
  trip();
  const auto refused = cb_->admit();
  EXPECT_FALSE(refused.allowed);
  EXPECT_FALSE(refused.would_block);
  EXPECT_EQ(milliseconds(1000), cb_->snapshot().time_until_half_open);
  time_.advance(milliseconds(999));
  EXPECT_FALSE(cb_->admit().allowed);
  EXPECT_EQ(milliseconds(1), cb_->snapshot().time_until_half_open);
  time_.advance(milliseconds(1));
  // No tick(): admit() notices the timeout itself.
  const auto probe = cb_->admit();
  EXPECT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  EXPECT_NE(0u, probe.ticket);
  EXPECT_EQ(State::HalfOpen, cb_->state());
  EXPECT_EQ(2u, cb_->snapshot().rejected_total);
  ASSERT_EQ(2u, events_.size());
  EXPECT_EQ(Event(State::Open, State::HalfOpen, "open_timeout"), events_[1]);
}

TEST_F(CircuitBreakerTest, HalfOpenAdmitsExactlyPermittedProbes) {
  const uint32_t permitted[] = {1, 2, 3, 5};
  for (uint32_t n : permitted) {
    SCOPED_TRACE(n);
    CircuitBreakerParams p = baseParams();
    p.half_open_permitted = n;
    p.half_open_successes_to_close = 100;
    make(p);
    trip();
    toHalfOpen();
    std::vector<CircuitBreaker::Admission> probes;
    for (uint32_t i = 0; i < n; ++i) {
      probes.push_back(cb_->admit());
      EXPECT_TRUE(probes.back().allowed);
      EXPECT_TRUE(probes.back().probe);
    }
    for (uint32_t i = 1; i < n; ++i) {
      EXPECT_NE(probes[i - 1].ticket, probes[i].ticket);
    }
    const uint64_t rejected = cb_->snapshot().rejected_total;
    const auto extra = cb_->admit();
    EXPECT_FALSE(extra.allowed);
    EXPECT_FALSE(extra.probe);
    EXPECT_EQ(rejected + 1, cb_->snapshot().rejected_total);
    EXPECT_EQ(n, cb_->snapshot().probes_in_flight);
    // A successful probe frees its slot for exactly one more.
    cb_->onResult(probes[0], false, milliseconds(1));
    EXPECT_EQ(n - 1, cb_->snapshot().probes_in_flight);
    EXPECT_TRUE(cb_->admit().probe);
    EXPECT_FALSE(cb_->admit().allowed);
  }
}

TEST_F(CircuitBreakerTest, OneFailedProbeReopens) {
  make(baseParams());
  trip();
  toHalfOpen();
  const auto a = cb_->admit();
  const auto b = cb_->admit();
  cb_->onResult(a, true, milliseconds(1));
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(Event(State::HalfOpen, State::Open, "probe_failed"), events_.back());
  // The other probe's late result belongs to the previous half-open era: ignored.
  const size_t before = events_.size();
  cb_->onResult(b, false, milliseconds(1));
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(before, events_.size());
}

TEST_F(CircuitBreakerTest, SuccessesToCloseCloses) {
  const uint32_t needed[] = {1, 2, 4};
  for (uint32_t n : needed) {
    SCOPED_TRACE(n);
    CircuitBreakerParams p = baseParams();
    p.half_open_successes_to_close = n;
    make(p);
    trip();
    toHalfOpen();
    for (uint32_t i = 0; i + 1 < n; ++i) {
      call(false);
      EXPECT_EQ(State::HalfOpen, cb_->state());
    }
    call(false);
    EXPECT_EQ(State::Closed, cb_->state());
    EXPECT_EQ(Event(State::HalfOpen, State::Closed, "probes_succeeded"), events_.back());
    const auto s = cb_->snapshot();
    EXPECT_EQ(0u, s.probes_in_flight);
    EXPECT_EQ(0u, s.consecutive_failures);
    EXPECT_EQ(0u, s.window.total);
  }
}

TEST_F(CircuitBreakerTest, SlowProbeCountsAsFailedWhenSlowTriggerOn) {
  CircuitBreakerParams p = baseParams();
  p.slow_call_duration = milliseconds(100);
  p.slow_call_threshold_percent = 50;
  make(p);
  trip();
  toHalfOpen();
  call(false, milliseconds(100));
  EXPECT_EQ(Event(State::HalfOpen, State::Open, "probe_failed"), events_.back());
}

TEST_F(CircuitBreakerTest, ProbeTimeoutReopensViaTick) {
  make(baseParams());
  trip();
  toHalfOpen();
  const auto stuck = cb_->admit();
  ASSERT_TRUE(stuck.probe);
  time_.advance(milliseconds(499));
  cb_->tick();
  EXPECT_EQ(State::HalfOpen, cb_->state());
  time_.advance(milliseconds(1));
  cb_->tick();
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(Event(State::HalfOpen, State::Open, "probe_timeout"), events_.back());
  EXPECT_EQ(0u, cb_->snapshot().probes_in_flight);
  EXPECT_EQ(milliseconds(2000), cb_->snapshot().open_for);  // a consecutive re-open
  // The result finally arrives: ignored, nothing changes.
  const size_t before = events_.size();
  cb_->onResult(stuck, false, milliseconds(600));
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(before, events_.size());
}

TEST_F(CircuitBreakerTest, ProbeTimeoutReopensLazilyInAdmit) {
  make(baseParams());
  trip();
  toHalfOpen();
  const auto first = cb_->admit();
  const auto second = cb_->admit();
  ASSERT_TRUE(second.probe);
  EXPECT_FALSE(cb_->admit().allowed);  // both slots taken
  time_.advance(milliseconds(500));
  // No tick(): the next admit() sees the expired probes, re-opens and refuses.
  EXPECT_FALSE(cb_->admit().allowed);
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(Event(State::HalfOpen, State::Open, "probe_timeout"), events_.back());
  // After the (doubled) open time, the slots are free again: no stuck half-open.
  time_.advance(milliseconds(2000));
  const auto fresh = cb_->admit();
  EXPECT_TRUE(fresh.probe);
  EXPECT_EQ(1u, cb_->snapshot().probes_in_flight);
  // Results of the expired probes do not count in the new half-open.
  cb_->onResult(first, true, milliseconds(1));
  cb_->onResult(second, true, milliseconds(1));
  EXPECT_EQ(State::HalfOpen, cb_->state());
  EXPECT_EQ(1u, cb_->snapshot().probes_in_flight);
}

TEST_F(CircuitBreakerTest, LateProbeResultTimesOutLazilyInOnResult) {
  make(baseParams());
  trip();
  toHalfOpen();
  const auto probe = cb_->admit();
  time_.advance(milliseconds(500));
  cb_->onResult(probe, false, milliseconds(500));  // too late: counts as a timeout
  EXPECT_EQ(State::Open, cb_->state());
  EXPECT_EQ(Event(State::HalfOpen, State::Open, "probe_timeout"), events_.back());
}

TEST_F(CircuitBreakerTest, OpenForDoublesUpToCapAndCloseResetsIt) {
  CircuitBreakerParams p = baseParams();
  p.open_for = milliseconds(1000);
  p.max_open_for = milliseconds(5000);
  make(p);
  trip();
  const milliseconds expected[] = {milliseconds(1000), milliseconds(2000), milliseconds(4000),
                                   milliseconds(5000), milliseconds(5000)};
  for (size_t i = 0; i < std::size(expected); ++i) {
    SCOPED_TRACE(i);
    const auto s = cb_->snapshot();
    EXPECT_EQ(expected[i], s.open_for);
    EXPECT_EQ(expected[i], s.time_until_half_open);
    toHalfOpen();
    call(true);  // probe fails: consecutive re-open
  }
  toHalfOpen();
  call(false);
  call(false);
  ASSERT_EQ(State::Closed, cb_->state());
  EXPECT_EQ(milliseconds(1000), cb_->snapshot().open_for);
  trip();
  EXPECT_EQ(milliseconds(1000), cb_->snapshot().time_until_half_open);
}

TEST_F(CircuitBreakerTest, JitterIsExactForInjectedRandom) {
  struct JitterCase {
    uint64_t random;
    milliseconds expected;
  };
  // open_for 1000, jitter 10%: offset = random % 201 - 100.
  const JitterCase cases[] = {
      {0, milliseconds(900)},   {100, milliseconds(1000)}, {200, milliseconds(1100)},
      {201, milliseconds(900)}, {std::numeric_limits<uint64_t>::max(),
                                 milliseconds(900 + std::numeric_limits<uint64_t>::max() % 201)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.random);
    CircuitBreakerParams p = baseParams();
    p.jitter_percent = 10;
    make(p, [r = c.random] { return r; });
    trip();
    EXPECT_EQ(c.expected, cb_->snapshot().time_until_half_open);
    EXPECT_EQ(milliseconds(1000), cb_->snapshot().open_for);
  }
}

TEST_F(CircuitBreakerTest, JitterStaysWithinBounds) {
  CircuitBreakerParams p = baseParams();
  p.jitter_percent = 20;
  p.max_open_for = milliseconds(4000);
  make(p, [rng = std::mt19937_64(42)]() mutable { return rng(); });
  trip();
  for (int i = 0; i < 200; ++i) {
    const auto s = cb_->snapshot();
    EXPECT_GE(s.time_until_half_open, s.open_for * 80 / 100);
    EXPECT_LE(s.time_until_half_open, s.open_for * 120 / 100);
    toHalfOpen();
    call(true);
  }
  EXPECT_EQ(milliseconds(4000), cb_->snapshot().open_for);
}

TEST_F(CircuitBreakerTest, ResetReturnsToClosedWithBaseOpenFor) {
  make(baseParams());
  trip();
  toHalfOpen();
  call(true);  // re-open: open_for 2000
  ASSERT_EQ(milliseconds(2000), cb_->snapshot().open_for);
  cb_->reset();
  EXPECT_EQ(Event(State::Open, State::Closed, "reset"), events_.back());
  auto s = cb_->snapshot();
  EXPECT_EQ(State::Closed, s.state);
  EXPECT_FALSE(s.forced);
  EXPECT_EQ(milliseconds(1000), s.open_for);
  EXPECT_EQ(0u, s.consecutive_failures);
  EXPECT_EQ(0u, s.window.total);
  EXPECT_TRUE(cb_->admit().allowed);
  // Reset while closed clears the counters but is not a transition.
  call(true);
  call(true);
  const size_t before = events_.size();
  cb_->reset();
  EXPECT_EQ(before, events_.size());
  s = cb_->snapshot();
  EXPECT_EQ(0u, s.consecutive_failures);
  EXPECT_EQ(0u, s.window.total);
  call(true);
  call(true);
  EXPECT_EQ(State::Closed, cb_->state());  // the two pre-reset failures were forgotten
}

TEST_F(CircuitBreakerTest, ForcedModes) {
  make(baseParams());
  cb_->forceOpen();
  EXPECT_EQ(Event(State::Closed, State::ForcedOpen, "forced_open"), events_.back());
  auto s = cb_->snapshot();
  EXPECT_EQ(State::ForcedOpen, s.state);
  EXPECT_TRUE(s.forced);
  time_.advance(milliseconds(100000));
  cb_->tick();
  EXPECT_FALSE(cb_->admit().allowed);  // never half-opens by itself
  EXPECT_EQ(State::ForcedOpen, cb_->state());
  cb_->forceOpen();  // idempotent: no second transition
  EXPECT_EQ(1u, events_.size());

  cb_->forceClose();
  EXPECT_EQ(Event(State::ForcedOpen, State::ForcedClosed, "forced_close"), events_.back());
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(call(true).allowed);
  }
  s = cb_->snapshot();
  EXPECT_EQ(State::ForcedClosed, s.state);
  EXPECT_TRUE(s.forced);
  EXPECT_EQ(10u, s.consecutive_failures);  // still measured, never trips
  EXPECT_EQ(100u, s.failure_rate_percent);

  cb_->reset();
  EXPECT_EQ(Event(State::ForcedClosed, State::Closed, "reset"), events_.back());
  EXPECT_FALSE(cb_->snapshot().forced);
  trip();  // normal rules apply again
  EXPECT_EQ(4u, events_.size());
}

TEST_F(CircuitBreakerTest, ShadowNeverBlocksButCountsWouldBlock) {
  CircuitBreakerParams p = baseParams();
  p.shadow = true;
  make(p);
  trip();  // the state machine still evaluates
  const auto a = cb_->admit();
  EXPECT_TRUE(a.allowed);
  EXPECT_TRUE(a.would_block);
  cb_->onResult(a, true, milliseconds(1));  // results of would-block requests teach nothing
  auto s = cb_->snapshot();
  EXPECT_EQ(State::Open, s.state);
  EXPECT_TRUE(s.shadow);
  EXPECT_EQ(0u, s.rejected_total);
  EXPECT_EQ(1u, s.would_block_total);

  toHalfOpen();
  const auto p1 = cb_->admit();
  const auto p2 = cb_->admit();
  const auto p3 = cb_->admit();
  EXPECT_TRUE(p1.probe && !p1.would_block);
  EXPECT_TRUE(p2.probe && !p2.would_block);
  EXPECT_TRUE(p3.allowed && !p3.probe && p3.would_block);
  cb_->onResult(p3, true, milliseconds(1));
  EXPECT_EQ(State::HalfOpen, cb_->state());
  cb_->onResult(p1, false, milliseconds(1));
  cb_->onResult(p2, false, milliseconds(1));
  EXPECT_EQ(State::Closed, cb_->state());
  s = cb_->snapshot();
  EXPECT_EQ(0u, s.rejected_total);
  EXPECT_EQ(2u, s.would_block_total);

  cb_->forceOpen();
  const auto forced = cb_->admit();
  EXPECT_TRUE(forced.allowed);
  EXPECT_TRUE(forced.would_block);
}

TEST_F(CircuitBreakerTest, EarlierEraResultsDoNotCount) {
  make(baseParams());
  const auto closed_era = cb_->admit();
  trip();
  toHalfOpen();
  const auto probe = cb_->admit();
  // A Closed-era request finishing now is neither a probe nor a failed probe.
  cb_->onResult(closed_era, true, milliseconds(1));
  EXPECT_EQ(State::HalfOpen, cb_->state());
  EXPECT_EQ(1u, cb_->snapshot().probes_in_flight);
  cb_->onResult(probe, false, milliseconds(1));
  call(false);
  ASSERT_EQ(State::Closed, cb_->state());
  // Nor does it count in the next Closed era.
  cb_->onResult(closed_era, true, milliseconds(1));
  EXPECT_EQ(0u, cb_->snapshot().consecutive_failures);
  // Refused admissions are ignored too.
  CircuitBreaker::Admission refused;
  cb_->onResult(refused, true, milliseconds(1));
  EXPECT_EQ(0u, cb_->snapshot().window.total);
}

TEST_F(CircuitBreakerTest, TransitionCallbackOncePerTransitionWithCause) {
  // The callback runs after the mutex is released: calling back in must not deadlock.
  std::vector<State> seen_inside;
  CircuitBreaker* raw = nullptr;
  cb_ = std::make_unique<CircuitBreaker>(
      baseParams(), time_, [] { return uint64_t{0}; },
      [this, &seen_inside, &raw](State from, State to, std::string_view cause) {
        events_.emplace_back(from, to, std::string(cause));
        seen_inside.push_back(raw->snapshot().state);
      });
  raw = cb_.get();
  trip();
  toHalfOpen();
  call(true);                       // probe_failed
  time_.advance(milliseconds(2000));
  const auto p = cb_->admit();      // open_timeout, lazily
  time_.advance(milliseconds(500));
  cb_->tick();                      // probe_timeout
  cb_->onResult(p, false, milliseconds(1));
  toHalfOpen();
  call(false);
  call(false);                      // probes_succeeded
  cb_->forceOpen();
  cb_->forceClose();
  cb_->reset();
  const std::vector<Event> expected = {
      {State::Closed, State::Open, "consecutive_failures"},
      {State::Open, State::HalfOpen, "open_timeout"},
      {State::HalfOpen, State::Open, "probe_failed"},
      {State::Open, State::HalfOpen, "open_timeout"},
      {State::HalfOpen, State::Open, "probe_timeout"},
      {State::Open, State::HalfOpen, "open_timeout"},
      {State::HalfOpen, State::Closed, "probes_succeeded"},
      {State::Closed, State::ForcedOpen, "forced_open"},
      {State::ForcedOpen, State::ForcedClosed, "forced_close"},
      {State::ForcedClosed, State::Closed, "reset"},
  };
  EXPECT_EQ(expected, events_);
  ASSERT_EQ(expected.size(), seen_inside.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(std::get<1>(expected[i]), seen_inside[i]);
  }
  const auto s = cb_->snapshot();
  EXPECT_EQ(expected.size(), s.transitions_total);
  EXPECT_EQ(3u, s.opened_total);
}

TEST(CircuitBreakerStateTest, ToString) {
  const std::pair<State, std::string_view> cases[] = {
      {State::Closed, "closed"},          {State::Open, "open"},
      {State::HalfOpen, "half_open"},     {State::ForcedOpen, "forced_open"},
      {State::ForcedClosed, "forced_closed"},
  };
  for (const auto& [state, name] : cases) {
    EXPECT_EQ(name, toString(state));
  }
}

// Frozen time with open_for 0 makes every admit() after a trip half-open at once, so four
// threads drive the breaker through all of its states. Run under TSan.
TEST(CircuitBreakerThreadsTest, ConcurrentAdmitAndResultStayConsistent) {
  CircuitBreakerParams p = baseParams();
  p.consecutive_failures = 5;
  p.failure_rate_threshold_percent = 50;
  p.failure_rate_minimum_requests = 10;
  p.open_for = milliseconds(0);
  p.max_open_for = milliseconds(0);
  p.jitter_percent = 50;  // exercises the (unsynchronized) RNG, which must only run under the lock
  SimulatedTimeSource time;
  std::mutex events_mu;
  std::vector<std::pair<State, State>> transitions;
  std::atomic<uint64_t> callbacks{0};
  CircuitBreaker cb(
      p, time, [rng = std::mt19937_64(7)]() mutable { return rng(); },
      [&](State from, State to, std::string_view) {
        callbacks.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(events_mu);
        transitions.emplace_back(from, to);
      });
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> probes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cb, &refused, &probes, t] {
      uint32_t x = 2463534242u + static_cast<uint32_t>(t);  // xorshift: fail ~40%
      for (int i = 0; i < kIterations; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const auto a = cb.admit();
        if (!a.allowed) {
          refused.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        probes.fetch_add(a.probe ? 1 : 0, std::memory_order_relaxed);
        cb.onResult(a, x % 10 < 4, milliseconds(1));
        if (i % 1000 == 0) {
          (void)cb.snapshot();
          cb.tick();
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const auto s = cb.snapshot();
  EXPECT_EQ(refused.load(), s.rejected_total);
  EXPECT_EQ(callbacks.load(), s.transitions_total);
  EXPECT_EQ(0u, s.probes_in_flight);  // every probe reported or was cleared by a transition
  EXPECT_GT(s.opened_total, 0u);
  EXPECT_GT(probes.load(), 0u);
  std::lock_guard lock(events_mu);
  ASSERT_EQ(s.transitions_total, transitions.size());
  for (const auto& [from, to] : transitions) {
    const bool legal = (from == State::Closed && to == State::Open) ||
                       (from == State::Open && to == State::HalfOpen) ||
                       (from == State::HalfOpen && (to == State::Open || to == State::Closed));
    EXPECT_TRUE(legal) << toString(from) << " -> " << toString(to);
  }
}

}  // namespace
}  // namespace levee::common
