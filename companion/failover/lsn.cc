#include "companion/failover/lsn.h"

#include <charconv>
#include <cstdio>

namespace levee::companion::failover {
namespace {

std::optional<uint32_t> parseHex32(std::string_view s) {
  if (s.empty() || s.size() > 8) {
    return std::nullopt;
  }
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::optional<uint64_t> parseLsn(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  auto hi = parseHex32(text.substr(0, slash));
  auto lo = parseHex32(text.substr(slash + 1));
  if (!hi || !lo) {
    return std::nullopt;
  }
  return (static_cast<uint64_t>(*hi) << 32) | *lo;
}

std::string formatLsn(uint64_t lsn) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

}  // namespace levee::companion::failover
