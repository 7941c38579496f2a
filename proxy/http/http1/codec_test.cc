#include "proxy/http/http1/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http1/codec_pool.h"

namespace levee::http::http1 {
namespace {

using testing::_;
using testing::AnyNumber;
using testing::AtMost;
using testing::Field;
using testing::InSequence;
using testing::Invoke;
using testing::StrictMock;

class MockServerCallbacks : public ServerCodecCallbacks {
public:
  MOCK_METHOD(void, onRequestHead, (RequestHead & head, bool end_stream), (override));
  MOCK_METHOD(void, onRequestBody, (const char* data, size_t len), (override));
  MOCK_METHOD(void, onRequestBodyEnd, (), (override));
  MOCK_METHOD(void, onCodecError, (const CodecError& error), (override));
};

class MockClientCallbacks : public ClientCodecCallbacks {
public:
  MOCK_METHOD(void, onInformational, (ResponseHead & head), (override));
  MOCK_METHOD(void, onResponseHead, (ResponseHead & head, bool end_stream), (override));
  MOCK_METHOD(void, onResponseBody, (const char* data, size_t len), (override));
  MOCK_METHOD(void, onResponseBodyEnd, (), (override));
  MOCK_METHOD(void, onCodecError, (const CodecError& error), (override));
};

// Matches a CodecError by status and reason.
testing::Matcher<const CodecError&> codecError(int status, std::string_view reason) {
  return testing::AllOf(Field(&CodecError::status, status), Field(&CodecError::reason, reason));
}

size_t dispatchStr(ServerCodec& codec, std::string_view s) { return codec.dispatch(s.data(), s.size()); }
size_t dispatchStr(ClientCodec& codec, std::string_view s) { return codec.dispatch(s.data(), s.size()); }

// Dispatches `s` in pieces cut at `cuts` (ascending offsets); returns the total consumed.
size_t dispatchSplit(ServerCodec& codec, std::string_view s, std::vector<size_t> cuts) {
  size_t total = 0;
  size_t pos = 0;
  cuts.push_back(s.size());
  for (size_t cut : cuts) {
    size_t n = codec.dispatch(s.data() + pos, cut - pos);
    total += n;
    if (n != cut - pos) {
      return total;
    }
    pos = cut;
  }
  return total;
}

class ServerCodecTest : public testing::Test {
protected:
  void expectBodyInto(std::string& body) {
    EXPECT_CALL(cb_, onRequestBody(_, _)).WillRepeatedly(Invoke([&body](const char* d, size_t n) {
      body.append(d, n);
    }));
  }
  StrictMock<MockServerCallbacks> cb_;
  CodecLimits limits_;
};

TEST_F(ServerCodecTest, SimpleGetHasNoBody) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-Foo: bar\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true)).WillOnce(Invoke([](RequestHead& h, bool) {
    EXPECT_EQ("GET", h.method);
    EXPECT_EQ("/a/b?x=1", h.target);
    EXPECT_EQ("/a/b", h.path());
    EXPECT_EQ("example.com", h.host());
    EXPECT_EQ(1, h.version_minor);
    EXPECT_TRUE(h.keep_alive);
    EXPECT_FALSE(h.chunked);
    EXPECT_FALSE(h.has_content_length);
    EXPECT_FALSE(h.upgrade);
    EXPECT_FALSE(h.expect_continue);
    EXPECT_EQ("bar", h.headers.get("x-foo"));
    EXPECT_EQ("X-Foo", h.headers.name(1));
  }));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_TRUE(codec.paused());
  EXPECT_FALSE(codec.upgraded());
  EXPECT_FALSE(codec.inMessage());
  EXPECT_FALSE(codec.inHead());
}

TEST_F(ServerCodecTest, InHeadAndInMessageTrackProgress) {
  ServerCodec codec(cb_, limits_);
  EXPECT_FALSE(codec.inHead());
  EXPECT_FALSE(codec.inMessage());
  dispatchStr(codec, "POST / HTTP/1.1\r\nHost: a\r\n");
  EXPECT_TRUE(codec.inHead());
  EXPECT_TRUE(codec.inMessage());
  std::string body;
  expectBodyInto(body);
  EXPECT_CALL(cb_, onRequestHead(_, false));
  dispatchStr(codec, "Content-Length: 2\r\n\r\nx");
  EXPECT_FALSE(codec.inHead());
  EXPECT_TRUE(codec.inMessage());
  EXPECT_CALL(cb_, onRequestBodyEnd());
  dispatchStr(codec, "y");
  EXPECT_FALSE(codec.inMessage());
  EXPECT_EQ("xy", body);
}

