#include "proxy/common/result.h"

namespace levee {

std::string Error::toString() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line) + ':' + std::to_string(column);
    }
    out += ": ";
  }
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return out;
}

}  // namespace levee
