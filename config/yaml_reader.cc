#include "config/yaml_reader.h"

#include <yaml-cpp/yaml.h>

#include <string>
#include <utility>

// The only translation unit that includes yaml-cpp. yaml-cpp reports problems by throwing
// YAML::Exception; every call into it is inside the try block of parseYaml() and the result is a
// plain Node tree, so no exception leaves this file.

namespace levee::config {
namespace {

// Guards against hostile documents: alias cycles and "billion laughs" alias expansion.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 1'000'000;

// yaml-cpp marks are 0-based (and -1 when unknown); ours are 1-based (0 when unknown).
int oneBased(int zero_based) { return zero_based < 0 ? 0 : zero_based + 1; }

class Converter {
public:
  explicit Converter(const std::string& file_name) : file_name_(file_name) {}

  // Fills `out` from `in`; returns false (with error_ set) when the document is unusable.
  bool convert(const YAML::Node& in, Node& out, int depth) {
    if (++count_ > kMaxNodes) {
      return fail(in.Mark(), "document too large (too many nodes after alias expansion)");
    }
    if (depth > kMaxDepth) {
      return fail(in.Mark(), "document nested too deeply (alias cycle?)");
    }
    const YAML::Mark mark = in.Mark();
    out.line = oneBased(mark.line);
    out.column = oneBased(mark.column);
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = Node::Kind::Null;
        return true;
      case YAML::NodeType::Scalar:
        out.kind = Node::Kind::Scalar;
        out.scalar = in.Scalar();
        // Plain scalars carry the non-specific tag "?"; quoted ones "!"; explicit tags are
        // treated like quoted text (never coerced to numbers or booleans).
        out.quoted = in.Tag() != "?";
        return true;
      case YAML::NodeType::Sequence:
        out.kind = Node::Kind::Sequence;
        out.items.reserve(in.size());
        for (const YAML::Node& item : in) {
          Node child;
          if (!convert(item, child, depth + 1)) {
            return false;
          }
          out.items.push_back(std::move(child));
        }
        return true;
      case YAML::NodeType::Map:
        out.kind = Node::Kind::Map;
        // Copy key and value: `it->first` would point into a proxy that dies with the expression.
        for (const auto& pair : in) {
          const YAML::Node key = pair.first;
          const YAML::Node value = pair.second;
          if (!key.IsScalar()) {
            return fail(key.Mark(), "mapping keys must be plain strings");
          }
          MapEntry entry;
          entry.key = key.Scalar();
          entry.key_line = oneBased(key.Mark().line);
          entry.key_column = oneBased(key.Mark().column);
          if (!convert(value, entry.value, depth + 1)) {
            return false;
          }
          if (entry.value.isNull()) {
            // An empty value ("key:") has no useful position of its own: point at the key.
            entry.value.line = entry.key_line;
            entry.value.column = entry.key_column;
          }
          out.entries.push_back(std::move(entry));
        }
        return true;
    }
    return fail(mark, "unsupported YAML node");
  }

  bool fail(const YAML::Mark& mark, std::string message) {
    error_ = Error{std::move(message), file_name_, oneBased(mark.line), oneBased(mark.column), ""};
    return false;
  }

  Error& error() { return error_; }

private:
  const std::string& file_name_;
  size_t count_{0};
  Error error_;
};

// A common cause of yaml-cpp's terse syntax errors: a tab in the indentation of that line.
bool indentedWithTab(std::string_view text, int zero_based_line) {
  size_t start = 0;
  for (int line = 0; line < zero_based_line; ++line) {
    start = text.find('\n', start);
    if (start == std::string_view::npos) {
      return false;
    }
    ++start;
  }
  for (size_t i = start; i < text.size() && (text[i] == ' ' || text[i] == '\t'); ++i) {
    if (text[i] == '\t') {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string describeNode(const Node& node) {
  switch (node.kind) {
    case Node::Kind::Null:
      return "null";
    case Node::Kind::Sequence:
      return "a sequence";
    case Node::Kind::Map:
      return "a mapping";
    case Node::Kind::Scalar:
      break;
  }
  std::string out = node.quoted ? "the string \"" : "\"";
  if (node.scalar.size() > 40) {
    out += node.scalar.substr(0, 40);
    out += "...";
  } else {
    out += node.scalar;
  }
  out += '"';
  return out;
}

Result<Node> parseYaml(std::string_view text, const std::string& file_name) {
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.empty()) {
      return Node{};  // empty file: a Null root; the loader says what is missing
    }
    if (docs.size() > 1) {
      const YAML::Mark mark = docs[1].Mark();
      return std::unexpected(
          Error{"expected a single YAML document, found " + std::to_string(docs.size()), file_name,
                oneBased(mark.line), oneBased(mark.column), ""});
    }
    Converter converter(file_name);
    Node root;
    if (!converter.convert(docs[0], root, 0)) {
      return std::unexpected(std::move(converter.error()));
    }
    return root;
  } catch (const YAML::Exception& e) {
    std::string message = e.msg.empty() ? std::string(e.what()) : e.msg;
    if (indentedWithTab(text, e.mark.line)) {
      message += " (tabs are not allowed in YAML indentation; use spaces)";
    }
    return std::unexpected(Error{"YAML syntax error: " + message, file_name, oneBased(e.mark.line),
                                 oneBased(e.mark.column), ""});
  } catch (const std::exception& e) {
    // yaml-cpp can also surface std::bad_alloc and friends; never let them out of config/.
    return std::unexpected(
        Error{std::string("cannot parse YAML: ") + e.what(), file_name, 0, 0, ""});
  }
}

}  // namespace levee::config
