#pragma once
// The stale store behind the `stale` fallback (RFC 5861 in spirit): the last good response per
// request key, served when the upstream path fails. Bounded in bytes and entries (LRU), shared
// by every worker of a route (sharded mutexes held only for map operations; bodies are
// immutable shared_ptrs so a hit is served outside the lock).
//
// Key: method (HEAD reads GET's entry), lower-case host, request target (path and query). The
// request headers named by the response's Vary are part of the match: up to kMaxVariants
// variants per key, `Vary: *` is never stored.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/common/time_source.h"
#include "proxy/http/header_map.h"

namespace levee::http {

// The Cache-Control directives the store needs (RFC 9111 5.2, RFC 5861). -1: absent.
struct CacheControl {
  bool no_store{false};
  bool is_private{false};
  int64_t max_age{-1};
  int64_t s_maxage{-1};
  int64_t stale_if_error{-1};
};
// Parses every Cache-Control line of `headers` (directives are case-insensitive).
CacheControl parseCacheControl(const HeaderMap& headers);

struct CachedResponse {
  int status{200};
  std::vector<std::pair<std::string, std::string>> headers;  // end-to-end headers, as received
  std::string body;
  std::vector<std::pair<std::string, std::string>> vary;  // lower-case name -> request value
  MonotonicTime stored_at;
  uint64_t initial_age_s{0};          // the upstream's Age header
  std::chrono::seconds serve_for{0};  // served while its age is below this
  uint64_t digest{0};                 // ResponseCache::digestFor of the exchange (0: none)
  size_t bytes() const;
};
using CachedResponseSharedPtr = std::shared_ptr<CachedResponse>;
using CachedResponseConstSharedPtr = std::shared_ptr<const CachedResponse>;

struct StalePolicy {
  std::chrono::milliseconds max_stale{600000};
  uint64_t max_entry_bytes{1024 * 1024};
  bool allow_authorized{false};
};

// Starts a capture of `resp` for `req` (headers copied; the caller appends the body and calls
// ResponseCache::insert at the end), or nullptr when the exchange is not storable: not a GET,
// not 2xx (206 excluded), no-store/private, Vary: *, Authorization without allow_authorized.
// Set-Cookie is never stored (one client's cookie must not reach another).
CachedResponseSharedPtr beginCapture(const RequestHead& req, const ResponseHead& resp,
                                     const StalePolicy& policy, MonotonicTime now);

class ResponseCache {
public:
  static constexpr size_t kMaxVariants = 4;

  ResponseCache(uint64_t max_bytes, uint32_t max_entries, const TimeSource& time);
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // "GET host target" for GET and HEAD; empty for other methods (nothing to look up).
  static std::string keyFor(const RequestHead& head);
  // A 64-bit digest of keyFor(req) and the request's values of the headers `resp` names in
  // Vary: one variant. Built without allocating (the hot path calls it for every response).
  static uint64_t digestFor(const RequestHead& req, const ResponseHead& resp);

  // Stores (or replaces the variant with the same Vary values). Responses larger than a
  // shard's byte budget are dropped.
  void insert(const std::string& key, CachedResponseConstSharedPtr response);
  // True when the variant with this digest was inserted less than `within` ago: the router then
  // skips capturing the response again (a hot key is re-stored at most once per `within`).
  // Lock-free: a table of kRecentSlots slots holding a digest tag and the insert time. A slot
  // taken over by another digest answers false (one capture too many, never one too few
  // beyond `within`); an entry evicted within `within` of its insert is re-captured when the
  // window ends.
  bool storedWithin(uint64_t digest, std::chrono::milliseconds within) const;
  // The variant matching `head`'s Vary headers, while younger than its serve_for; `age_s`
  // gets its current age in seconds (Age header).
  CachedResponseConstSharedPtr lookup(const std::string& key, const RequestHead& head,
                                      uint64_t& age_s);

  size_t bytes() const;
  size_t entries() const;  // stored variants

private:
  struct Entry {
    std::string key;
    std::vector<CachedResponseConstSharedPtr> variants;
    size_t bytes{0};
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // front: most recently used
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
    size_t bytes{0};
    size_t entries{0};
  };
  Shard& shardFor(std::string_view key);
  void evict(Shard& s);
  void erase(Shard& s, std::list<Entry>::iterator it);

  static constexpr size_t kRecentSlots = 4096;
  uint32_t nowMs() const;

  const TimeSource& time_;
  const MonotonicTime epoch_;
  // Per slot: digest's high 32 bits << 32 | insert time in ms since epoch_ (mod 2^32).
  std::array<std::atomic<uint64_t>, kRecentSlots> recent_{};
  std::vector<std::unique_ptr<Shard>> shards_;
  size_t shard_max_bytes_;
  size_t shard_max_entries_;
};
using ResponseCacheSharedPtr = std::shared_ptr<ResponseCache>;

}  // namespace levee::http
