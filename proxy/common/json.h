#pragma once
// A tiny streaming JSON writer (no DOM): enough for local replies, admin responses and
// access-log lines. Callers produce well-formed nesting; the writer inserts commas.

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::json {

// Appends `s` to `out` as a JSON string literal (quotes included), escaping per RFC 8259.
void appendQuoted(std::string& out, std::string_view s);

class Writer {
public:
  explicit Writer(std::string& out) : out_(out) {}
  Writer& beginObject();
  Writer& endObject();
  Writer& beginArray();
  Writer& endArray();
  Writer& key(std::string_view k);
  Writer& value(std::string_view v);
  Writer& value(const char* v) { return value(std::string_view(v)); }
  Writer& value(int64_t v);
  Writer& value(uint64_t v);
  Writer& value(int v) { return value(static_cast<int64_t>(v)); }
  Writer& value(unsigned v) { return value(static_cast<uint64_t>(v)); }
  Writer& value(double v);
  Writer& value(bool v);
  Writer& null();
  // Emits pre-encoded JSON as a value.
  Writer& raw(std::string_view json);

private:
  void separate();
  std::string& out_;
  bool need_comma_{false};
};

}  // namespace levee::json
