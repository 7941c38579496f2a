#pragma once
// HTTP/1.1 serialization helpers shared by the downstream and upstream sides.

#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/http/header_map.h"

namespace levee::http::http1 {

// What the proxy adds when forwarding a request (RFC 7239-era de-facto headers).
struct ForwardedInfo {
  std::string_view peer_ip;      // appended to X-Forwarded-For
  std::string_view proto{"http"};
  bool trust_forwarded{false};   // keep an inbound X-Forwarded-Proto
  std::string_view request_id;   // X-Request-Id (generated or as received)
};

// Request line + headers for the upstream: hop-by-hop headers (and those named in Connection)
// dropped, X-Forwarded-*/X-Request-Id set, framing re-declared (Content-Length or chunked),
// Upgrade kept for upgrade requests. Appends to `out`.
void encodeRequestHead(std::string& out, const RequestHead& head, const ForwardedInfo& fwd);

// Chunked framing: "<hex>\r\n" prefix into `prefix_buf` (returns its length); the caller writes
// prefix, data, "\r\n".
size_t chunkPrefix(char* prefix_buf, size_t len);
inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace levee::http::http1
