#include "proxy/http/response_cache.h"

#include <algorithm>
#include <charconv>
#include <random>

#include "proxy/common/hash.h"
#include "proxy/common/strings.h"

namespace levee::http {
namespace {

// Per stored variant: list node, index slot, the shared_ptr control block and vectors.
constexpr size_t kEntryOverhead = 160;
constexpr size_t kShardsForLargeStores = 8;

using common::trimOws;

int64_t parseSeconds(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    v = v.substr(1, v.size() - 2);
  }
  int64_t out = -1;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size() || out < 0) {
    return -1;
  }
  return out;
}

void parseDirectives(std::string_view value, CacheControl& cc) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string_view::npos) {
      end = value.size();
    }
    std::string_view d = trimOws(value.substr(pos, end - pos));
    pos = end + 1;
    if (d.empty()) {
      continue;
    }
    size_t eq = d.find('=');
    std::string_view name = trimOws(d.substr(0, eq));
    std::string_view arg = eq == std::string_view::npos ? std::string_view{} : trimOws(d.substr(eq + 1));
    if (equalsIgnoreCase(name, "no-store")) {
      cc.no_store = true;
    } else if (equalsIgnoreCase(name, "private")) {
      cc.is_private = true;
    } else if (equalsIgnoreCase(name, "max-age")) {
      cc.max_age = parseSeconds(arg);
    } else if (equalsIgnoreCase(name, "s-maxage")) {
      cc.s_maxage = parseSeconds(arg);
    } else if (equalsIgnoreCase(name, "stale-if-error")) {
      cc.stale_if_error = parseSeconds(arg);
    }
  }
}

bool isStorableHeader(std::string_view name) {
  // Framing and per-hop headers are regenerated when serving; Age is recomputed; a cookie set
  // for one client must never be replayed to another.
  return !isHopByHop(name) && !equalsIgnoreCase(name, "content-length") &&
         !equalsIgnoreCase(name, "age") && !equalsIgnoreCase(name, "set-cookie") &&
         !equalsIgnoreCase(name, "x-request-id");
}

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lowerAscii);
  return out;
}

// Calls fn for each non-empty, OWS-trimmed item of a comma-separated header value.
template <typename Fn>
void forEachListItem(std::string_view list, Fn&& fn) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = std::min(list.find(',', pos), list.size());
    std::string_view item = trimOws(list.substr(pos, end - pos));
    pos = end + 1;
    if (!item.empty()) {
      fn(item);
    }
  }
}

bool varyMatches(const CachedResponse& r, const RequestHead& head) {
  for (const auto& [name, value] : r.vary) {
    if (head.headers.get(name) != value) {
      return false;
    }
  }
  return true;
}

bool sameVary(const CachedResponse& a, const CachedResponse& b) { return a.vary == b.vary; }

}  // namespace

CacheControl parseCacheControl(const HeaderMap& headers) {
  CacheControl cc;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (equalsIgnoreCase(headers.name(i), "cache-control")) {
      parseDirectives(headers.value(i), cc);
    }
  }
  return cc;
}

size_t CachedResponse::bytes() const {
  size_t n = kEntryOverhead + body.size();
  for (const auto& [k, v] : headers) {
    n += k.size() + v.size() + 2 * sizeof(std::string);
  }
  for (const auto& [k, v] : vary) {
    n += k.size() + v.size() + 2 * sizeof(std::string);
  }
  return n;
}

