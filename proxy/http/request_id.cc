#include "proxy/http/request_id.h"

#include <cstdint>
#include <random>

namespace levee::http {

std::string generateRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng();
  uint64_t b = rng();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
        ++pos;
      }
      out[pos++] = kHex[(v >> (i * 4)) & 0xf];
    }
  };
  put(a, 16);
  put(b, 16);
  return out;
}

}  // namespace levee::http
