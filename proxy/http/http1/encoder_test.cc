#include "proxy/http/http1/encoder.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace levee::http::http1 {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Splits an encoded head into its request line and header lines; checks the framing.
struct Encoded {
  std::string request_line;
  Headers headers;
  size_t count(std::string_view lower_name) const {
    size_t n = 0;
    for (const auto& [k, v] : headers) {
      n += equalsIgnoreCase(k, lower_name) ? 1 : 0;
    }
    return n;
  }
  std::string get(std::string_view lower_name) const {
    for (const auto& [k, v] : headers) {
      if (equalsIgnoreCase(k, lower_name)) {
        return v;
      }
    }
    return "<absent>";
  }
};

Encoded parse(const std::string& out) {
  Encoded e;
  EXPECT_TRUE(out.ends_with("\r\n\r\n")) << out;
  size_t pos = 0;
  bool first = true;
  while (pos < out.size()) {
    size_t eol = out.find("\r\n", pos);
    if (eol == std::string::npos || eol == pos) {
      break;
    }
    std::string line = out.substr(pos, eol - pos);
    if (first) {
      e.request_line = line;
      first = false;
    } else {
      size_t colon = line.find(": ");
      EXPECT_NE(std::string::npos, colon) << line;
      e.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    }
    pos = eol + 2;
  }
  return e;
}

RequestHead makeHead(std::string method, std::string target, const Headers& headers) {
  RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  for (const auto& [k, v] : headers) {
    h.headers.add(k, v);
  }
  return h;
}

ForwardedInfo fwdInfo(std::string_view peer = "10.0.0.9", std::string_view id = "req-1") {
  ForwardedInfo f;
  f.peer_ip = peer;
  f.request_id = id;
  return f;
}

TEST(EncodeRequestHeadTest, RequestLineIsAlwaysHttp11) {
  RequestHead h = makeHead("GET", "/a/b?x=1", {{"Host", "example.com"}});
  h.version_minor = 0;
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ("GET /a/b?x=1 HTTP/1.1", e.request_line);
  EXPECT_EQ("example.com", e.get("host"));
}

TEST(EncodeRequestHeadTest, ExactBytesForSimpleGet) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}, {"Accept", "*/*"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo("1.2.3.4", "id-7"));
  EXPECT_EQ(
      "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nx-forwarded-for: 1.2.3.4\r\n"
      "x-forwarded-proto: http\r\nx-request-id: id-7\r\n\r\n",
      out);
}

TEST(EncodeRequestHeadTest, AppendsToExistingOutput) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}});
  std::string out = "PREVIOUS";
  encodeRequestHead(out, h, fwdInfo());
  EXPECT_TRUE(out.starts_with("PREVIOUSGET / HTTP/1.1\r\n"));
}

TEST(EncodeRequestHeadTest, DropsHopByHopHeaders) {
  RequestHead h = makeHead("GET", "/",
                           {{"Host", "a"},
                            {"Connection", "keep-alive"},
                            {"Keep-Alive", "timeout=5"},
                            {"Proxy-Connection", "keep-alive"},
                            {"TE", "trailers"},
                            {"Trailer", "X-Checksum"},
                            {"Upgrade", "h2c"},
                            {"HTTP2-Settings", "AAMAAABkAAQAAP__"},
                            {"X-Keep", "yes"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  for (std::string_view hop : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                               "http2-settings", "transfer-encoding"}) {
    EXPECT_EQ(0U, e.count(hop)) << hop;
  }
  EXPECT_EQ("yes", e.get("x-keep"));
  EXPECT_EQ("a", e.get("host"));
}

TEST(EncodeRequestHeadTest, DropsHeadersListedInConnection) {
  RequestHead h = makeHead("GET", "/",
                           {{"Host", "a"},
                            {"Connection", "keep-alive, X-Foo,x-bar"},
                            {"X-Foo", "1"},
                            {"x-BAR", "2"},
                            {"X-Foobar", "kept"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(0U, e.count("x-foo"));
  EXPECT_EQ(0U, e.count("x-bar"));
  EXPECT_EQ("kept", e.get("x-foobar"));
}

TEST(EncodeRequestHeadTest, XForwardedForIsCreatedOrAppended) {
  struct Case {
    Headers in;
    std::string expected;
  };
  const Case cases[] = {
      {{{"Host", "a"}}, "10.0.0.9"},
      {{{"Host", "a"}, {"X-Forwarded-For", "1.1.1.1"}}, "1.1.1.1, 10.0.0.9"},
      {{{"Host", "a"}, {"x-forwarded-for", "1.1.1.1, 2.2.2.2"}}, "1.1.1.1, 2.2.2.2, 10.0.0.9"},
  };
  for (const auto& c : cases) {
    RequestHead h = makeHead("GET", "/", c.in);
    std::string out;
    encodeRequestHead(out, h, fwdInfo());
    Encoded e = parse(out);
    EXPECT_EQ(1U, e.count("x-forwarded-for"));
    EXPECT_EQ(c.expected, e.get("x-forwarded-for"));
  }
}

// Regression test for a fixed bug: with two X-Forwarded-For field lines only the last one is kept (xff_in is overwritten),
// so "a" is lost; RFC 9110 5.3 makes the two lines equivalent to "a, b".
TEST(EncodeRequestHeadTest, XForwardedForJoinsRepeatedFieldLines) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}, {"X-Forwarded-For", "a"}, {"X-Forwarded-For", "b"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo("peer"));
  Encoded e = parse(out);
  EXPECT_EQ("a, b, peer", e.get("x-forwarded-for"));
}

TEST(EncodeRequestHeadTest, XForwardedProto) {
  struct Case {
    Headers in;
    bool trust;
    std::string_view proto;
    std::string expected;
  };
  const Case cases[] = {
      {{{"Host", "a"}}, false, "http", "http"},
      {{{"Host", "a"}}, true, "http", "http"},
      {{{"Host", "a"}}, false, "https", "https"},
      // Untrusted inbound value is replaced.
      {{{"Host", "a"}, {"X-Forwarded-Proto", "https"}}, false, "http", "http"},
      // Trusted inbound value is kept.
      {{{"Host", "a"}, {"X-Forwarded-Proto", "https"}}, true, "http", "https"},
  };
  for (const auto& c : cases) {
    RequestHead h = makeHead("GET", "/", c.in);
    ForwardedInfo f = fwdInfo();
    f.trust_forwarded = c.trust;
    f.proto = c.proto;
    std::string out;
    encodeRequestHead(out, h, f);
    Encoded e = parse(out);
    EXPECT_EQ(1U, e.count("x-forwarded-proto")) << out;
    EXPECT_EQ(c.expected, e.get("x-forwarded-proto")) << out;
  }
}

TEST(EncodeRequestHeadTest, RequestIdIsSetExactlyOnce) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}, {"X-Request-Id", "inbound"}, {"x-request-id", "again"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo("1.1.1.1", "chosen"));
  Encoded e = parse(out);
  EXPECT_EQ(1U, e.count("x-request-id"));
  EXPECT_EQ("chosen", e.get("x-request-id"));
}

TEST(EncodeRequestHeadTest, ContentLengthIsRedeclaredFromTheHead) {
  RequestHead h = makeHead("POST", "/", {{"Host", "a"}, {"Content-Length", "0005"}});
  h.has_content_length = true;
  h.content_length = 5;
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(1U, e.count("content-length"));
  EXPECT_EQ("5", e.get("content-length"));
  EXPECT_EQ(0U, e.count("transfer-encoding"));
}

TEST(EncodeRequestHeadTest, ZeroContentLengthIsKept) {
  RequestHead h = makeHead("POST", "/", {{"Host", "a"}, {"Content-Length", "0"}});
  h.has_content_length = true;
  h.content_length = 0;
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  EXPECT_EQ("0", parse(out).get("content-length"));
}

TEST(EncodeRequestHeadTest, ChunkedIsRedeclared) {
  RequestHead h = makeHead("POST", "/", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}});
  h.chunked = true;
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(1U, e.count("transfer-encoding"));
  EXPECT_EQ("chunked", e.get("transfer-encoding"));
  EXPECT_EQ(0U, e.count("content-length"));
}

