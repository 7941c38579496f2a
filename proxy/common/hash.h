#pragma once
// Stable 64-bit hashes (identical across builds and processes, unlike std::hash): policy
// content hashes and consistent load balancing.

#include <cstdint>
#include <cstring>
#include <string_view>

namespace levee {

inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

// A fast seeded hash for in-process hints (not stable across processes when the seed is
// random): 8 bytes per step, one multiply each, a splitmix64 finish. Not for hash tables that an
// attacker can fill without a random seed.
inline uint64_t fastHash64(std::string_view s, uint64_t seed) {
  uint64_t h = seed ^ (s.size() * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  uint64_t tail = 0;
  for (; i < s.size(); ++i) {  // at most 7 bytes; a variable-length memcpy would be a call
    tail = (tail << 8) | static_cast<unsigned char>(s[i]);
  }
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 32;
  return h;
}

// Mixes two hashes (splitmix64 finalizer over the pair).
inline uint64_t hashCombine(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace levee
