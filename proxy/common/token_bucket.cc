#include "proxy/common/token_bucket.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <iterator>
#include <random>

namespace levee::common {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Fixed point: one token is kUnit units; at rate r tokens/s the bucket gains r units per ns.
constexpr int64_t kUnit = 1'000'000'000;

double sanitizeRate(double rate) { return rate > 0 && std::isfinite(rate) ? rate : 0.0; }

size_t shardCount(size_t max_keys) {
  size_t n = 1;
  while (n * 2 <= RateLimiter::kMaxShards && max_keys >= n * 2 * RateLimiter::kKeysPerShard) {
    n *= 2;
  }
  return n;
}

}  // namespace

// === impl TokenBucket ===

TokenBucket::TokenBucket(double rate_per_second, uint32_t burst)
    : rate_(sanitizeRate(rate_per_second)),
      capacity_(int64_t{std::max<uint32_t>(burst, 1)} * kUnit),  // <= 2^32 * 1e9 < 2^63
      tokens_(capacity_) {}

void TokenBucket::refill(MonotonicTime now) {
  if (!last_) {
    last_ = now;
    return;
  }
  if (now <= *last_) {
    return;
  }
  const auto elapsed = std::chrono::duration_cast<nanoseconds>(now - *last_).count();
  last_ = now;
  // Compare in double before converting, so a long idle period cannot overflow.
  const double gained = std::floor(static_cast<double>(elapsed) * rate_);
  const auto missing = static_cast<double>(capacity_ - tokens_);
  tokens_ = gained >= missing ? capacity_ : tokens_ + static_cast<int64_t>(gained);
}

milliseconds TokenBucket::timeUntil(int64_t units) const {
  if (tokens_ >= units) {
    return milliseconds(0);
  }
  if (rate_ == 0) {
    return kNever;
  }
  const double ns = std::ceil(static_cast<double>(units - tokens_) / rate_);
  const double ms = std::ceil(ns / 1e6);
  if (ms >= static_cast<double>(kNever.count())) {
    return kNever;
  }
  return milliseconds(static_cast<int64_t>(ms));
}

TokenBucket::Decision TokenBucket::take(MonotonicTime now) {
  refill(now);
  Decision d;
  if (tokens_ >= kUnit) {
    tokens_ -= kUnit;
    d.allowed = true;
  }
  d.remaining = static_cast<uint32_t>(tokens_ / kUnit);
  if (!d.allowed) {
    d.retry_after = timeUntil(kUnit);
    d.reset = timeUntil(capacity_);
  }
  return d;
}

// === impl RateLimiter ===

RateLimiter::RateLimiter(double rate, uint32_t burst, size_t max_keys, const TimeSource& time)
    : rate_(rate), burst_(burst), time_(time),
      seed_((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {
  max_keys = std::max<size_t>(max_keys, 1);
  const size_t n = shardCount(max_keys);
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto shard = std::make_unique<Shard>();
    // Shares sum to max_keys exactly: the first (max_keys % n) shards get one more.
    shard->capacity = max_keys / n + (i < max_keys % n ? 1 : 0);
    shards_.push_back(std::move(shard));
  }
}

RateLimiter::Shard& RateLimiter::shardFor(size_t hash) {
  // The shard count is a power of two; use high bits so they differ from the bucket index
  // bits the shard's own unordered_map uses.
  return *shards_[shards_.size() == 1 ? 0 : (hash >> 32) & (shards_.size() - 1)];
}

RateLimiter::Decision RateLimiter::take(std::string_view key) {
  const MonotonicTime now = time_.monotonicTime();
  const HashedKey hk{key, static_cast<size_t>(fastHash64(key, seed_))};
  Shard& shard = shardFor(hk.hash);
  std::lock_guard lock(shard.mu);
  if (const auto it = shard.index.find(hk); it != shard.index.end()) {
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
    return it->second->bucket.take(now);
  }
  if (shard.lru.size() >= shard.capacity) {
    // Reuse the least recently used node for the new key: no allocation for the node, and the
    // key string keeps its capacity.
    auto victim = std::prev(shard.lru.end());
    shard.index.erase(HashedKey{victim->key, victim->hash});
    victim->key.assign(key);
    victim->hash = hk.hash;
    victim->bucket = TokenBucket(rate_, burst_);
    shard.lru.splice(shard.lru.begin(), shard.lru, victim);
  } else {
    shard.lru.push_front(Entry{std::string(key), hk.hash, TokenBucket(rate_, burst_)});
  }
  Entry& entry = shard.lru.front();
  shard.index.emplace(HashedKey{entry.key, entry.hash}, shard.lru.begin());
  return entry.bucket.take(now);
}

size_t RateLimiter::size() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    total += shard->lru.size();
  }
  return total;
}

std::optional<double> parseRate(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view number = text.substr(0, slash);
  const std::string_view unit = text.substr(slash + 1);
  double per;
  if (unit == "s") {
    per = 1;
  } else if (unit == "m") {
    per = 60;
  } else if (unit == "h") {
    per = 3600;
  } else {
    return std::nullopt;
  }
  // from_chars alone would also accept "inf", "nan", exponents and a leading '-'.
  size_t digits = 0;
  size_t dots = 0;
  for (char c : number) {
    if (c >= '0' && c <= '9') {
      ++digits;
    } else if (c == '.') {
      ++dots;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0 || dots > 1 || number.front() == '.' || number.back() == '.') {
    return std::nullopt;
  }
  double value = 0;
  const char* end = number.data() + number.size();
  const auto [ptr, ec] = std::from_chars(number.data(), end, value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != end || !(value > 0) || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value / per;
}

}  // namespace levee::common
