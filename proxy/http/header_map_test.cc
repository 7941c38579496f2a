#include "proxy/http/header_map.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace levee::http {
namespace {

TEST(EqualsIgnoreCaseTest, Table) {
  struct Case {
    std::string_view a, b;
    bool eq;
  };
  const Case cases[] = {
      {"", "", true},           {"host", "HOST", true},     {"Content-Type", "content-type", true},
      {"host", "hos", false},   {"host", "hosT ", false},   {"a-b", "a_b", false},
      {"@", "`", false},        {"[", "{", false},          {"Z", "z", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.eq, equalsIgnoreCase(c.a, c.b)) << c.a << " vs " << c.b;
  }
}

// Every pair of bytes, at every position of names 1 to 17 bytes long (the 8-byte steps and both
// tail shapes), against the byte-by-byte definition.
TEST(EqualsIgnoreCaseTest, EveryBytePairAtEveryPosition) {
  auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  int mismatches = 0;
  for (size_t len : {1U, 2U, 3U, 4U, 5U, 7U, 8U, 9U, 12U, 16U, 17U}) {
    for (size_t pos = 0; pos < len; ++pos) {
      std::string a(len, 'k');
      std::string b(len, 'K');
      for (int x = 0; x < 256; ++x) {
        for (int y = 0; y < 256; ++y) {
          a[pos] = static_cast<char>(x);
          b[pos] = static_cast<char>(y);
          const bool want = lower(static_cast<unsigned char>(x)) == lower(static_cast<unsigned char>(y));
          mismatches += equalsIgnoreCase(a, b) != want ? 1 : 0;
        }
      }
    }
  }
  EXPECT_EQ(0, mismatches);
}

TEST(HeaderMapTest, EmptyMap) {
  HeaderMap h;
  EXPECT_EQ(0U, h.size());
  EXPECT_EQ(nullptr, h.find("host"));
  EXPECT_EQ("", h.get("host"));
  EXPECT_FALSE(h.has("host"));
  EXPECT_EQ(0U, h.bytes());
}

TEST(HeaderMapTest, AddKeepsOrderAndCase) {
  HeaderMap h;
  h.add("Host", "example.com");
  h.add("X-Foo", "bar");
  h.add("x-empty", "");
  ASSERT_EQ(3U, h.size());
  EXPECT_EQ("Host", h.name(0));
  EXPECT_EQ("example.com", h.value(0));
  EXPECT_EQ("X-Foo", h.name(1));
  EXPECT_EQ("bar", h.value(1));
  EXPECT_EQ("x-empty", h.name(2));
  EXPECT_EQ("", h.value(2));
  EXPECT_EQ(std::string("Hostexample.comX-Foobarx-empty").size(), h.bytes());
}

TEST(HeaderMapTest, LookupIsCaseInsensitive) {
  HeaderMap h;
  h.add("Content-Type", "text/plain");
  for (std::string_view name : {"content-type", "CONTENT-TYPE", "Content-Type", "cOnTeNt-TyPe"}) {
    EXPECT_TRUE(h.has(name)) << name;
    EXPECT_EQ("text/plain", h.get(name)) << name;
    ASSERT_NE(nullptr, h.find(name));
  }
  EXPECT_FALSE(h.has("content-typ"));
  EXPECT_FALSE(h.has("content-type2"));
}

TEST(HeaderMapTest, GetReturnsFirstOfDuplicates) {
  HeaderMap h;
  h.add("X-A", "1");
  h.add("x-a", "2");
  EXPECT_EQ("1", h.get("x-a"));
  EXPECT_EQ(2U, h.size());
}

TEST(HeaderMapTest, HasDistinguishesEmptyValueFromAbsent) {
  HeaderMap h;
  h.add("X-Empty", "");
  EXPECT_TRUE(h.has("x-empty"));
  EXPECT_EQ("", h.get("x-empty"));
}

TEST(HeaderMapTest, SplitNameAndValuePiecesAsLlhttpDelivers) {
  HeaderMap h;
  // "Content-Type: text/html\r\nX-Long: abcdef\r\n" delivered in pieces.
  h.beginHeader();
  h.appendToLastName("Cont");
  h.appendToLastName("ent-Ty");
  h.appendToLastName("pe");
  h.appendToLastValue("text/");
  h.appendToLastValue("html");
  h.beginHeader();
  h.appendToLastName("X-Long");
  h.appendToLastValue("a");
  h.appendToLastValue("bc");
  h.appendToLastValue("");
  h.appendToLastValue("def");
  ASSERT_EQ(2U, h.size());
  EXPECT_EQ("Content-Type", h.name(0));
  EXPECT_EQ("text/html", h.value(0));
  EXPECT_EQ("X-Long", h.name(1));
  EXPECT_EQ("abcdef", h.value(1));
  EXPECT_EQ("text/html", h.get("content-type"));
  EXPECT_EQ("abcdef", h.get("x-long"));
}

TEST(HeaderMapTest, HeaderWithoutValueHasEmptyValue) {
  HeaderMap h;
  h.beginHeader();
  h.appendToLastName("X-None");
  h.beginHeader();
  h.appendToLastName("X-Next");
  h.appendToLastValue("v");
  EXPECT_EQ("X-None", h.name(0));
  EXPECT_EQ("", h.value(0));
  EXPECT_EQ("X-Next", h.name(1));
  EXPECT_EQ("v", h.value(1));
}

TEST(HeaderMapTest, AddAfterSplitEntriesAndViceVersa) {
  HeaderMap h;
  h.add("A", "1");
  h.beginHeader();
  h.appendToLastName("B");
  h.appendToLastValue("2");
  h.add("C", "3");
  h.beginHeader();
  h.appendToLastName("D");
  h.appendToLastValue("4");
  h.appendToLastValue("4");
  ASSERT_EQ(4U, h.size());
  EXPECT_EQ("1", h.get("a"));
  EXPECT_EQ("2", h.get("b"));
  EXPECT_EQ("3", h.get("c"));
  EXPECT_EQ("44", h.get("d"));
}

TEST(HeaderMapTest, ClearKeepsWorking) {
  HeaderMap h;
  for (int round = 0; round < 3; ++round) {
    h.beginHeader();
    h.appendToLastName("Ho");
    h.appendToLastName("st");
    h.appendToLastValue("a.example");
    h.add("X-Round", std::to_string(round));
    ASSERT_EQ(2U, h.size());
    EXPECT_EQ("a.example", h.get("host"));
    EXPECT_EQ(std::to_string(round), h.get("x-round"));
    h.clear();
    EXPECT_EQ(0U, h.size());
    EXPECT_EQ(0U, h.bytes());
    EXPECT_FALSE(h.has("host"));
  }
}

TEST(HeaderMapTest, ClearInTheMiddleOfAValue) {
  HeaderMap h;
  h.beginHeader();
  h.appendToLastName("A");
  h.appendToLastValue("partial");
  h.clear();
  h.beginHeader();
  h.appendToLastName("B");
  h.appendToLastValue("fresh");
  ASSERT_EQ(1U, h.size());
  EXPECT_EQ("B", h.name(0));
  EXPECT_EQ("fresh", h.value(0));
}

TEST(HeaderMapTest, ManyHeadersSurviveArenaGrowth) {
  HeaderMap h;
  for (int i = 0; i < 500; ++i) {
    h.add("X-H" + std::to_string(i), std::string(static_cast<size_t>(i % 37), 'v'));
  }
  ASSERT_EQ(500U, h.size());
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(std::string(static_cast<size_t>(i % 37), 'v'), h.get("x-h" + std::to_string(i)));
  }
}

