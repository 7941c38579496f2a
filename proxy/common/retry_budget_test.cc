#include "proxy/common/retry_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace levee::common {
namespace {

using std::chrono::milliseconds;

// === ConcurrencyRetryBudget ===

struct ConcurrencyCase {
  uint32_t percent;
  uint32_t min_concurrency;
  uint32_t active_requests;
  uint32_t expected_limit;
};

TEST(ConcurrencyRetryBudgetTest, LimitTable) {
  const std::vector<ConcurrencyCase> cases = {
      {20, 3, 0, 3},      // the floor with no traffic
      {20, 3, 10, 3},     // 20% of 10 = 2 < floor
      {20, 3, 19, 3},     // 3.8 rounds down to 3
      {20, 3, 20, 4},     // percent takes over
      {20, 3, 100, 20},
      {20, 3, 104, 20},   // floor(20.8)
      {20, 0, 4, 0},      // no floor: nothing until 5 requests
      {20, 0, 5, 1},
      {100, 0, 7, 7},
      {0, 3, 1000, 3},    // percent 0: the floor only
      {250, 1, 10, 25},   // above 100%: more retries than requests
  };
  for (const ConcurrencyCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "percent=" << c.percent << " min=" << c.min_concurrency
                                    << " active=" << c.active_requests);
    ConcurrencyRetryBudget budget(c.percent, c.min_concurrency);
    for (uint32_t i = 0; i < c.active_requests; ++i) {
      budget.onRequestStart();
    }
    EXPECT_EQ(c.expected_limit, budget.limit());
    for (uint32_t i = 0; i < c.expected_limit; ++i) {
      EXPECT_TRUE(budget.tryStartRetry()) << i;
    }
    EXPECT_FALSE(budget.tryStartRetry());
    EXPECT_EQ(c.expected_limit, budget.activeRetries());
    if (c.expected_limit > 0) {
      budget.onRetryEnd();  // one finishes: exactly one more fits
      EXPECT_TRUE(budget.tryStartRetry());
      EXPECT_FALSE(budget.tryStartRetry());
    }
  }
}

TEST(ConcurrencyRetryBudgetTest, FallingTrafficLowersTheLimit) {
  ConcurrencyRetryBudget budget(50, 1);
  for (int i = 0; i < 10; ++i) {
    budget.onRequestStart();
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(budget.tryStartRetry());
  }
  for (int i = 0; i < 6; ++i) {
    budget.onRequestEnd();
  }
  // 4 requests: limit 2, yet 5 retries are in flight. They finish; new ones wait.
  EXPECT_EQ(4U, budget.activeRequests());
  EXPECT_EQ(2U, budget.limit());
  EXPECT_FALSE(budget.tryStartRetry());
  budget.onRetryEnd();
  budget.onRetryEnd();
  budget.onRetryEnd();
  EXPECT_FALSE(budget.tryStartRetry());  // 2 in flight, limit 2
  budget.onRetryEnd();
  EXPECT_TRUE(budget.tryStartRetry());
}

TEST(ConcurrencyRetryBudgetTest, WorksThroughTheInterface) {
  ConcurrencyRetryBudget impl(20, 1);
  RetryBudget& budget = impl;
  budget.onRequestStart();
  EXPECT_TRUE(budget.tryStartRetry());
  EXPECT_FALSE(budget.tryStartRetry());
  budget.onRetryEnd();
  budget.onRequestEnd();
  EXPECT_EQ(0U, impl.activeRequests());
  EXPECT_EQ(0U, impl.activeRetries());
}

// Threads race tryStartRetry/onRetryEnd; the number of retries in flight never exceeds the limit.
TEST(ConcurrencyRetryBudgetTest, ConcurrentRetriesNeverExceedTheLimit) {
  constexpr uint32_t kRequests = 50;  // 20% -> limit 10
  constexpr uint32_t kLimit = 10;
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  ConcurrencyRetryBudget budget(20, 3);
  for (uint32_t i = 0; i < kRequests; ++i) {
    budget.onRequestStart();
  }
  ASSERT_EQ(kLimit, budget.limit());

  std::atomic<uint32_t> in_flight{0};
  std::atomic<uint32_t> max_seen{0};
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        if (!budget.tryStartRetry()) {
          continue;
        }
        admitted.fetch_add(1, std::memory_order_relaxed);
        // Counted after the budget admitted and uncounted before it is told: never above it.
        const uint32_t now = in_flight.fetch_add(1) + 1;
        uint32_t prev = max_seen.load();
        while (now > prev && !max_seen.compare_exchange_weak(prev, now)) {
        }
        in_flight.fetch_sub(1);
        budget.onRetryEnd();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_LE(max_seen.load(), kLimit);
  EXPECT_GT(admitted.load(), 0U);
  EXPECT_EQ(0U, budget.activeRetries());
  EXPECT_EQ(kRequests, budget.activeRequests());
}

