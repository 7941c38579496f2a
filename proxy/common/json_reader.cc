#include "proxy/common/json_reader.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include "proxy/common/strings.h"

namespace levee::json {
namespace {

class Parser {
public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<Value> document() {
    Value v;
    if (!value(v, 0)) {
      return fail();
    }
    skipSpace();
    if (pos_ != s_.size()) {
      error_ = "unexpected text after the value";
      return fail();
    }
    return v;
  }

private:
  Result<Value> fail() const {
    return makeError("invalid JSON at byte " + std::to_string(pos_) + ": " + error_);
  }

  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) {
      error_ = "unexpected character";
      return false;
    }
    pos_ += word.size();
    return true;
  }

  bool value(Value& out, int depth) {
    if (depth > kMaxDepth) {
      error_ = "nested deeper than " + std::to_string(kMaxDepth) + " levels";
      return false;
    }
    skipSpace();
    if (pos_ >= s_.size()) {
      error_ = "unexpected end of input";
      return false;
    }
    switch (s_[pos_]) {
      case '{': return object(out, depth);
      case '[': return array(out, depth);
      case '"': {
        std::string str;
        if (!string(str)) {
          return false;
        }
        out.v = std::move(str);
        return true;
      }
      case 't': out.v = true; return literal("true");
      case 'f': out.v = false; return literal("false");
      case 'n': out.v = nullptr; return literal("null");
      default: return number(out);
    }
  }

  bool object(Value& out, int depth) {
    ++pos_;  // '{'
    Object obj;
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out.v = std::move(obj);
      return true;
    }
    while (true) {
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') {
        error_ = "expected a string key";
        return false;
      }
      std::string key;
      if (!string(key)) {
        return false;
      }
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') {
        error_ = "expected ':'";
        return false;
      }
      ++pos_;
      Value v;
      if (!value(v, depth + 1)) {
        return false;
      }
      if (obj.contains(key)) {
        error_ = "duplicate key \"" + key + "\"";
        return false;
      }
      obj.emplace(std::move(key), std::move(v));
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        out.v = std::move(obj);
        return true;
      }
      error_ = "expected ',' or '}'";
      return false;
    }
  }

  bool array(Value& out, int depth) {
    ++pos_;  // '['
    Array arr;
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      out.v = std::move(arr);
      return true;
    }
    while (true) {
      Value v;
      if (!value(v, depth + 1)) {
        return false;
      }
      arr.push_back(std::move(v));
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        out.v = std::move(arr);
        return true;
      }
      error_ = "expected ',' or ']'";
      return false;
    }
  }



  bool hex4(uint32_t& out) {
    if (pos_ + 4 > s_.size()) {
      error_ = "truncated \\u escape";
      return false;
    }
    auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, out, 16);
    if (ec != std::errc() || p != s_.data() + pos_ + 4) {
      error_ = "bad \\u escape";
      return false;
    }
    pos_ += 4;
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // '"'
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') {
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        error_ = "control character in string";
        return false;
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) {
        break;
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
          uint32_t cp = 0;
          if (!hex4(cp)) {
            return false;
          }
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t lo = 0;
            if (!hex4(lo)) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          common::appendUtf8(out, cp);
          break;
        }
        default:
          error_ = "bad escape";
          return false;
      }
    }
    error_ = "unterminated string";
    return false;
  }

  bool number(Value& out) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') {
      ++pos_;
    }
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                s_[pos_] == 'e' || s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
      ++pos_;
    }
    double d = 0;
    auto [p, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, d);
    if (start == pos_ || ec != std::errc() || p != s_.data() + pos_ || !std::isfinite(d)) {
      pos_ = start;
      error_ = "unexpected character";
      return false;
    }
    out.v = d;
    return true;
  }

  std::string_view s_;
  size_t pos_{0};
  std::string error_;
};

}  // namespace

Result<Value> parse(std::string_view text) { return Parser(text).document(); }

std::string_view typeName(const Value& v) {
  switch (v.v.index()) {
    case 0: return "null";
    case 1: return "boolean";
    case 2: return "number";
    case 3: return "string";
    case 4: return "array";
    default: return "object";
  }
}

}  // namespace levee::json