TEST_F(ServerCodecTest, ZeroContentLengthIsEndStream) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_TRUE(codec.head().has_content_length);
  EXPECT_EQ(0U, codec.head().content_length);
}

TEST_F(ServerCodecTest, ContentLengthBodySplitAtEveryOffset) {
  const std::string req =
      "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\nX-Long-Header: value\r\n\r\nhello world";
  for (size_t cut = 0; cut <= req.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    StrictMock<MockServerCallbacks> cb;
    ServerCodec codec(cb, limits_);
    std::string body;
    InSequence seq;
    EXPECT_CALL(cb, onRequestHead(_, false)).WillOnce(Invoke([](RequestHead& h, bool) {
      EXPECT_EQ("POST", h.method);
      EXPECT_EQ("/upload", h.target);
      EXPECT_EQ("example.com", h.headers.get("host"));
      EXPECT_EQ("value", h.headers.get("x-long-header"));
      EXPECT_EQ("X-Long-Header", h.headers.name(2));
      EXPECT_EQ(3U, h.headers.size());
      EXPECT_TRUE(h.has_content_length);
      EXPECT_EQ(11U, h.content_length);
    }));
    EXPECT_CALL(cb, onRequestBody(_, _)).Times(testing::AtLeast(1)).WillRepeatedly(
        Invoke([&body](const char* d, size_t n) { body.append(d, n); }));
    EXPECT_CALL(cb, onRequestBodyEnd());
    EXPECT_EQ(req.size(), dispatchSplit(codec, req, {cut}));
    EXPECT_EQ("hello world", body);
    EXPECT_TRUE(codec.paused());
  }
}

TEST_F(ServerCodecTest, ByteAtATime) {
  const std::string req = "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  ServerCodec codec(cb_, limits_);
  std::string body;
  EXPECT_CALL(cb_, onRequestHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onRequestBodyEnd());
  for (size_t i = 0; i < req.size(); ++i) {
    ASSERT_EQ(1U, codec.dispatch(req.data() + i, 1)) << i;
  }
  EXPECT_EQ("abc", body);
  EXPECT_EQ("h", codec.head().headers.get("host"));
}

TEST_F(ServerCodecTest, ChunkedBodySplitAtEveryOffset) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  for (size_t cut = 0; cut <= req.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    StrictMock<MockServerCallbacks> cb;
    ServerCodec codec(cb, limits_);
    std::string body;
    InSequence seq;
    EXPECT_CALL(cb, onRequestHead(_, false)).WillOnce(Invoke([](RequestHead& h, bool) {
      EXPECT_TRUE(h.chunked);
      EXPECT_FALSE(h.has_content_length);
    }));
    EXPECT_CALL(cb, onRequestBody(_, _)).Times(testing::AtLeast(1)).WillRepeatedly(
        Invoke([&body](const char* d, size_t n) { body.append(d, n); }));
    EXPECT_CALL(cb, onRequestBodyEnd());
    EXPECT_EQ(req.size(), dispatchSplit(codec, req, {cut}));
    EXPECT_EQ("hello world", body);
  }
}

TEST_F(ServerCodecTest, PipelinedRequestsPauseAfterEach) {
  ServerCodec codec(cb_, limits_);
  const std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string second = "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
  const std::string third = "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string all = first + second + third;
  std::string body;
  {
    InSequence seq;
    EXPECT_CALL(cb_, onRequestHead(Field(&RequestHead::target, "/1"), true));
    EXPECT_CALL(cb_, onRequestHead(Field(&RequestHead::target, "/2"), false));
    EXPECT_CALL(cb_, onRequestBody(_, _)).WillRepeatedly(Invoke([&body](const char* d, size_t n) {
      body.append(d, n);
    }));
    EXPECT_CALL(cb_, onRequestBodyEnd());
    EXPECT_CALL(cb_, onRequestHead(Field(&RequestHead::target, "/3"), true));
  }
  size_t n = dispatchStr(codec, all);
  EXPECT_EQ(first.size(), n);
  EXPECT_TRUE(codec.paused());
  // While paused nothing more is consumed.
  EXPECT_EQ(0U, codec.dispatch(all.data() + n, all.size() - n));
  codec.resume();
  EXPECT_FALSE(codec.paused());
  size_t n2 = codec.dispatch(all.data() + n, all.size() - n);
  EXPECT_EQ(second.size(), n2);
  EXPECT_TRUE(codec.paused());
  EXPECT_EQ("ok", body);
  codec.resume();
  n += n2;
  EXPECT_EQ(third.size(), codec.dispatch(all.data() + n, all.size() - n));
  EXPECT_EQ("/3", codec.head().target);
}