CachedResponseSharedPtr beginCapture(const RequestHead& req, const ResponseHead& resp,
                                     const StalePolicy& policy, MonotonicTime now) {
  if (req.method != "GET" || resp.status < 200 || resp.status > 299 || resp.status == 206) {
    return nullptr;
  }
  if (!policy.allow_authorized && req.headers.has("authorization")) {
    return nullptr;
  }
  if (resp.has_content_length && resp.content_length > policy.max_entry_bytes) {
    return nullptr;
  }
  const CacheControl cc = parseCacheControl(resp.headers);
  if (cc.no_store || cc.is_private) {
    return nullptr;
  }
  auto r = std::make_shared<CachedResponse>();
  r->status = resp.status;
  r->stored_at = now;
  const HeaderMap& h = resp.headers;
  std::string_view connection = h.get("connection");
  for (size_t i = 0; i < h.size(); ++i) {
    std::string_view name = h.name(i);
    if (equalsIgnoreCase(name, "vary")) {
      bool star = false;
      forEachListItem(h.value(i), [&](std::string_view v) {
        if (v == "*") {
          star = true;
          return;
        }
        std::string lname = lowerCopy(v);
        std::string value(req.headers.get(lname));
        r->vary.emplace_back(std::move(lname), std::move(value));
      });
      if (star) {
        return nullptr;  // varies on something we cannot see
      }
    }
    if (equalsIgnoreCase(name, "age")) {
      int64_t age = parseSeconds(trimOws(h.value(i)));
      r->initial_age_s = age > 0 ? static_cast<uint64_t>(age) : 0;
    }
    if (!isStorableHeader(name) || (!connection.empty() && listedInConnection(connection, name))) {
      continue;
    }
    r->headers.emplace_back(std::string(name), std::string(h.value(i)));
  }
  // RFC 5861 stale-if-error: servable for the freshness lifetime plus that many seconds, never
  // beyond the route's max_stale.
  auto max_stale = std::chrono::duration_cast<std::chrono::seconds>(policy.max_stale);
  if (cc.stale_if_error >= 0) {
    int64_t lifetime = cc.s_maxage >= 0 ? cc.s_maxage : std::max<int64_t>(cc.max_age, 0);
    r->serve_for = std::min(max_stale, std::chrono::seconds(lifetime + cc.stale_if_error));
  } else {
    r->serve_for = max_stale;
  }
  return r;
}

ResponseCache::ResponseCache(uint64_t max_bytes, uint32_t max_entries, const TimeSource& time)
    : time_(time), epoch_(time.monotonicTime()) {
  // Small stores keep one shard so their bounds are exact; large ones spread the lock.
  size_t n = max_entries >= 1024 ? kShardsForLargeStores : 1;
  for (size_t i = 0; i < n; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  shard_max_bytes_ = static_cast<size_t>(std::max<uint64_t>(1, max_bytes / n));
  shard_max_entries_ = std::max<size_t>(1, max_entries / n);
}

std::string ResponseCache::keyFor(const RequestHead& head) {
  if (head.method != "GET" && head.method != "HEAD") {
    return {};
  }
  std::string key;
  std::string_view host = head.headers.get("host");
  key.reserve(5 + host.size() + head.target.size());
  key.append("GET ");
  for (char c : host) {
    key.push_back(lowerAscii(c));
  }
  key.push_back(' ');
  key.append(head.target);
  return key;
}

uint64_t ResponseCache::digestFor(const RequestHead& req, const ResponseHead& resp) {
  // The host is hashed as sent (keyFor lower-cases it): a host spelled in two cases is two
  // digests, which costs at most one extra capture per refresh interval, never a wrong answer.
  // The seed is random per process: nobody outside can aim collisions at a key's slot.
  static const uint64_t seed = std::random_device{}() * 0x9e3779b97f4a7c15ULL + std::random_device{}();
  auto hash = [](std::string_view v) { return fastHash64(v, seed); };
  uint64_t digest = hash(req.target) ^ (hash(req.headers.get("host")) * 31);
  const HeaderMap& h = resp.headers;
  for (size_t i = 0; i < h.size(); ++i) {
    if (h.name(i).size() != 4 || !equalsIgnoreCase(h.name(i), "vary")) {
      continue;
    }
    // The same names, in the same order, as beginCapture records in CachedResponse::vary.
    forEachListItem(h.value(i), [&](std::string_view name) {
      const std::string lname = lowerCopy(name);
      digest = hashCombine(digest, hashCombine(hash(lname), hash(req.headers.get(lname))));
    });
  }
  return digest;
}

uint32_t ResponseCache::nowMs() const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time_.monotonicTime() - epoch_);
  return static_cast<uint32_t>(ms.count());
}