TEST(EncodeRequestHeadTest, NoBodyNoFraming) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(0U, e.count("content-length"));
  EXPECT_EQ(0U, e.count("transfer-encoding"));
}

TEST(EncodeRequestHeadTest, UpgradeRequestKeepsUpgrade) {
  RequestHead h = makeHead("GET", "/ws",
                           {{"Host", "a"},
                            {"Connection", "Upgrade, X-Private"},
                            {"Upgrade", "websocket"},
                            {"X-Private", "drop"},
                            {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}});
  h.upgrade = true;
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(1U, e.count("connection"));
  EXPECT_TRUE(equalsIgnoreCase("upgrade", e.get("connection")));
  EXPECT_EQ(1U, e.count("upgrade"));
  EXPECT_EQ("websocket", e.get("upgrade"));
  EXPECT_EQ(0U, e.count("x-private"));
  EXPECT_EQ("dGhlIHNhbXBsZSBub25jZQ==", e.get("sec-websocket-key"));
}

TEST(EncodeRequestHeadTest, NonUpgradeRequestDropsUpgrade) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}, {"Upgrade", "websocket"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  EXPECT_EQ(0U, e.count("upgrade"));
  EXPECT_EQ(0U, e.count("connection"));
}

TEST(EncodeRequestHeadTest, PreservesOrderAndCaseOfOtherHeaders) {
  RequestHead h = makeHead("GET", "/", {{"Host", "a"}, {"X-B", "1"}, {"x-a", "2"}, {"X-B", "3"}});
  std::string out;
  encodeRequestHead(out, h, fwdInfo());
  Encoded e = parse(out);
  ASSERT_GE(e.headers.size(), 4U);
  EXPECT_EQ((std::pair<std::string, std::string>{"Host", "a"}), e.headers[0]);
  EXPECT_EQ((std::pair<std::string, std::string>{"X-B", "1"}), e.headers[1]);
  EXPECT_EQ((std::pair<std::string, std::string>{"x-a", "2"}), e.headers[2]);
  EXPECT_EQ((std::pair<std::string, std::string>{"X-B", "3"}), e.headers[3]);
}

TEST(ChunkPrefixTest, Table) {
  struct Case {
    size_t len;
    std::string_view prefix;
  };
  const Case cases[] = {
      {0, "0\r\n"},        {1, "1\r\n"},           {10, "a\r\n"},          {15, "f\r\n"},
      {16, "10\r\n"},      {255, "ff\r\n"},        {4096, "1000\r\n"},     {65536, "10000\r\n"},
      {0xdeadbeef, "deadbeef\r\n"}, {SIZE_MAX, "ffffffffffffffff\r\n"},
  };
  for (const auto& c : cases) {
    char buf[24];
    size_t n = chunkPrefix(buf, c.len);
    EXPECT_EQ(c.prefix, std::string_view(buf, n)) << c.len;
  }
}

TEST(ChunkPrefixTest, Constants) {
  EXPECT_EQ("\r\n", kCrlf);
  EXPECT_EQ("0\r\n\r\n", kLastChunk);
}

}  // namespace
}  // namespace levee::http::http1
