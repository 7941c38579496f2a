#pragma once
// A small JSON reader (RFC 8259) for admin request bodies: parses a whole document into a
// tree of Values, or returns an error with the byte offset. Bounded: nesting deeper than
// kMaxDepth is an error (no recursion blow-up on hostile input).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/common/result.h"

namespace levee::json {

struct Value;
using Object = std::map<std::string, Value, std::less<>>;
using Array = std::vector<Value>;

struct Value {
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v{nullptr};

  bool isNull() const { return std::holds_alternative<std::nullptr_t>(v); }
  const std::string* string() const { return std::get_if<std::string>(&v); }
  const double* number() const { return std::get_if<double>(&v); }
  const bool* boolean() const { return std::get_if<bool>(&v); }
  const Object* object() const { return std::get_if<Object>(&v); }
  const Array* array() const { return std::get_if<Array>(&v); }
};

inline constexpr int kMaxDepth = 32;

// Errors read "invalid JSON at byte N: <what>".
Result<Value> parse(std::string_view text);

// The JSON type name of `v` ("object", "string", ...), for error messages.
std::string_view typeName(const Value& v);

}  // namespace levee::json
