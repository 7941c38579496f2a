#include "config/units.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace levee::config {
namespace {

constexpr uint64_t kMaxUint64 = std::numeric_limits<uint64_t>::max();

// "12" or "1.25": a non-negative decimal, kept exact as whole + frac / frac_scale.
struct Decimal {
  uint64_t whole{0};
  uint64_t frac{0};
  uint64_t frac_scale{1};
  size_t length{0};  // characters consumed
};

std::optional<Decimal> parseDecimal(std::string_view s) {
  Decimal d;
  size_t i = 0;
  // 15 digits before and 9 after the point keep every product below 2^64.
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0) {
    if (i >= 15) {
      return std::nullopt;
    }
    d.whole = d.whole * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) {
    return std::nullopt;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0) {
      if (++digits > 9) {
        return std::nullopt;
      }
      d.frac = d.frac * 10 + static_cast<uint64_t>(s[i] - '0');
      d.frac_scale *= 10;
      ++i;
    }
    if (digits == 0) {
      return std::nullopt;
    }
  }
  d.length = i;
  return d;
}

// whole * multiplier + frac * multiplier / frac_scale, exactly; nullopt on overflow or when the
// fraction does not come out whole (`*inexact` tells which).
std::optional<uint64_t> scale(const Decimal& d, uint64_t multiplier, bool* inexact) {
  *inexact = false;
  if (d.whole != 0 && multiplier > kMaxUint64 / d.whole) {
    return std::nullopt;
  }
  const uint64_t whole = d.whole * multiplier;
  if (d.frac != 0 && multiplier > kMaxUint64 / d.frac) {
    return std::nullopt;
  }
  const uint64_t frac_product = d.frac * multiplier;
  if (frac_product % d.frac_scale != 0) {
    *inexact = true;
    return std::nullopt;
  }
  const uint64_t frac = frac_product / d.frac_scale;
  if (whole > kMaxUint64 - frac) {
    return std::nullopt;
  }
  return whole + frac;
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

struct Unit {
  std::string_view name;
  uint64_t multiplier;
};

constexpr std::array<Unit, 4> kDurationUnits{
    {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}};

constexpr std::array<Unit, 9> kSizeUnits{{{"B", 1},
                                          {"KB", 1000ULL},
                                          {"MB", 1000ULL * 1000},
                                          {"GB", 1000ULL * 1000 * 1000},
                                          {"TB", 1000ULL * 1000 * 1000 * 1000},
                                          {"KiB", 1ULL << 10},
                                          {"MiB", 1ULL << 20},
                                          {"GiB", 1ULL << 30},
                                          {"TiB", 1ULL << 40}}};

bool parsePort(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 1 || value > 65535) {
    return false;
  }
  port = static_cast<uint16_t>(value);
  return true;
}

bool isDigitsAndDots(std::string_view s) {
  for (char c : s) {
    if (c != '.' && std::isdigit(static_cast<unsigned char>(c)) == 0) {
      return false;
    }
  }
  return true;
}

// RFC 1123 host name: dot-separated labels of letters, digits and '-', not starting or ending
// with '-', each 1..63 characters, 253 in all. A trailing dot (FQDN) is accepted.
bool isDnsName(std::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  if (name.empty() || name.size() > 253) {
    return false;
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      const size_t len = i - label_start;
      if (len == 0 || len > 63 || name[label_start] == '-' || name[i - 1] == '-') {
        return false;
      }
      label_start = i + 1;
      continue;
    }
    const char c = name[i];
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  constexpr std::string_view kExamples = " (expected e.g. \"250ms\", \"3s\", \"5m\", \"1h\")";
  if (text.empty()) {
    return makeError("empty duration" + std::string(kExamples));
  }
  if (text.front() == '-') {
    return makeError("invalid duration " + quote(text) + ": must not be negative");
  }
  const std::optional<Decimal> number = parseDecimal(text);
  if (!number) {
    return makeError("invalid duration " + quote(text) + std::string(kExamples));
  }
  const std::string_view unit = text.substr(number->length);
  if (unit.empty()) {
    const std::string n(text);
    return makeError("invalid duration " + quote(text) + ": missing unit (write \"" + n +
                     "s\" or \"" + n + "ms\")");
  }
  for (const Unit& u : kDurationUnits) {
    if (u.name != unit) {
      continue;
    }
    bool inexact = false;
    const std::optional<uint64_t> ms = scale(*number, u.multiplier, &inexact);
    if (inexact) {
      return makeError("invalid duration " + quote(text) +
                       ": must be a whole number of milliseconds");
    }
    if (!ms || *ms > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return makeError("duration " + quote(text) + " is too large");
    }
    return std::chrono::milliseconds(static_cast<int64_t>(*ms));
  }
  return makeError("invalid duration " + quote(text) + ": unknown unit " + quote(unit) +
                   " (use ms, s, m or h)");
}

