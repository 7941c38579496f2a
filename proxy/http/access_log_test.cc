#include "proxy/http/access_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace levee::http {
namespace {

using namespace std::chrono_literals;

// A minimal parser for one flat JSON object: key -> value, where strings are decoded and other
// values keep their literal text (enough to check an access-log line).
struct JsonValue {
  bool is_string{false};
  std::string text;
};
using JsonObject = std::map<std::string, JsonValue>;

class FlatJsonParser {
public:
  explicit FlatJsonParser(std::string_view s) : s_(s) {}

  std::optional<JsonObject> parse() {
    JsonObject obj;
    if (!consume('{')) {
      return std::nullopt;
    }
    if (consume('}')) {
      return pos_ == s_.size() ? std::optional(obj) : std::nullopt;
    }
    do {
      std::optional<std::string> key = parseString();
      if (!key || !consume(':')) {
        return std::nullopt;
      }
      JsonValue v;
      if (peek() == '"') {
        std::optional<std::string> str = parseString();
        if (!str) {
          return std::nullopt;
        }
        v = {true, *str};
      } else {
        size_t start = pos_;
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '}') {
          ++pos_;
        }
        v.text = std::string(s_.substr(start, pos_ - start));
        if (v.text.empty()) {
          return std::nullopt;
        }
      }
      if (!obj.emplace(*key, v).second) {
        return std::nullopt;  // duplicate key
      }
    } while (consume(','));
    if (!consume('}') || pos_ != s_.size()) {
      return std::nullopt;
    }
    return obj;
  }

private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool consume(char c) {
    if (peek() != c) {
      return false;
    }
    ++pos_;
    return true;
  }
  std::optional<std::string> parseString() {
    if (!consume('"')) {
      return std::nullopt;
    }
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') {
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return std::nullopt;  // raw control characters are invalid JSON
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) {
        return std::nullopt;
      }
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (pos_ + 4 > s_.size()) {
            return std::nullopt;
          }
          unsigned cp = static_cast<unsigned>(std::stoul(std::string(s_.substr(pos_, 4)), nullptr, 16));
          pos_ += 4;
          if (cp >= 0x80) {
            return std::nullopt;  // not needed by these tests
          }
          out.push_back(static_cast<char>(cp));
          break;
        }
        default: return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::string_view s_;
  size_t pos_{0};
};

std::vector<std::string> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  return lines;
}

class AccessLogTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/levee_access_log_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    path_ = dir_ + "/access.log";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  // 2026-11-23T19:40:01.123Z
  static std::chrono::system_clock::time_point fixedTime() {
    using namespace std::chrono;
    return sys_days{year{2026} / November / 23} + 19h + 40min + 1s + 123ms + 456us;
  }

  // Writes entries through a real AccessLog; destroying it drains the queue and flushes.
  std::vector<std::string> writeAndRead(const std::vector<AccessLogEntry>& entries) {
    {
      std::string error;
      std::unique_ptr<AccessLog> log = AccessLog::create(path_, &error);
      EXPECT_NE(nullptr, log) << error;
      if (log == nullptr) {
        return {};
      }
      EXPECT_TRUE(log->enabled());
      for (const auto& e : entries) {
        log->log(e);
      }
      log->flush();
    }
    return readLines(path_);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(AccessLogTest, WritesOneJsonLinePerRequest) {
  AccessLogEntry e;
  e.start = fixedTime();
  e.request_id = "req-1";
  e.listener = "inbound";
  e.route = "api";
  e.method = "GET";
  e.path = "/v1/items?id=7";
  e.authority = "svc.local";
  e.upstream = "backend";
  e.endpoint = "10.0.0.7:8080";
  e.protocol = "HTTP/1.1";
  e.downstream_peer = "10.0.0.1:40000";
  e.status = 200;
  e.duration_us = 1234;
  e.bytes_received = 10;
  e.bytes_sent = 2048;
  e.attempts = 2;

  std::vector<std::string> lines = writeAndRead({e});
  ASSERT_EQ(1U, lines.size());
  EXPECT_EQ(
      "{\"time\":\"2026-11-23T19:40:01.123Z\",\"request_id\":\"req-1\",\"listener\":\"inbound\","
      "\"route\":\"api\",\"method\":\"GET\",\"path\":\"/v1/items?id=7\",\"authority\":\"svc.local\","
      "\"protocol\":\"HTTP/1.1\",\"status\":200,\"upstream\":\"backend\","
      "\"endpoint\":\"10.0.0.7:8080\",\"attempts\":2,\"duration_ms\":1.234,\"bytes_received\":10,"
      "\"bytes_sent\":2048,\"downstream_peer\":\"10.0.0.1:40000\"}",
      lines[0]);
  std::optional<JsonObject> obj = FlatJsonParser(lines[0]).parse();
  ASSERT_TRUE(obj.has_value()) << lines[0];
  EXPECT_EQ("2026-11-23T19:40:01.123Z", (*obj)["time"].text);
  EXPECT_EQ("GET", (*obj)["method"].text);
  EXPECT_EQ("200", (*obj)["status"].text);
  EXPECT_FALSE((*obj)["status"].is_string);
  EXPECT_EQ("1.234", (*obj)["duration_ms"].text);
  EXPECT_EQ(0U, obj->count("reason"));
}

TEST_F(AccessLogTest, EscapesPathWithQuotesAndControlCharacters) {
  const std::string nasty = std::string("/a\"b\\c\nd\re\tf") + '\x01' + '\x1f' + '\x7f' + "g";
  AccessLogEntry e;
  e.start = fixedTime();
  e.method = "POST";
  e.path = nasty;
  e.reason = "upstream \"reset\"";
  e.status = 503;
  std::vector<std::string> lines = writeAndRead({e});
  ASSERT_EQ(1U, lines.size());  // the newline in the path did not split the line
  EXPECT_NE(std::string::npos,
            lines[0].find(R"("path":"/a\"b\\c\nd\re\tf\u0001\u001f\u007fg")"))
      << lines[0];
  std::optional<JsonObject> obj = FlatJsonParser(lines[0]).parse();
  ASSERT_TRUE(obj.has_value()) << lines[0];
  EXPECT_EQ(nasty, (*obj)["path"].text);
  EXPECT_EQ("upstream \"reset\"", (*obj)["reason"].text);
}

TEST_F(AccessLogTest, OmitsEmptyStringsExceptMethodAndPath) {
  AccessLogEntry e;
  e.start = fixedTime();
  std::string line;
  AccessLog::format(e, line);
  EXPECT_EQ(
      "{\"time\":\"2026-11-23T19:40:01.123Z\",\"method\":\"\",\"path\":\"\",\"status\":0,"
      "\"attempts\":0,\"duration_ms\":0.000,\"bytes_received\":0,\"bytes_sent\":0}",
      line);
}

TEST_F(AccessLogTest, FormatsDurationAndTimeExactly) {
  struct Case {
    uint64_t us;
    const char* expected;
  };
  for (const Case& c : {Case{0, "0.000"}, Case{5, "0.005"}, Case{999, "0.999"},
                        Case{1000, "1.000"}, Case{1234, "1.234"}, Case{60'000'001, "60000.001"},
                        Case{UINT64_MAX, "18446744073709551.615"}}) {
    AccessLogEntry e;
    e.duration_us = c.us;
    std::string line;
    AccessLog::format(e, line);
    std::optional<JsonObject> obj = FlatJsonParser(line).parse();
    ASSERT_TRUE(obj.has_value()) << line;
    EXPECT_EQ(c.expected, (*obj)["duration_ms"].text) << c.us;
  }
  // Epoch, then two times in the same second (cached prefix) and the next second.
  AccessLogEntry e;
  std::string line;
  AccessLog::format(e, line);
  EXPECT_EQ(0U, line.find("{\"time\":\"1970-01-01T00:00:00.000Z\""));
  for (auto [offset, expected] : {std::pair{0ms, "2026-11-23T19:40:01.123Z"},
                                  std::pair{800ms, "2026-11-23T19:40:01.923Z"},
                                  std::pair{900ms, "2026-11-23T19:40:02.023Z"}}) {
    e.start = fixedTime() + offset;
    line.clear();
    AccessLog::format(e, line);
    EXPECT_EQ("{\"time\":\"" + std::string(expected) + "\"", line.substr(0, 34));
  }
}

TEST_F(AccessLogTest, LinesFromManyThreadsStayWhole) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;  // well under the queue depth: nothing is dropped
  {
    std::unique_ptr<AccessLog> log = AccessLog::create(path_);
    ASSERT_NE(nullptr, log);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&log, t] {
        const std::string id = "t" + std::to_string(t);
        for (int i = 0; i < kPerThread; ++i) {
          AccessLogEntry e;
          e.request_id = id;
          e.method = "GET";
          e.path = "/x";
          e.status = 200;
          log->log(e);
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    EXPECT_EQ(0U, log->droppedLines());
  }
  std::vector<std::string> lines = readLines(path_);
  ASSERT_EQ(static_cast<size_t>(kThreads * kPerThread), lines.size());
  for (const auto& l : lines) {
    ASSERT_TRUE(FlatJsonParser(l).parse().has_value()) << l;
  }
}

TEST_F(AccessLogTest, AppendsToAnExistingFile) {
  AccessLogEntry e;
  e.method = "GET";
  e.path = "/1";
  writeAndRead({e});
  e.path = "/2";
  std::vector<std::string> lines = writeAndRead({e});
  ASSERT_EQ(2U, lines.size());
  EXPECT_NE(std::string::npos, lines[0].find("\"/1\""));
  EXPECT_NE(std::string::npos, lines[1].find("\"/2\""));
}

TEST_F(AccessLogTest, OffIsANoOp) {
  for (const char* path : {"off", ""}) {
    std::unique_ptr<AccessLog> log = AccessLog::create(path);
    ASSERT_NE(nullptr, log);
    EXPECT_FALSE(log->enabled());
    log->log(AccessLogEntry{});
    log->flush();
    EXPECT_EQ(0U, log->droppedLines());
  }
}

TEST_F(AccessLogTest, StdoutAndStderrAreEnabled) {
  for (const char* path : {"stdout", "stderr"}) {
    std::unique_ptr<AccessLog> log = AccessLog::create(path);
    ASSERT_NE(nullptr, log);
    EXPECT_TRUE(log->enabled());
  }
}

TEST_F(AccessLogTest, UnopenableFileReturnsNullWithAnError) {
  std::string error;
  // A directory cannot be opened for appending.
  EXPECT_EQ(nullptr, AccessLog::create(dir_, &error));
  EXPECT_NE(std::string::npos, error.find(dir_)) << error;
  EXPECT_EQ(nullptr, AccessLog::create(dir_));
}

}  // namespace
}  // namespace levee::http
