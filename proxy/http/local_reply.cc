#include "proxy/http/local_reply.h"

#include "proxy/common/json.h"
#include "proxy/http/header_map.h"

namespace levee::http {

void buildLocalReply(std::string& out, int status, std::string_view reason,
                     std::string_view request_id, bool close_connection, bool head_request,
                     uint32_t retry_after_s, std::string_view extra_headers) {
  std::string body;
  json::Writer w(body);
  w.beginObject().key("error").value(reason).key("status").value(status);
  w.key("request_id").value(request_id).endObject();
  body.push_back('\n');
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(reasonPhrase(status));
  out.append("\r\ncontent-type: application/json\r\ncontent-length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\nx-levee-reason: ");
  out.append(reason);
  if (!request_id.empty()) {
    out.append("\r\nx-request-id: ");
    out.append(request_id);
  }
  if (retry_after_s > 0) {
    out.append("\r\nretry-after: ");
    out.append(std::to_string(retry_after_s));
  } else if (status == 503 || status == 429) {
    out.append("\r\nretry-after: 1");
  }
  if (close_connection) {
    out.append("\r\nconnection: close");
  }
  out.append("\r\n");
  out.append(extra_headers);
  out.append("\r\n");
  if (!head_request) {
    out.append(body);
  }
}

}  // namespace levee::http
