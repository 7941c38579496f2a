#include "config/policy.h"

#include <string>

namespace levee::config {

std::string SocketAddress::toString() const {
  // An IPv6 literal is the only host that contains ':'; it needs brackets before the port.
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

}  // namespace levee::config
