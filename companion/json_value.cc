#include "companion/json_value.h"

#include <charconv>
#include <cmath>

#include "proxy/common/strings.h"

namespace levee::companion {

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type_ != Type::Object) {
    return nullptr;
  }
  auto it = members_.find(std::string(key));
  return it == members_.end() ? nullptr : &it->second;
}

std::string JsonValue::getString(std::string_view key, std::string fallback) const {
  const JsonValue* v = find(key);
  return v != nullptr && v->isString() ? v->string_ : fallback;
}

double JsonValue::getNumber(std::string_view key, double fallback) const {
  const JsonValue* v = find(key);
  return v != nullptr && v->isNumber() ? v->number_ : fallback;
}

uint64_t JsonValue::getUint(std::string_view key, uint64_t fallback) const {
  const JsonValue* v = find(key);
  if (v == nullptr || !v->isNumber() || v->number_ < 0 || !std::isfinite(v->number_)) {
    return fallback;
  }
  return static_cast<uint64_t>(v->number_);
}

class JsonParser {
public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  Result<JsonValue> run() {
    JsonValue v;
    if (!value(v, 0)) {
      return fail();
    }
    ws();
    if (pos_ != s_.size()) {
      error_ = "trailing characters after the JSON value";
      return fail();
    }
    return v;
  }

private:
  std::unexpected<Error> fail() const {
    return makeError("invalid JSON at byte " + std::to_string(pos_) + ": " + error_);
  }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) {
      error_ = "unexpected token";
      return false;
    }
    pos_ += word.size();
    return true;
  }
  bool value(JsonValue& out, int depth) {
    if (depth > 64) {
      error_ = "nesting deeper than 64";
      return false;
    }
    ws();
    if (pos_ >= s_.size()) {
      error_ = "unexpected end of input";
      return false;
    }
    char c = s_[pos_];
    if (c == '{') {
      return object(out, depth);
    }
    if (c == '[') {
      ++pos_;
      out.type_ = JsonValue::Type::Array;
      ws();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      while (true) {
        JsonValue item;
        if (!value(item, depth + 1)) {
          return false;
        }
        out.items_.push_back(std::move(item));
        ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return true;
        }
        error_ = "expected ',' or ']'";
        return false;
      }
    }
    if (c == '"') {
      out.type_ = JsonValue::Type::String;
      return string(out.string_);
    }
    if (c == 't' || c == 'f') {
      out.type_ = JsonValue::Type::Bool;
      out.bool_ = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      return literal("null");
    }
    return number(out);
  }
  bool object(JsonValue& out, int depth) {
    ++pos_;
    out.type_ = JsonValue::Type::Object;
    ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      ws();
      std::string key;
      if (pos_ >= s_.size() || s_[pos_] != '"' || !string(key)) {
        if (error_.empty()) {
          error_ = "expected a string key";
        }
        return false;
      }
      ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') {
        error_ = "expected ':'";
        return false;
      }
      ++pos_;
      JsonValue v;
      if (!value(v, depth + 1)) {
        return false;
      }
      out.members_.insert_or_assign(std::move(key), std::move(v));
      ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      error_ = "expected ',' or '}'";
      return false;
    }
  }

  bool hex4(uint32_t& out) {
    if (pos_ + 4 > s_.size()) {
      error_ = "short \\u escape";
      return false;
    }
    auto r = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, out, 16);
    if (r.ptr != s_.data() + pos_ + 4) {
      error_ = "bad \\u escape";
      return false;
    }
    pos_ += 4;
    return true;
  }
  bool string(std::string& out) {
    ++pos_;  // opening quote
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
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t lo = 0;
            if (!hex4(lo)) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
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
  bool number(JsonValue& out) {
    size_t start = pos_;
    while (pos_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[pos_]) != std::string_view::npos) {
      ++pos_;
    }
    double v = 0;
    auto r = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (start == pos_ || r.ptr != s_.data() + pos_ || r.ec != std::errc()) {
      pos_ = start;
      error_ = "unexpected token";
      return false;
    }
    out.type_ = JsonValue::Type::Number;
    out.number_ = v;
    return true;
  }

  std::string_view s_;
  size_t pos_{0};
  std::string error_;
};

Result<JsonValue> JsonValue::parse(std::string_view text) { return JsonParser(text).run(); }

}  // namespace levee::companion
