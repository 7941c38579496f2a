#pragma once
// Socket addresses and listening sockets (SO_REUSEPORT: every worker binds the same address
// and the kernel spreads connections; DESIGN section 1).

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "proxy/common/result.h"

namespace levee::network {

// Parses a numeric IPv4/IPv6 literal and port into a sockaddr.
std::optional<sockaddr_storage> parseIp(const std::string& host, uint16_t port);
// "1.2.3.4:80" / "[::1]:80".
std::string toString(const sockaddr_storage& addr);
// socket + SO_REUSEADDR + SO_REUSEPORT + bind + listen. Returns the fd.
Result<int> createListenFd(const sockaddr_storage& addr);

}  // namespace levee::network