Result<uint64_t> parseByteSize(std::string_view text) {
  constexpr std::string_view kExamples = " (expected bytes or e.g. \"64KiB\", \"16MB\", \"1GiB\")";
  if (text.empty()) {
    return makeError("empty size" + std::string(kExamples));
  }
  if (text.front() == '-') {
    return makeError("invalid size " + quote(text) + ": must not be negative");
  }
  const std::optional<Decimal> number = parseDecimal(text);
  if (!number) {
    return makeError("invalid size " + quote(text) + std::string(kExamples));
  }
  std::string_view unit = text.substr(number->length);
  if (unit.empty()) {
    unit = "B";
  }
  for (const Unit& u : kSizeUnits) {
    if (u.name != unit) {
      continue;
    }
    bool inexact = false;
    const std::optional<uint64_t> bytes = scale(*number, u.multiplier, &inexact);
    if (inexact) {
      return makeError("invalid size " + quote(text) + ": must be a whole number of bytes");
    }
    if (!bytes) {
      return makeError("size " + quote(text) + " is too large");
    }
    return *bytes;
  }
  return makeError("invalid size " + quote(text) + ": unknown unit " + quote(unit) +
                   " (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
}

Result<SocketAddress> parseSocketAddress(std::string_view text, bool allow_dns_name) {
  const std::string shown = quote(text);
  if (text.empty()) {
    return makeError("empty address (expected HOST:PORT, e.g. \"127.0.0.1:8080\")");
  }
  SocketAddress out;
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return makeError("invalid address " + shown + ": missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return makeError("invalid address " + shown + ": missing port (expected \"[" +
                       std::string(host) + "]:PORT\")");
    }
    port = rest.substr(1);
    in6_addr addr6{};
    const std::string host_str(host);
    if (inet_pton(AF_INET6, host_str.c_str(), &addr6) != 1) {
      return makeError("invalid address " + shown + ": \"" + host_str +
                       "\" is not an IPv6 address");
    }
    std::array<char, INET6_ADDRSTRLEN> buf{};
    if (inet_ntop(AF_INET6, &addr6, buf.data(), buf.size()) == nullptr) {
      return makeError("invalid address " + shown);
    }
    out.host = buf.data();  // canonical form, so "::0:1" and "::1" compare equal
    out.is_ip = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return makeError("invalid address " + shown + ": missing port (expected HOST:PORT)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return makeError("invalid address " + shown +
                       ": an IPv6 address needs brackets, e.g. \"[::1]:8080\"");
    }
    if (host.empty()) {
      return makeError("invalid address " + shown + ": missing host (e.g. \"0.0.0.0" +
                       std::string(text) + "\")");
    }
    const std::string host_str(host);
    in_addr addr4{};
    if (inet_pton(AF_INET, host_str.c_str(), &addr4) == 1) {
      out.host = host_str;
      out.is_ip = true;
    } else if (isDigitsAndDots(host)) {
      return makeError("invalid address " + shown + ": \"" + host_str +
                       "\" is not an IPv4 address");
    } else if (!allow_dns_name) {
      return makeError("invalid address " + shown + ": \"" + host_str +
                       "\" is not an IP address (DNS names are allowed only for upstream "
                       "endpoints; use e.g. \"127.0.0.1\" or \"0.0.0.0\")");
    } else if (!isDnsName(host)) {
      return makeError("invalid address " + shown + ": \"" + host_str +
                       "\" is neither an IP address nor a valid DNS name");
    } else {
      out.host.reserve(host.size());
      for (char c : host) {
        out.host += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      out.is_ip = false;
    }
  }
  if (!parsePort(port, out.port)) {
    return makeError("invalid address " + shown + ": port must be an integer in [1,65535], got \"" +
                     std::string(port) + "\"");
  }
  return out;
}

}  // namespace levee::config
