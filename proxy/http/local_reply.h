#pragma once
// The single local-reply builder (DESIGN section 2): every response levee generates itself has
// a JSON body {"error":reason,"status":N,"request_id":...}, content-type application/json and
// x-levee-reason. Retry-After is added where a later retry makes sense (503, 429).

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::http {

// Appends a complete HTTP/1.1 response (head + body) to `out`.
void buildLocalReply(std::string& out, int status, std::string_view reason,
                     std::string_view request_id, bool close_connection, bool head_request,
                     uint32_t retry_after_s = 0, std::string_view extra_headers = {});

}  // namespace levee::http
