#pragma once
// A small JSON reader for the companion: admin request bodies and catalog files. Values are a
// tree of JsonValue; parse() never throws and reports the byte offset of the first error.
// (The writer side is proxy/common/json.h.) Shared by companion/backup and companion/failover.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/result.h"

namespace levee::companion {

class JsonValue {
public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type() const { return type_; }
  bool isObject() const { return type_ == Type::Object; }
  bool isArray() const { return type_ == Type::Array; }
  bool isString() const { return type_ == Type::String; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isBool() const { return type_ == Type::Bool; }

  bool asBool() const { return bool_; }
  double asNumber() const { return number_; }
  const std::string& asString() const { return string_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const std::map<std::string, JsonValue>& members() const { return members_; }
  // Member `key` of an object, or nullptr.
  const JsonValue* find(std::string_view key) const;
  // Typed member readers with a fallback for absent or mistyped members.
  std::string getString(std::string_view key, std::string fallback = {}) const;
  double getNumber(std::string_view key, double fallback = 0) const;
  uint64_t getUint(std::string_view key, uint64_t fallback = 0) const;

  // Parses one JSON text (RFC 8259; nesting limited to 64 levels).
  static Result<JsonValue> parse(std::string_view text);

private:
  friend class JsonParser;
  Type type_{Type::Null};
  bool bool_{false};
  double number_{0};
  std::string string_;
  std::vector<JsonValue> items_;
  std::map<std::string, JsonValue> members_;
};

}  // namespace levee::companion