// Requests come and go on other threads while retries race: the counters balance out.
TEST(ConcurrencyRetryBudgetTest, ConcurrentRequestsAndRetriesBalance) {
  ConcurrencyRetryBudget budget(20, 2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&budget, t] {
      for (int i = 0; i < 5000; ++i) {
        if (t % 2 == 0) {
          budget.onRequestStart();
          budget.onRequestEnd();
        } else if (budget.tryStartRetry()) {
          budget.onRetryEnd();
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(0U, budget.activeRequests());
  EXPECT_EQ(0U, budget.activeRetries());
}

// === TokenRetryBudget ===
// SimulatedTimeSource starts at a whole second, so with ttl 1s and 10 buckets every step below
// lands on a bucket boundary and expiry is exact.

struct TokenStep {
  milliseconds advance;
  int requests;        // onRequest() calls after advancing
  int withdrawals;     // tryWithdraw() calls after the requests
  int expect_allowed;  // how many of them succeed
  double expect_balance;
};

struct TokenCase {
  const char* name;
  double ratio;
  uint32_t min_per_second;
  milliseconds ttl;
  std::vector<TokenStep> steps;
};

TEST(TokenRetryBudgetTest, Table) {
  const std::vector<TokenCase> cases = {
      {"reserve only: min_per_second * ttl",
       0.2, 10, milliseconds(1000),
       {{milliseconds(0), 0, 11, 10, 0.0}}},
      {"reserve scales with ttl",
       0.2, 10, milliseconds(10000),
       {{milliseconds(0), 0, 101, 100, 0.0}}},
      {"deposits: 5 requests at 0.2 buy one retry",
       0.2, 0, milliseconds(1000),
       {{milliseconds(0), 4, 1, 0, 0.8}, {milliseconds(0), 1, 2, 1, 0.0}}},
      {"deposits and reserve add up",
       0.5, 1, milliseconds(1000),
       {{milliseconds(0), 4, 4, 3, 0.0}}},
      {"deposits expire after ttl",
       0.5, 0, milliseconds(1000),
       {{milliseconds(0), 10, 0, 0, 5.0},
        {milliseconds(900), 0, 0, 0, 5.0},
        {milliseconds(100), 0, 1, 0, 0.0}}},
      {"withdrawals expire too: the reserve comes back each ttl",
       0.0, 2, milliseconds(1000),
       {{milliseconds(0), 5, 3, 2, 0.0},
        {milliseconds(900), 0, 1, 0, 0.0},
        {milliseconds(100), 0, 3, 2, 0.0}}},
      {"a sliding window, not a reset: old buckets leave one at a time",
       1.0, 0, milliseconds(1000),
       {{milliseconds(0), 3, 0, 0, 3.0},
        {milliseconds(500), 2, 0, 0, 5.0},
        {milliseconds(500), 0, 0, 0, 2.0},
        {milliseconds(500), 0, 0, 0, 0.0}}},
      {"deposits and withdrawals in one bucket leave together",
       1.0, 0, milliseconds(1000),
       {{milliseconds(0), 2, 2, 2, 0.0},
        {milliseconds(500), 1, 0, 0, 1.0},
        {milliseconds(500), 0, 1, 1, 0.0}}},
      {"nothing at all",
       0.0, 0, milliseconds(1000),
       {{milliseconds(0), 100, 1, 0, 0.0}}},
  };
  for (const TokenCase& c : cases) {
    SCOPED_TRACE(c.name);
    SimulatedTimeSource time;
    TokenRetryBudget budget(c.ratio, c.min_per_second, c.ttl, time);
    int step_no = 0;
    for (const TokenStep& s : c.steps) {
      SCOPED_TRACE(step_no++);
      time.advance(s.advance);
      for (int i = 0; i < s.requests; ++i) {
        budget.onRequest();
      }
      int allowed = 0;
      for (int i = 0; i < s.withdrawals; ++i) {
        allowed += budget.tryWithdraw() ? 1 : 0;
      }
      EXPECT_EQ(s.expect_allowed, allowed);
      EXPECT_DOUBLE_EQ(s.expect_balance, budget.balance());
    }
  }
}

TEST(TokenRetryBudgetTest, WorksThroughTheInterface) {
  SimulatedTimeSource time;
  TokenRetryBudget impl(0.5, 0, milliseconds(1000), time);
  RetryBudget& budget = impl;
  budget.onRequestStart();
  budget.onRequestStart();
  EXPECT_TRUE(budget.tryStartRetry());
  budget.onRetryEnd();  // no-op for tokens
  budget.onRequestEnd();
  EXPECT_FALSE(budget.tryStartRetry());
}

// Withdrawals from many threads in frozen time: exactly the reserve is handed out.
TEST(TokenRetryBudgetTest, ConcurrentWithdrawalsAreExact) {
  SimulatedTimeSource time;
  TokenRetryBudget budget(0.0, 25, milliseconds(4000), time);  // reserve 100
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (budget.tryWithdraw()) {
          allowed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(100, allowed.load());
}

TEST(MakeRetryBudgetTest, BuildsTheConfiguredKind) {
  SimulatedTimeSource time;
  RetryBudgetParams p;
  p.kind = RetryBudgetParams::Kind::None;
  EXPECT_EQ(nullptr, makeRetryBudget(p, time));

  p.kind = RetryBudgetParams::Kind::Percent;
  p.percent = 20;
  p.min_concurrency = 2;
  RetryBudgetPtr percent = makeRetryBudget(p, time);
  ASSERT_NE(nullptr, dynamic_cast<ConcurrencyRetryBudget*>(percent.get()));
  EXPECT_TRUE(percent->tryStartRetry());
  EXPECT_TRUE(percent->tryStartRetry());
  EXPECT_FALSE(percent->tryStartRetry());

  p.kind = RetryBudgetParams::Kind::Ratio;
  p.ratio = 0.2;
  p.min_per_second = 1;
  p.ttl = milliseconds(3000);
  RetryBudgetPtr ratio = makeRetryBudget(p, time);
  ASSERT_NE(nullptr, dynamic_cast<TokenRetryBudget*>(ratio.get()));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(ratio->tryStartRetry()) << i;
  }
  EXPECT_FALSE(ratio->tryStartRetry());
}

}  // namespace
}  // namespace levee::common
