#pragma once
// Consistent hashing over upstream hosts (ring hash with virtual nodes; pure, no I/O).
//
// Each host gets `points_per_weight * weight` points on a 64-bit ring. Point j of a host with key
// K sits at hashKey(K + "#" + decimal(j)). A request hash h goes to the owner of the first point
// clockwise from h (the first point >= h, wrapping to the smallest point).
//
// Guarantees (while the ring is below `max_points`, see HashRingOptions):
//  - Stable on removal: a host's points depend only on its own key and weight, never on the other
//    hosts, so removing host X deletes exactly X's points. Only keys that mapped to X move; every
//    other key keeps its host. Adding a host moves only the keys it now owns (about 1/n of them).
//  - Weights: a host's share of the ring is proportional to its weight (within a few percent at
//    100 points per weight unit).
//  - Deterministic across processes, builds and platforms: hashKey() is FNV-1a 64 followed by the
//    MurmurHash3 fmix64 finalizer, both implemented here (never std::hash). Ties between equal point
//    hashes are broken by host key, so the ring does not depend on the order of `hosts` either.
//
// Cost: build is O(P log P) for P points (control plane); pick is O(log P), allocation free.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace levee::upstream {

// Stable 64-bit hash used for ring points and request keys: fmix64(fnv1a64(bytes)).
// Callers hash their request key (header, cookie, source address) with this same function.
uint64_t hashKey(std::string_view key);

struct HashRingHost {
  std::string key;     // stable identity, e.g. "10.0.0.1:8080"; must be unique within a ring
  uint32_t weight{1};  // 0 = the host gets no points and is never picked
};

struct HashRingOptions {
  // Virtual nodes per unit of weight. More points give a more even spread and a bigger ring.
  uint32_t points_per_weight{100};
  // Upper bound on ring points (12 bytes each; 1M points = 12 MiB). When
  // points_per_weight * sum(weights) exceeds it, every host gets floor(max_points / sum(weights))
  // points per weight unit instead (at least 1). Because point j of a host is the same at every
  // scale, a change of scale moves only the keys of the points added or dropped, but the strict
  // "only the leaving host's keys move" guarantee holds only below this bound.
  size_t max_points{size_t{1} << 20};
};

class HashRing {
public:
  HashRing() = default;
  explicit HashRing(HashRingOptions options) : options_(options) {}

  // Replaces the ring. Indices returned by pick() refer to positions in `hosts`.
  void build(const std::vector<HashRingHost>& hosts);

  // Returns the index of the host owning `hash`, or -1 when the ring is empty (no hosts, or all
  // weights 0).
  int pick(uint64_t hash) const;

  // Like pick(), but walks clockwise past points of hosts with excluded[i] == true (unhealthy or
  // ejected). The result equals pick() on a ring built without the excluded hosts, so only the keys
  // of excluded hosts move. Indices beyond excluded.size() count as not excluded. Returns -1 when
  // every host on the ring is excluded. O(log P + points skipped).
  int pickExcluding(uint64_t hash, const std::vector<bool>& excluded) const;

  // Number of points on the ring.
  size_t size() const { return point_hashes_.size(); }
  bool empty() const { return point_hashes_.empty(); }

private:
  size_t firstPointAtOrAfter(uint64_t hash) const;

  HashRingOptions options_;
  // Structure of arrays: the binary search touches only the hashes.
  std::vector<uint64_t> point_hashes_;  // sorted ascending
  std::vector<uint32_t> point_hosts_;   // point_hosts_[i] owns point_hashes_[i]
};

}  // namespace levee::upstream
