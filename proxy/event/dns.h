#pragma once
// Asynchronous name resolution (uv_getaddrinfo). Never blocks the loop.

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/event/dispatcher.h"

namespace levee::event {

class DnsResolver {
public:
  // `addrs` holds every resolved address (port filled in); empty plus `error` on failure.
  using Callback = std::function<void(std::vector<sockaddr_storage> addrs, std::string error)>;
  explicit DnsResolver(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  ~DnsResolver();
  // Starts a lookup. The callback never runs after the resolver is destroyed.
  void resolve(const std::string& host, uint16_t port, Callback cb);

private:
  Dispatcher& dispatcher_;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

}  // namespace levee::event