TEST_F(ServerCodecTest, ResumeWhenNotPausedIsHarmless) {
  ServerCodec codec(cb_, limits_);
  codec.resume();
  EXPECT_CALL(cb_, onRequestHead(_, true));
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
}

TEST_F(ServerCodecTest, UpgradeLeavesTunnelDataUnconsumed) {
  ServerCodec codec(cb_, limits_);
  const std::string head =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const std::string tunnel = "\x81\x05hello-tunnel";
  const std::string all = head + tunnel;
  EXPECT_CALL(cb_, onRequestHead(_, true)).WillOnce(Invoke([](RequestHead& h, bool) {
    EXPECT_TRUE(h.upgrade);
    EXPECT_EQ("websocket", h.headers.get("upgrade"));
  }));
  EXPECT_EQ(head.size(), dispatchStr(codec, all));
  EXPECT_TRUE(codec.upgraded());
  EXPECT_EQ(0U, dispatchStr(codec, tunnel));
}

TEST_F(ServerCodecTest, UpgradeHeadAloneThenNothingMore) {
  ServerCodec codec(cb_, limits_);
  const std::string head =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(head.size(), dispatchStr(codec, head));
  EXPECT_TRUE(codec.upgraded());
}

TEST_F(ServerCodecTest, UpgradeHeaderWithoutConnectionUpgradeIsNotAnUpgrade) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_FALSE(codec.upgraded());
  EXPECT_FALSE(codec.head().upgrade);
}

TEST_F(ServerCodecTest, KeepAliveTable) {
  struct Case {
    std::string request;
    bool keep_alive;
    int minor;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", false, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true, 1},
      {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.request);
    StrictMock<MockServerCallbacks> cb;
    ServerCodec codec(cb, limits_);
    EXPECT_CALL(cb, onRequestHead(_, true));
    EXPECT_EQ(c.request.size(), dispatchStr(codec, c.request));
    EXPECT_EQ(c.keep_alive, codec.head().keep_alive);
    EXPECT_EQ(c.minor, codec.head().version_minor);
  }
}

TEST_F(ServerCodecTest, ExpectContinue) {
  struct Case {
    std::string expect_header;
    bool expect_continue;
  };
  const Case cases[] = {
      {"Expect: 100-continue\r\n", true},
      {"Expect: 100-Continue\r\n", true},
      {"", false},
      {"Expect: something-else\r\n", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expect_header);
    StrictMock<MockServerCallbacks> cb;
    ServerCodec codec(cb, limits_);
    const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n" + c.expect_header + "\r\n";
    EXPECT_CALL(cb, onRequestHead(_, false));
    EXPECT_EQ(req.size(), dispatchStr(codec, req));
    EXPECT_EQ(c.expect_continue, codec.head().expect_continue);
    EXPECT_TRUE(codec.inMessage());
  }
}

TEST_F(ServerCodecTest, AsteriskTargetAccepted) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_EQ("*", codec.head().target);
}

TEST_F(ServerCodecTest, StopInHeadCallbackAbandonsTheConnection) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  EXPECT_CALL(cb_, onRequestHead(_, false)).WillOnce(Invoke([&codec](RequestHead&, bool) { codec.stop(); }));
  // No body, no error callback after stop().
  EXPECT_LT(dispatchStr(codec, req), req.size());
  EXPECT_EQ(0U, dispatchStr(codec, "more"));
}