RequestHead requestWith(std::string target, std::string_view host) {
  RequestHead head;
  head.method = "GET";
  head.target = std::move(target);
  if (!host.empty()) {
    head.headers.add("Host", host);
  }
  return head;
}

TEST(RequestHeadTest, PathStripsQuery) {
  struct Case {
    std::string target;
    std::string_view path;
  };
  const Case cases[] = {
      {"/", "/"},
      {"/a/b", "/a/b"},
      {"/a?x=1", "/a"},
      {"/a?x=1?y=2", "/a"},
      {"/?", "/"},
      {"?q", ""},
      {"*", "*"},
      {"", ""},
      {"/a#frag", "/a#frag"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.path, requestWith(c.target, "h").path()) << c.target;
  }
}

TEST(RequestHeadTest, HostStripsPort) {
  struct Case {
    std::string_view host_header;
    std::string_view host;
  };
  const Case cases[] = {
      {"example.com", "example.com"},
      {"example.com:8080", "example.com"},
      {"Example.COM:80", "Example.COM"},  // as received
      {"127.0.0.1:80", "127.0.0.1"},
      {"127.0.0.1", "127.0.0.1"},
      {"[::1]:80", "[::1]"},
      {"[::1]", "[::1]"},
      {"[2001:db8::1]:8443", "[2001:db8::1]"},
      {"[::1", "[::1"},  // malformed: returned as is
      {"example.com:", "example.com"},
      {"", ""},
  };
  for (const auto& c : cases) {
    RequestHead head = requestWith("/", c.host_header);
    EXPECT_EQ(c.host, head.host()) << c.host_header;
  }
}

