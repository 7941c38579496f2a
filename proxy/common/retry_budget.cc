#include "proxy/common/retry_budget.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "proxy/common/assert.h"

namespace levee::common {
namespace {

constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
// Fixed point: one token is kScale units, so fractional ratios add up exactly.
constexpr int64_t kScale = 1'000'000;
constexpr double kMaxRatio = 1000.0;

// Decrements without wrapping below zero (an unbalanced end call is a caller bug; in release
// builds it must not turn the counter into 4 billion).
void saturatingDecrement(std::atomic<uint32_t>& counter) {
  uint32_t v = counter.load(std::memory_order_relaxed);
  do {
    LEVEE_ASSERT(v > 0, "retry budget: end without start");
    if (v == 0) {
      return;
    }
  } while (!counter.compare_exchange_weak(v, v - 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
}

int64_t depositFor(double ratio) {
  if (!(ratio > 0)) {  // also NaN
    return 0;
  }
  return std::llround(std::min(ratio, kMaxRatio) * static_cast<double>(kScale));
}

// min_per_second * ttl in kScale units: per_second * ttl_ms * kScale / 1000, saturating far
// below int64 overflow so it can be added to bucket sums.
int64_t reserveFor(uint32_t min_per_second, std::chrono::milliseconds ttl) {
  constexpr int64_t kMaxReserve = std::numeric_limits<int64_t>::max() / 4;
  constexpr int64_t kPerMsPerSecond = kScale / 1000;
  const int64_t ttl_ms = ttl.count();
  if (min_per_second == 0) {
    return 0;
  }
  if (ttl_ms > kMaxReserve / kPerMsPerSecond / int64_t{min_per_second}) {
    return kMaxReserve;
  }
  return int64_t{min_per_second} * ttl_ms * kPerMsPerSecond;
}

std::chrono::nanoseconds widthOf(std::chrono::milliseconds ttl, uint32_t buckets) {
  const std::chrono::nanoseconds t = ttl;
  return std::max(t / buckets, std::chrono::nanoseconds(1));
}

}  // namespace

RetryBudgetPtr makeRetryBudget(const RetryBudgetParams& params, const TimeSource& time) {
  switch (params.kind) {
    case RetryBudgetParams::Kind::None:
      return nullptr;
    case RetryBudgetParams::Kind::Percent:
      return std::make_unique<ConcurrencyRetryBudget>(params.percent, params.min_concurrency);
    case RetryBudgetParams::Kind::Ratio:
      return std::make_unique<TokenRetryBudget>(params.ratio, params.min_per_second, params.ttl,
                                                time);
  }
  return nullptr;
}

// === impl ConcurrencyRetryBudget ===

ConcurrencyRetryBudget::ConcurrencyRetryBudget(uint32_t percent, uint32_t min_concurrency)
    : percent_(percent), min_concurrency_(min_concurrency) {}

uint32_t ConcurrencyRetryBudget::limitFor(uint32_t active_requests) const {
  const uint64_t by_percent = uint64_t{active_requests} * percent_ / 100;
  return static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(min_concurrency_, by_percent),
                                                  std::numeric_limits<uint32_t>::max()));
}

bool ConcurrencyRetryBudget::tryStartRetry() {
  uint32_t retries = active_retries_.load(std::memory_order_relaxed);
  do {
    // Re-read the request count on every attempt: the limit is the one current at the CAS.
    if (retries >= limitFor(active_requests_.load(std::memory_order_relaxed))) {
      return false;
    }
  } while (!active_retries_.compare_exchange_weak(retries, retries + 1, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed));
  return true;
}

void ConcurrencyRetryBudget::onRetryEnd() { saturatingDecrement(active_retries_); }

void ConcurrencyRetryBudget::onRequestStart() {
  active_requests_.fetch_add(1, std::memory_order_relaxed);
}

void ConcurrencyRetryBudget::onRequestEnd() { saturatingDecrement(active_requests_); }

// === impl TokenRetryBudget ===

TokenRetryBudget::TokenRetryBudget(double ratio, uint32_t min_per_second,
                                   std::chrono::milliseconds ttl, const TimeSource& time,
                                   uint32_t buckets)
    : time_(time),
      deposit_(depositFor(ratio)),
      reserve_(reserveFor(min_per_second, std::max(ttl, std::chrono::milliseconds(1)))),
      width_(widthOf(std::max(ttl, std::chrono::milliseconds(1)), std::max<uint32_t>(buckets, 1))),
      buckets_(std::max<uint32_t>(buckets, 1), Bucket{kEmpty, 0}),
      newest_epoch_(kEmpty) {}

int64_t TokenRetryBudget::epochOf(MonotonicTime t) const {
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const int64_t w = width_.count();
  // Floor division, so a clock before its epoch still maps to increasing bucket numbers.
  int64_t q = ns / w;
  if ((ns % w != 0) && (ns < 0)) {
    --q;
  }
  return q;
}

void TokenRetryBudget::addLocked(MonotonicTime now, int64_t amount) {
  // A `now` older than the newest bucket (a thread that read the clock before the lock) is
  // counted in the newest bucket.
  const int64_t epoch = std::max(epochOf(now), newest_epoch_);
  newest_epoch_ = epoch;
  const auto n = static_cast<int64_t>(buckets_.size());
  Bucket& b = buckets_[static_cast<size_t>(((epoch % n) + n) % n)];
  if (b.epoch != epoch) {
    b = Bucket{epoch, 0};  // the slot held a bucket at least one full window old
  }
  b.amount += amount;
}

int64_t TokenRetryBudget::balanceLocked(MonotonicTime now) const {
  const int64_t current = std::max(epochOf(now), newest_epoch_);
  const auto n = static_cast<int64_t>(buckets_.size());
  int64_t sum = reserve_;
  for (const Bucket& b : buckets_) {
    if (b.epoch != kEmpty && b.epoch > current - n) {
      sum += b.amount;
    }
  }
  return sum;
}

void TokenRetryBudget::onRequest() {
  if (deposit_ == 0) {
    return;
  }
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  addLocked(now, deposit_);
}

bool TokenRetryBudget::tryWithdraw() {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  if (balanceLocked(now) < kScale) {
    return false;
  }
  addLocked(now, -kScale);
  return true;
}

double TokenRetryBudget::balance() const {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  return static_cast<double>(balanceLocked(now)) / static_cast<double>(kScale);
}

}  // namespace levee::common
