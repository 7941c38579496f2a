#include "proxy/http/local_reply.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace levee::http {
namespace {

std::string reply(int status, std::string_view reason, std::string_view request_id, bool close, bool head) {
  std::string out;
  buildLocalReply(out, status, reason, request_id, close, head);
  return out;
}

// Parses one flat JSON object of string and integer members (enough for a local-reply body).
std::optional<std::map<std::string, std::string>> parseFlatJson(std::string_view s) {
  std::map<std::string, std::string> obj;
  size_t pos = 0;
  auto peek = [&] { return pos < s.size() ? s[pos] : '\0'; };
  auto consume = [&](char c) {
    if (peek() != c) {
      return false;
    }
    ++pos;
    return true;
  };
  auto parseString = [&]() -> std::optional<std::string> {
    if (!consume('"')) {
      return std::nullopt;
    }
    std::string out;
    while (pos < s.size() && s[pos] != '"') {
      char c = s[pos++];
      if (static_cast<unsigned char>(c) < 0x20) {
        return std::nullopt;
      }
      if (c == '\\') {
        if (pos >= s.size()) {
          return std::nullopt;
        }
        char e = s[pos++];
        switch (e) {
          case '"': out.push_back('"'); break;
          case '\\': out.push_back('\\'); break;
          case '/': out.push_back('/'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            if (pos + 4 > s.size()) {
              return std::nullopt;
            }
            out.push_back(static_cast<char>(std::stoi(std::string(s.substr(pos, 4)), nullptr, 16)));
            pos += 4;
            break;
          }
          default: return std::nullopt;
        }
      } else {
        out.push_back(c);
      }
    }
    if (!consume('"')) {
      return std::nullopt;
    }
    return out;
  };
  if (!consume('{')) {
    return std::nullopt;
  }
  if (!consume('}')) {
    do {
      auto key = parseString();
      if (!key || !consume(':')) {
        return std::nullopt;
      }
      std::string value;
      if (peek() == '"') {
        auto v = parseString();
        if (!v) {
          return std::nullopt;
        }
        value = *v;
      } else {
        size_t start = pos;
        while (pos < s.size() && ((s[pos] >= '0' && s[pos] <= '9') || s[pos] == '-')) {
          ++pos;
        }
        if (start == pos) {
          return std::nullopt;
        }
        value = std::string(s.substr(start, pos - start));
      }
      if (!obj.emplace(*key, value).second) {
        return std::nullopt;
      }
    } while (consume(','));
    if (!consume('}')) {
      return std::nullopt;
    }
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  return obj;
}

struct Split {
  std::string head;  // up to and including the blank line
  std::string body;
};

Split split(const std::string& r) {
  size_t end = r.find("\r\n\r\n");
  EXPECT_NE(std::string::npos, end);
  return {r.substr(0, end + 4), r.substr(end + 4)};
}

TEST(LocalReplyTest, NotFoundExactBytes) {
  const std::string body = R"({"error":"no_route","status":404,"request_id":"abc-123"})" "\n";
  EXPECT_EQ(
      "HTTP/1.1 404 Not Found\r\n"
      "content-type: application/json\r\n"
      "content-length: " + std::to_string(body.size()) + "\r\n"
      "x-levee-reason: no_route\r\n"
      "x-request-id: abc-123\r\n"
      "\r\n" + body,
      reply(404, "no_route", "abc-123", false, false));
}

TEST(LocalReplyTest, ServiceUnavailableHasRetryAfter) {
  const std::string body = R"({"error":"no_healthy_upstream","status":503,"request_id":"r1"})" "\n";
  EXPECT_EQ(
      "HTTP/1.1 503 Service Unavailable\r\n"
      "content-type: application/json\r\n"
      "content-length: " + std::to_string(body.size()) + "\r\n"
      "x-levee-reason: no_healthy_upstream\r\n"
      "x-request-id: r1\r\n"
      "retry-after: 1\r\n"
      "\r\n" + body,
      reply(503, "no_healthy_upstream", "r1", false, false));
}

TEST(LocalReplyTest, CloseAddsConnectionClose) {
  const std::string body = R"({"error":"bad_request","status":400,"request_id":""})" "\n";
  EXPECT_EQ(
      "HTTP/1.1 400 Bad Request\r\n"
      "content-type: application/json\r\n"
      "content-length: " + std::to_string(body.size()) + "\r\n"
      "x-levee-reason: bad_request\r\n"
      "connection: close\r\n"
      "\r\n" + body,
      reply(400, "bad_request", "", true, false));
}

TEST(LocalReplyTest, ServiceUnavailableWithClose) {
  Split s = split(reply(503, "overloaded", "id", true, false));
  EXPECT_NE(std::string::npos, s.head.find("\r\nretry-after: 1\r\n"));
  EXPECT_NE(std::string::npos, s.head.find("\r\nconnection: close\r\n"));
}

TEST(LocalReplyTest, HeadRequestHasNoBodyButTheSameContentLength) {
  const std::string get = reply(404, "no_route", "abc-123", false, false);
  const std::string head = reply(404, "no_route", "abc-123", false, true);
  Split g = split(get);
  Split h = split(head);
  EXPECT_EQ(g.head, h.head);
  EXPECT_EQ("", h.body);
  EXPECT_EQ(head, g.head);
  EXPECT_NE(std::string::npos, h.head.find("content-length: " + std::to_string(g.body.size()) + "\r\n"));
}

TEST(LocalReplyTest, NoRequestIdHeaderWhenEmpty) {
  Split s = split(reply(404, "no_route", "", false, false));
  EXPECT_EQ(std::string::npos, s.head.find("x-request-id"));
  auto obj = parseFlatJson(std::string_view(s.body).substr(0, s.body.size() - 1));
  ASSERT_TRUE(obj.has_value()) << s.body;
  EXPECT_EQ("", (*obj)["request_id"]);
}

TEST(LocalReplyTest, AppendsToExistingOutput) {
  std::string out = "HTTP/1.1 100 Continue\r\n\r\n";
  buildLocalReply(out, 404, "no_route", "x", false, false);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n"));
}

TEST(LocalReplyTest, BodyParsesBackAndContentLengthMatches) {
  struct Case {
    int status;
    std::string_view reason;
    std::string_view request_id;
  };
  const Case cases[] = {
      {400, "bad_request", "id-1"},
      {404, "no_route", ""},
      {408, "header_timeout", "x"},
      {413, "body_too_large", "y"},
      {431, "header_too_large", "z"},
      {502, "upstream_protocol_error", "0f8fad5b-d9cb-469f-a165-70867728950e"},
      {503, "no_healthy_upstream", "r"},
      {504, "upstream_timeout", "t"},
      // A request id as received may carry JSON metacharacters: the body stays valid JSON.
      {400, "bad_request", R"(a"b\c)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.status) + " " + std::string(c.reason));
    Split s = split(reply(c.status, c.reason, c.request_id, false, false));
    EXPECT_TRUE(s.head.starts_with("HTTP/1.1 " + std::to_string(c.status) + " "));
    EXPECT_NE(std::string::npos, s.head.find("content-length: " + std::to_string(s.body.size()) + "\r\n"));
    EXPECT_NE(std::string::npos, s.head.find("x-levee-reason: " + std::string(c.reason) + "\r\n"));
    ASSERT_TRUE(s.body.ends_with("\n"));
    auto obj = parseFlatJson(std::string_view(s.body).substr(0, s.body.size() - 1));
    ASSERT_TRUE(obj.has_value()) << s.body;
    EXPECT_EQ(3U, obj->size());
    EXPECT_EQ(c.reason, (*obj)["error"]);
    EXPECT_EQ(std::to_string(c.status), (*obj)["status"]);
    EXPECT_EQ(c.request_id, (*obj)["request_id"]);
  }
}

TEST(LocalReplyTest, RetryAfterOnlyWhereARetryMakesSense) {
  for (int status : {400, 404, 408, 413, 431, 500, 502, 504}) {
    Split s = split(reply(status, "r", "", false, false));
    EXPECT_EQ(std::string::npos, s.head.find("retry-after")) << status;
  }
}

// Regression test for a fixed bug: local_reply.h promises "Retry-After is added where a later retry makes sense (503, 429)",
// but buildLocalReply adds it for 503 only; a 429 (rate limited) reply has no retry-after.
TEST(LocalReplyTest, TooManyRequestsHasRetryAfter) {
  Split s = split(reply(429, "rate_limited", "id", false, false));
  EXPECT_TRUE(s.head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
  EXPECT_NE(std::string::npos, s.head.find("\r\nretry-after: "));
}

}  // namespace
}  // namespace levee::http
