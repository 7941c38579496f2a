#pragma once
// YAML text -> a plain, exception-free document tree with 1-based locations.
// config/yaml_reader.cc is the only file that includes yaml-cpp (STYLE B.5): everything else in
// config/ walks this tree, so nothing in the loader can throw.

#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/result.h"

namespace levee::config {

struct MapEntry;

struct Node {
  enum class Kind { Null, Scalar, Sequence, Map };

  Kind kind{Kind::Null};
  std::string scalar;       // Scalar: the text as written (unquoted)
  bool quoted{false};       // Scalar: written as '...' or "..." (a string, never a number or bool)
  int line{1};              // 1-based
  int column{1};            // 1-based
  std::vector<Node> items;  // Sequence
  std::vector<MapEntry> entries;  // Map, in document order; duplicate keys are kept (the loader
                                  // reports them)

  bool isNull() const { return kind == Kind::Null; }
  bool isScalar() const { return kind == Kind::Scalar; }
  bool isSequence() const { return kind == Kind::Sequence; }
  bool isMap() const { return kind == Kind::Map; }
};

struct MapEntry {
  std::string key;  // keys are scalars; a non-scalar key is a parse error
  int key_line{1};
  int key_column{1};
  Node value;
};

// "a mapping", "a sequence", "a string \"x\"", "null": for "expected X, got Y" messages.
std::string describeNode(const Node& node);

// Parses one YAML document. An empty document gives a Null root. Syntax errors (and a second
// document, or a complex mapping key) come back as an Error with the file and 1-based line/column.
Result<Node> parseYaml(std::string_view text, const std::string& file_name);

}  // namespace levee::config
