#pragma once
// Stable 64-bit hashes (identical across builds and processes, unlike std::hash): policy
// content hashes and consistent load balancing.

#include <cstddef>
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
// The last 1..7 bytes of a string as one word, with fixed-size loads only (a variable-length
// memcpy is a library call): two overlapping 4-byte loads from 4 bytes up, else the first,
// middle and last byte. Every byte lands in its own byte lane (per-byte transforms such as ASCII
// lower-casing still apply) and, for a given n, different bytes give different words.
inline uint64_t loadShort(const char* p, size_t n) {
  if (n >= 4) {
    uint32_t a;
    uint32_t b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return (static_cast<uint64_t>(a) << 32) | b;
  }
  return (static_cast<uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
         (static_cast<uint64_t>(static_cast<unsigned char>(p[n >> 1])) << 8) |
         static_cast<unsigned char>(p[n - 1]);
}

inline uint64_t fastHash64(std::string_view s, uint64_t seed) {
  uint64_t h = seed ^ (s.size() * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  const uint64_t tail = i < s.size() ? loadShort(s.data() + i, s.size() - i) : 0;
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