ResponseCache::Shard& ResponseCache::shardFor(std::string_view key) {
  return *shards_[shards_.size() == 1 ? 0 : fnv1a64(key) % shards_.size()];
}

void ResponseCache::erase(Shard& s, std::list<Entry>::iterator it) {
  s.bytes -= it->bytes;
  s.entries -= it->variants.size();
  s.index.erase(it->key);
  s.lru.erase(it);
}

void ResponseCache::evict(Shard& s) {
  while (!s.lru.empty() && (s.bytes > shard_max_bytes_ || s.entries > shard_max_entries_)) {
    erase(s, std::prev(s.lru.end()));
  }
}

void ResponseCache::insert(const std::string& key, CachedResponseConstSharedPtr response) {
  const size_t size = response->bytes() + key.size();
  if (size > shard_max_bytes_) {
    return;
  }
  if (response->digest != 0) {
    const uint64_t slot = (response->digest & 0xffffffff00000000ULL) | nowMs();
    recent_[response->digest % kRecentSlots].store(slot, std::memory_order_relaxed);
  }
  Shard& s = shardFor(key);
  CachedResponseConstSharedPtr replaced;  // freed after the lock is released
  std::lock_guard<std::mutex> lock(s.mu);
  auto found = s.index.find(key);
  if (found == s.index.end()) {
    s.lru.emplace_front();
    Entry& e = s.lru.front();
    e.key = key;
    e.variants.push_back(std::move(response));
    e.bytes = size;
    s.index.emplace(e.key, s.lru.begin());
    s.bytes += size;
    s.entries += 1;
  } else {
    auto it = found->second;
    s.lru.splice(s.lru.begin(), s.lru, it);
    Entry& e = *it;
    auto same = std::find_if(e.variants.begin(), e.variants.end(),
                             [&](const CachedResponseConstSharedPtr& v) { return sameVary(*v, *response); });
    if (same == e.variants.end() && e.variants.size() >= kMaxVariants) {
      same = e.variants.begin();  // the oldest variant makes room
    }
    if (same != e.variants.end()) {
      const size_t old = (*same)->bytes() + key.size();
      e.bytes -= old;
      s.bytes -= old;
      replaced = std::move(*same);
      e.variants.erase(same);
      s.entries -= 1;
    }
    e.variants.push_back(std::move(response));
    e.bytes += size;
    s.bytes += size;
    s.entries += 1;
  }
  evict(s);
}

bool ResponseCache::storedWithin(uint64_t digest, std::chrono::milliseconds within) const {
  const uint64_t slot = recent_[digest % kRecentSlots].load(std::memory_order_relaxed);
  if ((slot >> 32) != (digest >> 32)) {
    return false;
  }
  // Unsigned difference: correct across the 2^32 ms wrap of the stored time.
  const uint32_t age_ms = nowMs() - static_cast<uint32_t>(slot);
  return age_ms < static_cast<uint64_t>(within.count());
}

CachedResponseConstSharedPtr ResponseCache::lookup(const std::string& key, const RequestHead& head,
                                                   uint64_t& age_s) {
  Shard& s = shardFor(key);
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard<std::mutex> lock(s.mu);
  auto found = s.index.find(key);
  if (found == s.index.end()) {
    return nullptr;
  }
  auto it = found->second;
  for (const CachedResponseConstSharedPtr& v : it->variants) {
    if (!varyMatches(*v, head)) {
      continue;
    }
    auto local = std::chrono::duration_cast<std::chrono::seconds>(now - v->stored_at);
    const uint64_t age = static_cast<uint64_t>(std::max<int64_t>(0, local.count())) + v->initial_age_s;
    if (age >= static_cast<uint64_t>(v->serve_for.count())) {
      return nullptr;  // too old to serve (kept until replaced or evicted)
    }
    s.lru.splice(s.lru.begin(), s.lru, it);
    age_s = age;
    return v;
  }
  return nullptr;
}

size_t ResponseCache::bytes() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s->mu);
    n += s->bytes;
  }
  return n;
}

size_t ResponseCache::entries() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s->mu);
    n += s->entries;
  }
  return n;
}

}  // namespace levee::http
