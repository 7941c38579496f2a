#include "proxy/common/json.h"

#include <cmath>
#include <cstdio>

namespace levee::json {

void appendQuoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void Writer::separate() {
  if (need_comma_) {
    out_.push_back(',');
  }
  need_comma_ = true;
}

Writer& Writer::beginObject() {
  separate();
  out_.push_back('{');
  need_comma_ = false;
  return *this;
}
Writer& Writer::endObject() {
  out_.push_back('}');
  need_comma_ = true;
  return *this;
}
Writer& Writer::beginArray() {
  separate();
  out_.push_back('[');
  need_comma_ = false;
  return *this;
}
Writer& Writer::endArray() {
  out_.push_back(']');
  need_comma_ = true;
  return *this;
}
Writer& Writer::key(std::string_view k) {
  separate();
  appendQuoted(out_, k);
  out_.push_back(':');
  need_comma_ = false;
  return *this;
}
Writer& Writer::value(std::string_view v) {
  separate();
  appendQuoted(out_, v);
  return *this;
}
Writer& Writer::value(int64_t v) {
  separate();
  out_ += std::to_string(v);
  return *this;
}
Writer& Writer::value(uint64_t v) {
  separate();
  out_ += std::to_string(v);
  return *this;
}
Writer& Writer::value(double v) {
  separate();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  int n = std::snprintf(buf, sizeof(buf), "%.6g", v);
  out_.append(buf, static_cast<size_t>(n));
  return *this;
}
Writer& Writer::value(bool v) {
  separate();
  out_ += v ? "true" : "false";
  return *this;
}
Writer& Writer::null() {
  separate();
  out_ += "null";
  return *this;
}
Writer& Writer::raw(std::string_view json) {
  separate();
  out_ += json;
  return *this;
}

}  // namespace levee::json
