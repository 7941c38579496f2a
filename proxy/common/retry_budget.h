#pragma once
// Retry budgets (issue "retries"): one instance per upstream, shared by all worker threads,
// bounding how much extra load retries may add when the upstream is struggling. Two models:
//  - ConcurrencyRetryBudget (Envoy): concurrent retries <= max(min_concurrency, percent% of
//    active requests). Lock-free.
//  - TokenRetryBudget (Finagle/Linkerd): each request deposits `ratio` tokens that expire after
//    `ttl`; each retry withdraws one; a reserve allows `min_per_second` retries per second.
// Pure: no I/O, no timers; time comes from an injected TimeSource.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/common/spin_lock.h"
#include "proxy/common/time_source.h"

namespace levee::common {

// What the router holds. All methods are thread-safe and never block for long.
class RetryBudget {
public:
  virtual ~RetryBudget() = default;

  // Asks to send one retry. On true the retry is charged to the budget; on false it must not
  // be sent. Each true must be followed by exactly one onRetryEnd() when that retry finishes.
  virtual bool tryStartRetry() = 0;
  virtual void onRetryEnd() {}
  // Called once per request routed to the upstream (a retry is not a new request), and
  // onRequestEnd() once when it is finished (after its last retry).
  virtual void onRequestStart() {}
  virtual void onRequestEnd() {}
};

using RetryBudgetPtr = std::unique_ptr<RetryBudget>;

// Mirrors config::RetryBudgetConfig (proxy/common stays below config).
struct RetryBudgetParams {
  enum class Kind { None, Percent, Ratio };
  Kind kind{Kind::None};
  uint32_t percent{20};
  uint32_t min_concurrency{3};
  double ratio{0.2};
  uint32_t min_per_second{10};
  std::chrono::milliseconds ttl{10000};
};

// Kind::None gives nullptr: retries are bounded only by max_retries. `time` must outlive the
// budget.
RetryBudgetPtr makeRetryBudget(const RetryBudgetParams& params, const TimeSource& time);

// Envoy's retry_budget: concurrent retries <= max(min_concurrency, floor(active * percent / 100)).
// Two atomics; tryStartRetry() is a CAS loop, so the number of active retries never exceeds
// the limit computed from the active-request count it read (requests ending concurrently may
// lower the limit below retries already admitted; those finish normally).
class ConcurrencyRetryBudget final : public RetryBudget {
public:
  ConcurrencyRetryBudget(uint32_t percent, uint32_t min_concurrency);

  ConcurrencyRetryBudget(const ConcurrencyRetryBudget&) = delete;
  ConcurrencyRetryBudget& operator=(const ConcurrencyRetryBudget&) = delete;

  bool tryStartRetry() override;
  void onRetryEnd() override;
  void onRequestStart() override;
  void onRequestEnd() override;

  uint32_t activeRequests() const { return active_requests_.load(std::memory_order_relaxed); }
  uint32_t activeRetries() const { return active_retries_.load(std::memory_order_relaxed); }
  // The current limit on concurrent retries.
  uint32_t limit() const { return limitFor(activeRequests()); }

private:
  uint32_t limitFor(uint32_t active_requests) const;

  const uint32_t percent_;
  const uint32_t min_concurrency_;
  std::atomic<uint32_t> active_requests_{0};
  std::atomic<uint32_t> active_retries_{0};
};

// Finagle's TokenRetryBudget. The balance is the sum over a sliding window of `ttl` (a fixed
// ring of `buckets` time buckets) of +ratio per request and -1 per retry, plus a reserve of
// min_per_second * ttl tokens; a retry is allowed while the balance is >= 1. Withdrawals age
// out of the window like deposits, so the reserve alone admits min_per_second * ttl retries
// per ttl (min_per_second per second on average). Granularity is one bucket: an entry is
// forgotten between ttl - ttl/buckets and ttl after it was made. Balances are kept in fixed
// point (1e-6 token), so sums are exact. One short mutex.
class TokenRetryBudget final : public RetryBudget {
public:
  static constexpr uint32_t kDefaultBuckets = 10;

  // ratio is clamped to [0, 1000]; a ttl below 1ms is treated as 1ms, buckets 0 as 1. `time`
  // must outlive the budget.
  TokenRetryBudget(double ratio, uint32_t min_per_second, std::chrono::milliseconds ttl,
                   const TimeSource& time, uint32_t buckets = kDefaultBuckets);

  TokenRetryBudget(const TokenRetryBudget&) = delete;
  TokenRetryBudget& operator=(const TokenRetryBudget&) = delete;

  // Deposits `ratio` tokens.
  void onRequest();
  // Withdraws one token if the balance (reserve included) has one.
  bool tryWithdraw();
  // Tokens available now, reserve included.
  double balance() const;

  bool tryStartRetry() override { return tryWithdraw(); }
  void onRequestStart() override { onRequest(); }

private:
  struct Bucket {
    int64_t epoch;   // absolute bucket number (time / width_); kEmpty when unused
    int64_t amount;  // net deposits minus withdrawals, in 1e-6 tokens
  };

  int64_t epochOf(MonotonicTime t) const;
  // Adds `amount` to the bucket for `now`.
  void addLocked(MonotonicTime now, int64_t amount);
  int64_t balanceLocked(MonotonicTime now) const;

  const TimeSource& time_;
  const int64_t deposit_;  // 1e-6 tokens per request
  const int64_t reserve_;  // 1e-6 tokens
  const std::chrono::nanoseconds width_;

  mutable SpinLock mu_;
  std::vector<Bucket> buckets_;  // allocated once
  int64_t newest_epoch_;
};

}  // namespace levee::common
