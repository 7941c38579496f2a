#pragma once
// Small string helpers shared by the header parsers.

#include <string_view>

namespace levee::common {

// Strips RFC 9110 optional whitespace (spaces and horizontal tabs) from both ends.
inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace levee::common