TEST(RequestHeadTest, HostHeaderLookupIsCaseInsensitive) {
  RequestHead head;
  head.headers.add("HOST", "a.example:1");
  EXPECT_EQ("a.example", head.host());
}

TEST(RequestHeadTest, ClearResetsEverything) {
  RequestHead head = requestWith("/x?y", "h");
  head.version_minor = 0;
  head.keep_alive = false;
  head.chunked = true;
  head.has_content_length = true;
  head.content_length = 5;
  head.upgrade = true;
  head.expect_continue = true;
  head.clear();
  EXPECT_TRUE(head.method.empty());
  EXPECT_TRUE(head.target.empty());
  EXPECT_EQ(1, head.version_minor);
  EXPECT_EQ(0U, head.headers.size());
  EXPECT_TRUE(head.keep_alive);
  EXPECT_FALSE(head.chunked);
  EXPECT_FALSE(head.has_content_length);
  EXPECT_EQ(0U, head.content_length);
  EXPECT_FALSE(head.upgrade);
  EXPECT_FALSE(head.expect_continue);
}

TEST(ResponseHeadTest, ClearResetsEverything) {
  ResponseHead head;
  head.status = 404;
  head.version_minor = 0;
  head.headers.add("A", "b");
  head.keep_alive = false;
  head.chunked = true;
  head.has_content_length = true;
  head.content_length = 9;
  head.clear();
  EXPECT_EQ(200, head.status);
  EXPECT_EQ(1, head.version_minor);
  EXPECT_EQ(0U, head.headers.size());
  EXPECT_TRUE(head.keep_alive);
  EXPECT_FALSE(head.chunked);
  EXPECT_FALSE(head.has_content_length);
  EXPECT_EQ(0U, head.content_length);
}

TEST(IsHopByHopTest, Table) {
  struct Case {
    std::string_view name;
    bool hop;
  };
  const Case cases[] = {
      {"connection", true},        {"Connection", true},       {"keep-alive", true},
      {"Keep-Alive", true},        {"proxy-connection", true}, {"te", true},
      {"TE", true},                {"trailer", true},          {"transfer-encoding", true},
      {"Transfer-Encoding", true}, {"upgrade", true},          {"http2-settings", true},
      {"host", false},             {"content-length", false},  {"trailers", false},
      {"x-connection", false},     {"", false},                {"proxy-authorization", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.hop, isHopByHop(c.name)) << c.name;
  }
}

TEST(ListedInConnectionTest, Table) {
  struct Case {
    std::string_view connection;
    std::string_view name;
    bool listed;
  };
  const Case cases[] = {
      {"keep-alive, X-Foo", "x-foo", true},
      {"keep-alive, X-Foo", "keep-alive", true},
      {"keep-alive, X-Foo", "X-FOO", true},
      {"keep-alive, X-Foo", "x-fo", false},
      {"keep-alive, X-Foo", "foo", false},
      {"keep-alive,X-Foo", "x-foo", true},
      {"  x-a\t ,\t x-b  ", "x-a", true},
      {"  x-a\t ,\t x-b  ", "x-b", true},
      {"x-a,,x-b", "x-b", true},
      {"x-a,", "x-a", true},
      {"close", "close", true},
      {"close", "clos", false},
      {"", "x-foo", false},
      {"x-foobar", "x-foo", false},
      {"x-foo-bar", "x-foo", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.listed, listedInConnection(c.connection, c.name))
        << "'" << c.connection << "' / " << c.name;
  }
}

TEST(ReasonPhraseTest, Table) {
  struct Case {
    int status;
    std::string_view phrase;
  };
  const Case cases[] = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {204, "No Content"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {299, "Unknown"},
      {0, "Unknown"},
      {-1, "Unknown"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.phrase, reasonPhrase(c.status)) << c.status;
  }
}

}  // namespace
}  // namespace levee::http
