#include "proxy/http/header_map.h"

#include <cstdint>
#include <cstring>

#include "proxy/common/hash.h"

namespace levee::http {

namespace {
// ASCII lower-case of 8 bytes at once: each byte in 'A'..'Z' gets 0x20 added, every other byte
// (including bytes >= 0x80) is unchanged.
inline uint64_t lower8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t low7 = w & ~kHigh;
  const uint64_t ge_a = low7 + kOnes * (0x80 - 'A');      // high bit: byte >= 'A'
  const uint64_t gt_z = low7 + kOnes * (0x80 - 'Z' - 1);  // high bit: byte > 'Z'
  const uint64_t upper = (ge_a ^ gt_z) & ~w & kHigh;      // high bit: byte in 'A'..'Z'
  return w | (upper >> 2);
}
}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  // Most calls compare different names of one length: reject on the first byte.
  if ((static_cast<unsigned char>(a[0]) | 0x20) != (static_cast<unsigned char>(b[0]) | 0x20)) {
    return false;
  }
  // Header names are compared for every lookup and every forwarded header: 8 bytes a step.
  // The rest is compared as one word (loadShort: fixed-size loads, every byte in its lane).
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x;
    uint64_t y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (lower8(x) != lower8(y)) {
      return false;
    }
  }
  const size_t rest = a.size() - i;
  return rest == 0 || lower8(loadShort(a.data() + i, rest)) == lower8(loadShort(b.data() + i, rest));
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  Entry e;
  e.name_off = static_cast<uint32_t>(arena_.size());
  e.name_len = static_cast<uint32_t>(name.size());
  arena_.append(name);
  e.value_off = static_cast<uint32_t>(arena_.size());
  e.value_len = static_cast<uint32_t>(value.size());
  arena_.append(value);
  entries_.push_back(e);
}

void HeaderMap::beginHeader() {
  Entry e{static_cast<uint32_t>(arena_.size()), 0, static_cast<uint32_t>(arena_.size()), 0};
  entries_.push_back(e);
  value_started_ = false;
}

void HeaderMap::appendToLastName(std::string_view more) {
  Entry& e = entries_.back();
  arena_.append(more);
  e.name_len += static_cast<uint32_t>(more.size());
  e.value_off = static_cast<uint32_t>(arena_.size());
}

void HeaderMap::appendToLastValue(std::string_view more) {
  Entry& e = entries_.back();
  if (!value_started_) {
    e.value_off = static_cast<uint32_t>(arena_.size());
    value_started_ = true;
  }
  arena_.append(more);
  e.value_len += static_cast<uint32_t>(more.size());
}

const HeaderMap::Entry* HeaderMap::find(std::string_view name) const {
  for (const auto& e : entries_) {
    // Lengths first, here: most names differ in length, and the call would cost more.
    if (e.name_len == name.size() && equalsIgnoreCase(std::string_view(arena_.data() + e.name_off, e.name_len), name)) {
      return &e;
    }
  }
  return nullptr;
}

std::string_view HeaderMap::get(std::string_view name) const {
  const Entry* e = find(name);
  if (e == nullptr) {
    return {};
  }
  return {arena_.data() + e->value_off, e->value_len};
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view RequestHead::host() const {
  std::string_view h = headers.get("host");
  if (!h.empty() && h.front() == '[') {
    auto end = h.find(']');
    return end == std::string_view::npos ? h : h.substr(0, end + 1);
  }
  auto colon = h.find(':');
  return colon == std::string_view::npos ? h : h.substr(0, colon);
}

bool isHopByHop(std::string_view n) {
  // Called for every forwarded header: dispatch on the length, compare at most two names.
  switch (n.size()) {
    case 2:
      return equalsIgnoreCase(n, "te");
    case 7:
      return equalsIgnoreCase(n, "trailer") || equalsIgnoreCase(n, "upgrade");
    case 10:
      return equalsIgnoreCase(n, "connection") || equalsIgnoreCase(n, "keep-alive");
    case 14:
      return equalsIgnoreCase(n, "http2-settings");
    case 16:
      return equalsIgnoreCase(n, "proxy-connection");
    case 17:
      return equalsIgnoreCase(n, "transfer-encoding");
    default:
      return false;
  }
}

bool listedInConnection(std::string_view connection, std::string_view name) {
  size_t pos = 0;
  while (pos < connection.size()) {
    size_t comma = connection.find(',', pos);
    if (comma == std::string_view::npos) {
      comma = connection.size();
    }
    std::string_view tok = connection.substr(pos, comma - pos);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) {
      tok.remove_prefix(1);
    }
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) {
      tok.remove_suffix(1);
    }
    if (equalsIgnoreCase(tok, name)) {
      return true;
    }
    pos = comma + 1;
  }
  return false;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace levee::http
