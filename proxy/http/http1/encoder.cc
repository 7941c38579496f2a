#include "proxy/http/http1/encoder.h"

#include <cstdio>

namespace levee::http::http1 {

void encodeRequestHead(std::string& out, const RequestHead& head, const ForwardedInfo& fwd) {
  out.append(head.method);
  out.push_back(' ');
  out.append(head.target);
  out.append(" HTTP/1.1\r\n");
  std::string_view connection = head.headers.get("connection");
  std::string xff_in;  // every inbound X-Forwarded-For line, joined (RFC 9110 5.3)
  bool xfp_kept = false;
  const HeaderMap& h = head.headers;
  for (size_t i = 0; i < h.size(); ++i) {
    std::string_view name = h.name(i);
    if (isHopByHop(name) || (!connection.empty() && listedInConnection(connection, name))) {
      continue;
    }
    if (equalsIgnoreCase(name, "content-length") || equalsIgnoreCase(name, "x-request-id")) {
      continue;  // re-declared below
    }
    if (equalsIgnoreCase(name, "x-forwarded-for")) {
      if (!xff_in.empty()) {
        xff_in.append(", ");
      }
      xff_in.append(h.value(i));
      continue;
    }
    if (equalsIgnoreCase(name, "x-forwarded-proto")) {
      if (!fwd.trust_forwarded) {
        continue;
      }
      xfp_kept = true;
    }
    out.append(name);
    out.append(": ");
    out.append(h.value(i));
    out.append("\r\n");
  }
  out.append("x-forwarded-for: ");
  if (!xff_in.empty()) {
    out.append(xff_in);
    out.append(", ");
  }
  out.append(fwd.peer_ip);
  out.append("\r\n");
  if (!xfp_kept) {
    out.append("x-forwarded-proto: ");
    out.append(fwd.proto);
    out.append("\r\n");
  }
  out.append("x-request-id: ");
  out.append(fwd.request_id);
  out.append("\r\n");
  if (head.upgrade) {
    out.append("connection: upgrade\r\nupgrade: ");
    out.append(head.headers.get("upgrade"));
    out.append("\r\n");
  }
  if (head.chunked) {
    out.append("transfer-encoding: chunked\r\n");
  } else if (head.has_content_length) {
    out.append("content-length: ");
    out.append(std::to_string(head.content_length));
    out.append("\r\n");
  }
  out.append("\r\n");
}

size_t chunkPrefix(char* buf, size_t len) {
  int n = std::snprintf(buf, 24, "%zx\r\n", len);
  return static_cast<size_t>(n);
}

}  // namespace levee::http::http1