TEST_F(ServerCodecTest, ResetMakesAPooledCodecNew) {
  ServerCodecPool pool;
  StrictMock<MockServerCallbacks> cb2;
  auto codec = pool.acquire(cb_, limits_);
  EXPECT_CALL(cb_, onRequestHead(_, true));
  dispatchStr(*codec, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(codec->paused());
  pool.release(std::move(codec));
  EXPECT_EQ(1U, pool.freeCount());

  auto again = pool.acquire(cb2, limits_);
  EXPECT_EQ(0U, pool.freeCount());
  EXPECT_FALSE(again->paused());
  EXPECT_EQ(0U, again->head().headers.size());
  const std::string req = "GET /second HTTP/1.1\r\nHost: b\r\n\r\n";
  EXPECT_CALL(cb2, onRequestHead(Field(&RequestHead::target, "/second"), true));
  EXPECT_EQ(req.size(), dispatchStr(*again, req));
}

TEST_F(ServerCodecTest, ResetAfterErrorAcceptsAgain) {
  ServerCodec codec(cb_, limits_);
  EXPECT_CALL(cb_, onCodecError(codecError(400, "bad_request")));
  dispatchStr(codec, "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(0U, dispatchStr(codec, "GET / HTTP/1.1\r\n\r\n"));
  codec.reset(cb_, limits_);
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
}

// === Rejections ===

struct RejectCase {
  std::string name;
  std::string request;
  int status;
  std::string_view reason;
  bool head_delivered{false};  // the error comes after onRequestHead (body errors)
  CodecLimits limits{};
};

void PrintTo(const RejectCase& c, std::ostream* os) { *os << c.name; }

class ServerCodecRejectTest : public testing::TestWithParam<RejectCase> {};

CodecLimits limitsWith(uint32_t header_bytes, uint32_t headers, uint64_t body) {
  CodecLimits l;
  l.max_header_bytes = header_bytes;
  l.max_headers = headers;
  l.max_body_bytes = body;
  return l;
}

TEST_P(ServerCodecRejectTest, RejectsWithStatusAndReason) {
  const RejectCase& c = GetParam();
  StrictMock<MockServerCallbacks> cb;
  ServerCodec codec(cb, c.limits);
  if (c.head_delivered) {
    EXPECT_CALL(cb, onRequestHead(_, false));
    EXPECT_CALL(cb, onRequestBody(_, _)).Times(AnyNumber());
  }
  EXPECT_CALL(cb, onCodecError(codecError(c.status, c.reason)));
  size_t n = dispatchStr(codec, c.request);
  EXPECT_LE(n, c.request.size());
  // After an error nothing more is parsed and no second error is reported.
  EXPECT_EQ(0U, dispatchStr(codec, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
}

// Same requests, delivered one byte at a time: exactly one error, same status.
TEST_P(ServerCodecRejectTest, RejectsWhenDeliveredByteByByte) {
  const RejectCase& c = GetParam();
  StrictMock<MockServerCallbacks> cb;
  ServerCodec codec(cb, c.limits);
  if (c.head_delivered) {
    EXPECT_CALL(cb, onRequestHead(_, false));
    EXPECT_CALL(cb, onRequestBody(_, _)).Times(AnyNumber());
  }
  EXPECT_CALL(cb, onCodecError(codecError(c.status, c.reason)));
  for (size_t i = 0; i < c.request.size(); ++i) {
    if (codec.dispatch(c.request.data() + i, 1) != 1) {
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServerCodecRejectTest,
    testing::Values(
        RejectCase{"ContentLengthAndTransferEncoding",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\n\r\n",
                   400, "bad_request"},
        RejectCase{"TransferEncodingThenContentLength",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                   "0\r\n\r\n",
                   400, "bad_request"},
        RejectCase{"DifferingDuplicateContentLength",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                   400, "bad_request"},
        RejectCase{"ContentLengthList", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
                   400, "bad_request"},
        RejectCase{"NegativeContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
                   "bad_request"},
        RejectCase{"InvalidChunkSize",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                   400, "bad_request", true},
        RejectCase{"ObsFold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400, "bad_request"},
        RejectCase{"ObsFoldTab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 400, "bad_request"},
        RejectCase{"BareLfEverywhere", "GET / HTTP/1.1\nHost: a\nX-A: b\n\n", 400, "bad_request"},
        RejectCase{"BareLfInHeaders", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400, "bad_request"},
        RejectCase{"SpaceInHeaderName", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400, "bad_request"},
        RejectCase{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400, "bad_request"},
        RejectCase{"BraceInHeaderName", "GET / HTTP/1.1\r\nHost: a\r\nX{A}: b\r\n\r\n", 400, "bad_request"},
        RejectCase{"QuoteInHeaderName", "GET / HTTP/1.1\r\nHost: a\r\nX\"A: b\r\n\r\n", 400, "bad_request"},
        RejectCase{"CtlInHeaderValue", std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01z\r\n\r\n"), 400,
                   "bad_request"},
        RejectCase{"NulInHeaderValue", std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0z\r\n\r\n", 37), 400,
                   "bad_request"},
        RejectCase{"DelInHeaderValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fz\r\n\r\n", 400, "bad_request"},
        RejectCase{"BareCrInHeaderValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rz\r\n\r\n", 400, "bad_request"},
        RejectCase{"GzipChunked",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400,
                   "bad_request"},
        RejectCase{"TransferEncodingGzipOnly",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"},
        RejectCase{"AbsoluteFormTarget", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400,
                   "bad_request"},
        RejectCase{"HttpVersion2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "bad_request"},
        RejectCase{"GarbageRequestLine", "HELLO\r\n\r\n", 400, "bad_request"},
        RejectCase{"HeaderBytesOverLimit",
                   "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(300, 'v') + "\r\n\r\n", 431,
                   "header_too_large", false, limitsWith(256, 100, 0)},
        RejectCase{"RequestLineOverLimit", "GET /" + std::string(300, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n", 431,
                   "header_too_large", false, limitsWith(256, 100, 0)},
        RejectCase{"ManyHeaderNamesOverLimit",
                   [] {
                     std::string r = "GET / HTTP/1.1\r\n";
                     for (int i = 0; i < 40; ++i) {
                       r += "X-Header-Name-" + std::to_string(i) + ": v\r\n";
                     }
                     return r + "\r\n";
                   }(),
                   431, "header_too_large", false, limitsWith(512, 100, 0)},
        RejectCase{"HeaderCountOverLimit",
                   "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, "header_too_large",
                   false, limitsWith(60 * 1024, 4, 0)},
        RejectCase{"ContentLengthOverMaxBody",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", 413, "body_too_large",
                   false, limitsWith(60 * 1024, 100, 10)},
        RejectCase{"ChunkedBodyOverMaxBody",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
                   413, "body_too_large", true, limitsWith(60 * 1024, 100, 10)}),
    [](const testing::TestParamInfo<RejectCase>& p) { return p.param.name; });

TEST_F(ServerCodecTest, LimitsAtTheBoundaryAreAccepted) {
  // Exactly max_headers headers and a Content-Length equal to max_body_bytes pass.
  limits_.max_headers = 3;
  limits_.max_body_bytes = 5;
  ServerCodec codec(cb_, limits_);
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nA: 1\r\nContent-Length: 5\r\n\r\nhello";
  std::string body;
  EXPECT_CALL(cb_, onRequestHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onRequestBodyEnd());
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_EQ("hello", body);
}

TEST_F(ServerCodecTest, ChunkedBodyExactlyAtMaxBodyIsAccepted) {
  limits_.max_body_bytes = 11;
  ServerCodec codec(cb_, limits_);
  const std::string req =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
  std::string body;
  EXPECT_CALL(cb_, onRequestHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onRequestBodyEnd());
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_EQ("hello world", body);
}

TEST_F(ServerCodecTest, IdenticalDuplicateHeadersOtherThanFramingAreKept) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
  EXPECT_CALL(cb_, onRequestHead(_, true));
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_EQ(3U, codec.head().headers.size());
  EXPECT_EQ("1", codec.head().headers.get("x-a"));
}

TEST_F(ServerCodecTest, ObsFoldSplitAcrossDispatchAtEveryOffset) {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n";
  for (size_t cut = 1; cut < req.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    StrictMock<MockServerCallbacks> cb;
    ServerCodec codec(cb, limits_);
    EXPECT_CALL(cb, onCodecError(codecError(400, "bad_request")));
    dispatchSplit(codec, req, {cut});
  }
}

TEST_F(ServerCodecTest, ObsFoldInSecondPipelinedRequestIsRejected) {
  ServerCodec codec(cb_, limits_);
  const std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string second = "GET /2 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n";
  const std::string all = first + second;
  EXPECT_CALL(cb_, onRequestHead(_, true));
  size_t n = dispatchStr(codec, all);
  ASSERT_EQ(first.size(), n);
  codec.resume();
  EXPECT_CALL(cb_, onCodecError(codecError(400, "bad_request")));
  dispatchStr(codec, std::string_view(all).substr(n));
}

TEST_F(ServerCodecTest, BodyStartingWithSpaceIsNotObsFold) {
  ServerCodec codec(cb_, limits_);
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n\r\n abc";
  std::string body;
  EXPECT_CALL(cb_, onRequestHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onRequestBodyEnd());
  EXPECT_EQ(req.size(), dispatchStr(codec, req));
  EXPECT_EQ("\r\n abc", body);
}

TEST_F(ServerCodecTest, ChunkedBodyOverLimitDeliversNothingPastTheLimit) {
  limits_.max_body_bytes = 4;
  ServerCodec codec(cb_, limits_);
  const std::string req =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  std::string body;
  EXPECT_CALL(cb_, onRequestHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onCodecError(codecError(413, "body_too_large")));
  EXPECT_LT(dispatchStr(codec, req), req.size());
  EXPECT_EQ("abc", body);
}

// === ClientCodec ===

class ClientCodecTest : public testing::Test {
protected:
  void expectBodyInto(std::string& body) {
    EXPECT_CALL(cb_, onResponseBody(_, _)).WillRepeatedly(Invoke([&body](const char* d, size_t n) {
      body.append(d, n);
    }));
  }
  StrictMock<MockClientCallbacks> cb_;
  ClientCodec codec_{cb_, 60 * 1024};
};

TEST_F(ClientCodecTest, ContentLengthResponse) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello";
  std::string body;
  InSequence seq;
  EXPECT_CALL(cb_, onResponseHead(_, false)).WillOnce(Invoke([](ResponseHead& h, bool) {
    EXPECT_EQ(200, h.status);
    EXPECT_EQ(1, h.version_minor);
    EXPECT_TRUE(h.keep_alive);
    EXPECT_TRUE(h.has_content_length);
    EXPECT_EQ(5U, h.content_length);
    EXPECT_EQ("1", h.headers.get("x-up"));
  }));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_EQ("hello", body);
  EXPECT_FALSE(codec_.inMessage());
}

TEST_F(ClientCodecTest, ContentLengthResponseSplitAtEveryOffset) {
  const std::string resp = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello";
  for (size_t cut = 0; cut <= resp.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    StrictMock<MockClientCallbacks> cb;
    ClientCodec codec(cb, 60 * 1024);
    std::string body;
    EXPECT_CALL(cb, onResponseHead(_, false));
    EXPECT_CALL(cb, onResponseBody(_, _)).WillRepeatedly(Invoke([&body](const char* d, size_t n) {
      body.append(d, n);
    }));
    EXPECT_CALL(cb, onResponseBodyEnd());
    codec.expectResponse(false);
    EXPECT_EQ(cut, codec.dispatch(resp.data(), cut));
    EXPECT_EQ(resp.size() - cut, codec.dispatch(resp.data() + cut, resp.size() - cut));
    EXPECT_EQ("hello", body);
    EXPECT_EQ(201, codec.head().status);
    EXPECT_EQ("1", codec.head().headers.get("x-up"));
  }
}

TEST_F(ClientCodecTest, ZeroContentLengthIsEndStream) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  EXPECT_CALL(cb_, onResponseHead(_, true));
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_FALSE(codec_.inMessage());
}

TEST_F(ClientCodecTest, ChunkedResponse) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  std::string body;
  InSequence seq;
  EXPECT_CALL(cb_, onResponseHead(_, false)).WillOnce(Invoke([](ResponseHead& h, bool) {
    EXPECT_TRUE(h.chunked);
  }));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_EQ("abcde", body);
}

TEST_F(ClientCodecTest, CloseDelimitedBodyCompletedByEof) {
  const std::string resp = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome data";
  std::string body;
  EXPECT_CALL(cb_, onResponseHead(_, false)).WillOnce(Invoke([](ResponseHead& h, bool) {
    EXPECT_FALSE(h.keep_alive);
    EXPECT_FALSE(h.has_content_length);
    EXPECT_FALSE(h.chunked);
  }));
  expectBodyInto(body);
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_EQ("some data", body);
  EXPECT_TRUE(codec_.inMessage());
  testing::Mock::VerifyAndClearExpectations(&cb_);
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.onEof();
  EXPECT_FALSE(codec_.inMessage());
}

// Regression test for a fixed bug: ClientCodec::onEof() returns false for a close-delimited response that the EOF did
// complete: llhttp_finish() runs on_message_complete, which returns HPE_PAUSED, so
// llhttp_finish() returns HPE_PAUSED and `err == HPE_OK` fails. The header promises
// "Returns true if a response was completed by the EOF".
TEST_F(ClientCodecTest, CloseDelimitedOnEofReturnsTrue) {
  const std::string resp = "HTTP/1.1 200 OK\r\n\r\nbody";
  EXPECT_CALL(cb_, onResponseHead(_, false));
  EXPECT_CALL(cb_, onResponseBody(_, _));
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  dispatchStr(codec_, resp);
  EXPECT_TRUE(codec_.onEof());
}

TEST_F(ClientCodecTest, TruncatedBodyThenEofDoesNotComplete) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  std::string body;
  EXPECT_CALL(cb_, onResponseHead(_, false));
  expectBodyInto(body);
  // The caller learns of the truncation from onEof() == false; a codec error is acceptable.
  EXPECT_CALL(cb_, onCodecError(_)).Times(AtMost(1));
  EXPECT_CALL(cb_, onResponseBodyEnd()).Times(0);
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_FALSE(codec_.onEof());
  EXPECT_EQ("abc", body);
}

TEST_F(ClientCodecTest, TruncatedChunkedBodyThenEofDoesNotComplete) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
  EXPECT_CALL(cb_, onResponseHead(_, false));
  EXPECT_CALL(cb_, onResponseBody(_, _)).Times(AnyNumber());
  EXPECT_CALL(cb_, onCodecError(_)).Times(AtMost(1));
  EXPECT_CALL(cb_, onResponseBodyEnd()).Times(0);
  codec_.expectResponse(false);
  dispatchStr(codec_, resp);
  EXPECT_FALSE(codec_.onEof());
}

TEST_F(ClientCodecTest, EofBetweenResponsesCompletesNothing) {
  EXPECT_FALSE(codec_.onEof());
  const std::string resp = "HTTP/1.1 204 No Content\r\n\r\n";
  EXPECT_CALL(cb_, onResponseHead(_, true));
  codec_.expectResponse(false);
  dispatchStr(codec_, resp);
  EXPECT_FALSE(codec_.onEof());
}

TEST_F(ClientCodecTest, EofInTheMiddleOfTheHeadDoesNotComplete) {
  codec_.expectResponse(false);
  EXPECT_CALL(cb_, onCodecError(_)).Times(AtMost(1));
  dispatchStr(codec_, "HTTP/1.1 200 OK\r\nContent-");
  EXPECT_FALSE(codec_.onEof());
}

TEST_F(ClientCodecTest, HeadResponseHasNoBodyEvenWithContentLength) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
  EXPECT_CALL(cb_, onResponseHead(_, true)).WillOnce(Invoke([](ResponseHead& h, bool) {
    EXPECT_EQ(1234U, h.content_length);
  }));
  codec_.expectResponse(true);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_FALSE(codec_.inMessage());

  // The next response on the connection (a GET) parses its body normally.
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::string body;
  EXPECT_CALL(cb_, onResponseHead(_, false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  EXPECT_EQ(next.size(), dispatchStr(codec_, next));
  EXPECT_EQ("ok", body);
}

TEST_F(ClientCodecTest, HeadResponseWithChunkedHasNoBody) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_CALL(cb_, onResponseHead(_, true));
  codec_.expectResponse(true);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_FALSE(codec_.inMessage());
}

TEST_F(ClientCodecTest, NoBodyStatuses) {
  for (const std::string resp : {"HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n\r\n",
                                 "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
                                 "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"}) {
    SCOPED_TRACE(resp);
    StrictMock<MockClientCallbacks> cb;
    ClientCodec codec(cb, 60 * 1024);
    EXPECT_CALL(cb, onResponseHead(_, true));
    codec.expectResponse(false);
    EXPECT_EQ(resp.size(), dispatchStr(codec, resp));
    EXPECT_FALSE(codec.inMessage());
  }
}

TEST_F(ClientCodecTest, ContinueThenFinalResponse) {
  const std::string resp =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::string body;
  InSequence seq;
  EXPECT_CALL(cb_, onInformational(Field(&ResponseHead::status, 100)));
  EXPECT_CALL(cb_, onResponseHead(Field(&ResponseHead::status, 200), false));
  expectBodyInto(body);
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  EXPECT_EQ(resp.size(), dispatchStr(codec_, resp));
  EXPECT_EQ("ok", body);
}

TEST_F(ClientCodecTest, ContinueAndFinalInSeparateReads) {
  InSequence seq;
  EXPECT_CALL(cb_, onInformational(Field(&ResponseHead::status, 100)));
  EXPECT_CALL(cb_, onResponseHead(Field(&ResponseHead::status, 204), true));
  codec_.expectResponse(false);
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string fin = "HTTP/1.1 204 No Content\r\n\r\n";
  EXPECT_EQ(cont.size(), dispatchStr(codec_, cont));
  EXPECT_EQ(fin.size(), dispatchStr(codec_, fin));
}

TEST_F(ClientCodecTest, SwitchingProtocolsLeavesTunnelData) {
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const std::string tunnel = "\x81\x02hi";
  const std::string all = head + tunnel;
  EXPECT_CALL(cb_, onResponseHead(Field(&ResponseHead::status, 101), false));
  codec_.expectResponse(false);
  EXPECT_EQ(head.size(), dispatchStr(codec_, all));
  EXPECT_TRUE(codec_.upgraded());
  EXPECT_EQ(0U, dispatchStr(codec_, tunnel));
}

TEST_F(ClientCodecTest, KeepAliveResponsesInSequence) {
  const std::string r1 = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";
  const std::string r2 = "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb";
  std::string body;
  InSequence seq;
  EXPECT_CALL(cb_, onResponseHead(Field(&ResponseHead::status, 200), false));
  EXPECT_CALL(cb_, onResponseBody(_, 1)).WillOnce(Invoke([&body](const char* d, size_t n) { body.append(d, n); }));
  EXPECT_CALL(cb_, onResponseBodyEnd());
  EXPECT_CALL(cb_, onResponseHead(Field(&ResponseHead::status, 404), false));
  EXPECT_CALL(cb_, onResponseBody(_, 1)).WillOnce(Invoke([&body](const char* d, size_t n) { body.append(d, n); }));
  EXPECT_CALL(cb_, onResponseBodyEnd());
  codec_.expectResponse(false);
  EXPECT_EQ(r1.size(), dispatchStr(codec_, r1));
  codec_.expectResponse(false);
  EXPECT_EQ(r2.size(), dispatchStr(codec_, r2));
  EXPECT_EQ("ab", body);
}

TEST_F(ClientCodecTest, ResponseKeepAliveFlags) {
  struct Case {
    std::string resp;
    bool keep_alive;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.resp);
    StrictMock<MockClientCallbacks> cb;
    ClientCodec codec(cb, 60 * 1024);
    EXPECT_CALL(cb, onResponseHead(_, true));
    codec.expectResponse(false);
    dispatchStr(codec, c.resp);
    EXPECT_EQ(c.keep_alive, codec.head().keep_alive);
  }
}

TEST_F(ClientCodecTest, MalformedStatusLinesAreProtocolErrors) {
  for (const std::string resp : {"HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 1000 OK\r\n\r\n", "HTP/1.1 200 OK\r\n\r\n",
                                 "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                 "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    SCOPED_TRACE(resp);
    StrictMock<MockClientCallbacks> cb;
    ClientCodec codec(cb, 60 * 1024);
    EXPECT_CALL(cb, onCodecError(codecError(502, "upstream_protocol_error")));
    codec.expectResponse(false);
    dispatchStr(codec, resp);
    // Nothing more after the error.
    EXPECT_EQ(0U, dispatchStr(codec, "HTTP/1.1 200 OK\r\n\r\n"));
  }
}

// Regression test for a fixed bug: a status code that is not three digits ("20", "099") is accepted and handed to
// onResponseHead with status 20 / 99; RFC 9112 4 (status-code = 3DIGIT) and RFC 9110 15
// (100..599) make it a malformed response, which should be a 502 upstream_protocol_error.
TEST_F(ClientCodecTest, StatusCodeMustBeThreeDigits) {
  for (const std::string resp : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"}) {
    SCOPED_TRACE(resp);
    StrictMock<MockClientCallbacks> cb;
    ClientCodec codec(cb, 60 * 1024);
    EXPECT_CALL(cb, onCodecError(codecError(502, "upstream_protocol_error")));
    codec.expectResponse(false);
    dispatchStr(codec, resp);
  }
}

TEST_F(ClientCodecTest, ResponseHeadersOverLimitAreProtocolErrors) {
  ClientCodec codec(cb_, 64);
  EXPECT_CALL(cb_, onCodecError(codecError(502, "upstream_protocol_error")));
  codec.expectResponse(false);
  dispatchStr(codec, "HTTP/1.1 200 OK\r\nX-Big: " + std::string(100, 'x') + "\r\n\r\n");
}

TEST_F(ClientCodecTest, StopInHeadCallbackSuppressesBody) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  EXPECT_CALL(cb_, onResponseHead(_, false)).WillOnce(Invoke([this](ResponseHead&, bool) { codec_.stop(); }));
  codec_.expectResponse(false);
  EXPECT_LT(dispatchStr(codec_, resp), resp.size());
  EXPECT_EQ(0U, dispatchStr(codec_, "more"));
  EXPECT_FALSE(codec_.onEof());
}

}  // namespace
}  // namespace levee::http::http1
