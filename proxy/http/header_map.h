#pragma once
// Header storage for one message: every name and value lives in one reusable arena string,
// so parsing a request allocates nothing once the connection's buffers have grown.
// Names keep their case for forwarding; lookups are case-insensitive.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace levee::http {

bool equalsIgnoreCase(std::string_view a, std::string_view b);

class HeaderMap {
public:
  struct Entry {
    uint32_t name_off, name_len, value_off, value_len;
  };

  void clear() {
    arena_.clear();
    entries_.clear();
  }
  void add(std::string_view name, std::string_view value);
  // Appends to the value of the last header (llhttp may split a value across reads).
  void appendToLastValue(std::string_view more);
  void appendToLastName(std::string_view more);
  void beginHeader();  // starts an empty entry (name/value appended by the parser)
  size_t size() const { return entries_.size(); }
  std::string_view name(size_t i) const { return {arena_.data() + entries_[i].name_off, entries_[i].name_len}; }
  std::string_view value(size_t i) const { return {arena_.data() + entries_[i].value_off, entries_[i].value_len}; }
  // First value of `name` (lower-case expected), or empty view + false.
  const Entry* find(std::string_view name) const;
  std::string_view get(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }
  size_t bytes() const { return arena_.size(); }

private:
  std::string arena_;
  std::vector<Entry> entries_;
  bool value_started_{false};
};

struct RequestHead {
  std::string method;
  std::string target;  // request-target as received (origin-form path?query)
  uint8_t version_minor{1};
  HeaderMap headers;
  // Facts the codec derived from the head.
  bool keep_alive{true};
  bool chunked{false};
  bool has_content_length{false};
  uint64_t content_length{0};
  bool upgrade{false};
  bool expect_continue{false};
  void clear() {
    method.clear();
    target.clear();
    version_minor = 1;
    headers.clear();
    keep_alive = true;
    chunked = false;
    has_content_length = false;
    content_length = 0;
    upgrade = false;
    expect_continue = false;
  }
  std::string_view path() const;   // target without the query
  std::string_view host() const;   // Host header without port, as received
};

struct ResponseHead {
  int status{200};
  uint8_t version_minor{1};
  HeaderMap headers;
  bool keep_alive{true};
  bool chunked{false};
  bool has_content_length{false};
  uint64_t content_length{0};
  void clear() {
    status = 200;
    version_minor = 1;
    headers.clear();
    keep_alive = true;
    chunked = false;
    has_content_length = false;
    content_length = 0;
  }
};

// Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded; headers named in Connection too.
bool isHopByHop(std::string_view lower_name);
// True if `name` is listed in the Connection header value `connection`.
bool listedInConnection(std::string_view connection, std::string_view name);

std::string_view reasonPhrase(int status);

}  // namespace levee::http
