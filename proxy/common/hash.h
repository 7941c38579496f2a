#pragma once
// Stable 64-bit hashes (identical across builds and processes, unlike std::hash): policy
// content hashes and consistent load balancing.

#include <cstdint>
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
