#include "proxy/upstream/hash_lb.h"

#include <algorithm>
#include <charconv>

namespace levee::upstream {
namespace {

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a 64, continued from `state` so a common prefix ("key#") is hashed once per host.
uint64_t fnv1a(uint64_t state, std::string_view bytes) {
  for (char c : bytes) {
    state ^= static_cast<unsigned char>(c);
    state *= kFnvPrime;
  }
  return state;
}

// MurmurHash3's 64-bit finalizer. FNV-1a alone avalanches poorly for inputs that differ only in
// the last byte ("k#1", "k#2"), which would cluster virtual nodes; fmix64 spreads them.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

struct Point {
  uint64_t hash;
  uint32_t host;
};

}  // namespace

uint64_t hashKey(std::string_view key) { return fmix64(fnv1a(kFnvOffsetBasis, key)); }

void HashRing::build(const std::vector<HashRingHost>& hosts) {
  point_hashes_.clear();
  point_hosts_.clear();

  uint64_t total_weight = 0;
  for (const HashRingHost& host : hosts) {
    total_weight += host.weight;
  }
  if (total_weight == 0) {
    return;
  }
  uint64_t per_weight = std::max<uint64_t>(options_.points_per_weight, 1);
  if (per_weight * total_weight > options_.max_points) {
    per_weight = std::max<uint64_t>(options_.max_points / total_weight, 1);
  }

  std::vector<Point> points;
  points.reserve(per_weight * total_weight);
  for (size_t i = 0; i < hosts.size(); ++i) {
    const uint64_t prefix = fnv1a(fnv1a(kFnvOffsetBasis, hosts[i].key), "#");
    const uint64_t count = per_weight * hosts[i].weight;
    for (uint64_t j = 0; j < count; ++j) {
      char digits[20];
      auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), j);
      (void)ec;  // 20 chars hold any uint64_t
      const std::string_view suffix(digits, static_cast<size_t>(end - digits));
      points.push_back(Point{fmix64(fnv1a(prefix, suffix)), static_cast<uint32_t>(i)});
    }
  }
  // Ties (a 64-bit collision) are broken by key, not by index, so the owner of a contested point
  // does not change when an unrelated host before it in `hosts` is removed.
  std::sort(points.begin(), points.end(), [&hosts](const Point& a, const Point& b) {
    if (a.hash != b.hash) {
      return a.hash < b.hash;
    }
    if (hosts[a.host].key != hosts[b.host].key) {
      return hosts[a.host].key < hosts[b.host].key;
    }
    return a.host < b.host;
  });

  point_hashes_.reserve(points.size());
  point_hosts_.reserve(points.size());
  for (const Point& p : points) {
    point_hashes_.push_back(p.hash);
    point_hosts_.push_back(p.host);
  }
}

size_t HashRing::firstPointAtOrAfter(uint64_t hash) const {
  auto it = std::lower_bound(point_hashes_.begin(), point_hashes_.end(), hash);
  if (it == point_hashes_.end()) {
    return 0;  // wrap around the ring
  }
  return static_cast<size_t>(it - point_hashes_.begin());
}

int HashRing::pick(uint64_t hash) const {
  if (point_hashes_.empty()) {
    return -1;
  }
  return static_cast<int>(point_hosts_[firstPointAtOrAfter(hash)]);
}

int HashRing::pickExcluding(uint64_t hash, const std::vector<bool>& excluded) const {
  if (point_hashes_.empty()) {
    return -1;
  }
  const size_t n = point_hashes_.size();
  size_t pos = firstPointAtOrAfter(hash);
  // Walking clockwise past excluded points is exactly what pick() would do on a ring without
  // them, which is why only the excluded hosts' keys move.
  for (size_t step = 0; step < n; ++step) {
    const uint32_t host = point_hosts_[pos];
    if (host >= excluded.size() || !excluded[host]) {
      return static_cast<int>(host);
    }
    pos = pos + 1 == n ? 0 : pos + 1;
  }
  return -1;
}

}  // namespace levee::upstream
