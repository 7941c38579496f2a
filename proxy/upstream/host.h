#pragma once
// Upstream endpoints after resolution. Immutable and shared across workers; the main thread
// publishes a new HostSet when DNS answers change.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace levee::upstream {

struct Host {
  sockaddr_storage addr{};
  std::string address;     // resolved "ip:port" (logs, metrics of endpoints, admin)
  std::string configured;  // as written in the policy ("app.svc:8080")
  uint32_t weight{1};
  uint32_t priority{0};
};
using HostConstSharedPtr = std::shared_ptr<const Host>;

struct HostSet {
  std::vector<HostConstSharedPtr> hosts;  // every resolved endpoint
};
using HostSetConstSharedPtr = std::shared_ptr<const HostSet>;

}  // namespace levee::upstream
