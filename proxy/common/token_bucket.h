#pragma once
// Local rate limiting (issue "rate limit"): a token bucket and a bounded per-key table of them.
// Pure: no I/O, no timers; time comes from the caller or an injected TimeSource.

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/common/hash.h"
#include "proxy/common/spin_lock.h"
#include "proxy/common/time_source.h"

namespace levee::common {

// A token bucket of `burst` tokens refilled continuously at `rate_per_second`. It starts full
// and never holds more than `burst`. Not synchronized: RateLimiter locks around it.
// Tokens are kept in fixed point (1e-9 token); each refill rounds down by < 1e-9 token.
class TokenBucket {
public:
  // A duration for "never" (rate 0: the bucket does not refill).
  static constexpr std::chrono::milliseconds kNever = std::chrono::milliseconds::max();

  struct Decision {
    bool allowed{false};
    uint32_t remaining{0};                   // whole tokens left after this take
    // Computed for a refused take only (the 429's headers); 0 when allowed.
    std::chrono::milliseconds retry_after{0};  // until >= 1 token
    std::chrono::milliseconds reset{0};        // until full again
  };

  // A negative or NaN rate is treated as 0 (no refill); burst 0 as 1.
  TokenBucket(double rate_per_second, uint32_t burst);

  // Takes one token if there is one. Times are rounded up to whole milliseconds, so a client
  // that waits retry_after finds a token. A `now` earlier than a previous one (threads that read
  // the clock before taking a lock) refills nothing and is otherwise handled as that time.
  Decision take(MonotonicTime now);

private:
  void refill(MonotonicTime now);
  std::chrono::milliseconds timeUntil(int64_t units) const;

  // Not const, so RateLimiter can reuse an evicted entry by assignment.
  double rate_;              // tokens per second == units per nanosecond
  int64_t capacity_;         // burst, in units
  int64_t tokens_;           // units
  std::optional<MonotonicTime> last_;  // time of the last refill; unset until the first take
};

// Per-key token buckets in a bounded table: at most max_keys keys are tracked, and when a new
// key arrives at a full table the least recently used key is evicted. Evicting a key loses its
// history (it comes back with a full bucket), which is the accepted price for hostile key
// cardinality never exhausting memory. Callers bound key length (the keys are client IPs or
// header values already limited by the listener's header limits).
//
// Thread-safe and exact: the table is split into shards chosen by key hash, each with its own
// mutex, its own LRU list and a share of max_keys (the shares sum to max_keys). All takes on
// one key serialize on that key's shard, so no token is ever handed out twice. LRU order is
// exact within a shard; small tables (< 2 * kKeysPerShard keys) have a single shard, i.e. an
// exact global LRU.
class RateLimiter {
public:
  using Decision = TokenBucket::Decision;

  static constexpr size_t kKeysPerShard = 4096;
  static constexpr size_t kMaxShards = 16;

  // max_keys 0 is treated as 1. `time` must outlive the limiter.
  RateLimiter(double rate, uint32_t burst, size_t max_keys, const TimeSource& time);

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  Decision take(std::string_view key);
  // Keys currently tracked (<= max_keys).
  size_t size() const;

private:
  struct Entry {
    std::string key;
    size_t hash;
    TokenBucket bucket;
  };
  // A key with its hash, computed once per take() for both the shard and the shard's table.
  // Keys may come from clients (a header, X-Forwarded-For): the hash has a random seed per
  // limiter, so nobody outside can aim keys at one bucket chain.
  struct HashedKey {
    std::string_view view;
    size_t hash;
    bool operator==(const HashedKey& o) const { return hash == o.hash && view == o.view; }
  };
  struct HashedKeyHash {
    size_t operator()(const HashedKey& k) const { return k.hash; }
  };
  struct Shard {
    SpinLock mu;
    size_t capacity{0};
    std::list<Entry> lru;  // most recently used first
    // Views into the keys owned by `lru` nodes (list nodes never move).
    std::unordered_map<HashedKey, std::list<Entry>::iterator, HashedKeyHash> index;
  };

  Shard& shardFor(size_t hash);

  const double rate_;
  const uint32_t burst_;
  const TimeSource& time_;
  const uint64_t seed_;  // random per limiter
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Parses "<number>/<unit>" with unit s, m or h ("100/s", "6000/m", "10/h", "0.5/s") into
// tokens per second. The number is decimal digits with an optional fraction; it must be > 0.
// Anything else (signs, exponents, spaces, other units, a zero rate) gives nullopt.
std::optional<double> parseRate(std::string_view text);

}  // namespace levee::common
