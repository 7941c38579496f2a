#include "proxy/server/await.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ostream>
#include <thread>

#include "config/units.h"
#include "proxy/network/address.h"

namespace levee::server {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until `until`; false on timeout or error.
bool waitFd(int fd, short events, Clock::time_point until) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) {
      return true;
    }
    if (rc < 0 && errno != EINTR) {
      return false;
    }
  }
}

// One GET /health/ready. Returns the status code, or 0 with `why` filled.
int probeOnce(const sockaddr_storage& addr, const std::string& host, Clock::time_point until, std::string& why) {
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket: ") + std::strerror(errno);
    return 0;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  socklen_t len = addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
    why = std::string("connect: ") + std::strerror(errno);
    return 0;
  }
  if (!waitFd(fd, POLLOUT, until)) {
    why = "connect: timed out";
    return 0;
  }
  int soerr = 0;
  socklen_t sl = sizeof(soerr);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) {
    why = std::string("connect: ") + std::strerror(soerr);
    return 0;
  }
  std::string req = "GET /health/ready HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    why = std::string("send: ") + std::strerror(errno);
    return 0;
  }
  std::string got;
  char buf[512];
  while (got.find("\r\n") == std::string::npos && got.size() < 4096) {
    if (!waitFd(fd, POLLIN, until)) {
      why = "no answer in time";
      return 0;
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    }
    if (n <= 0) {
      why = "connection closed without a status line";
      return 0;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  if (!got.starts_with("HTTP/1.") || got.size() < 12) {
    why = "not an HTTP response";
    return 0;
  }
  int status = std::atoi(got.c_str() + 9);
  if (status != 200) {
    why = "HTTP " + std::to_string(status);
  }
  return status;
}

}  // namespace

int awaitReady(const std::string& address, uint32_t timeout_ms, std::ostream& out, std::ostream& err) {
  auto parsed = config::parseSocketAddress(address, /*allow_dns_name=*/false);
  auto ip = parsed ? network::parseIp(parsed->host, parsed->port) : std::nullopt;
  if (!ip) {
    err << "levee await: bad address \"" << address << "\"\n";
    return 1;
  }
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(timeout_ms);
  std::string why = "not tried";
  uint32_t attempts = 0;
  while (true) {
    ++attempts;
    auto until = std::min(deadline, Clock::now() + std::chrono::seconds(1));
    if (probeOnce(*ip, address, until, why) == 200) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
      out << "levee await: ready (http://" << address << "/health/ready) after " << ms << " ms\n";
      return 0;
    }
    auto next = Clock::now() + std::chrono::milliseconds(100);
    if (next >= deadline) {
      break;
    }
    std::this_thread::sleep_until(next);  // a CLI process, not an event loop
  }
  err << "levee await: timed out after " << timeout_ms << " ms waiting for http://" << address
      << "/health/ready to answer 200 (" << attempts << " attempt(s); last: " << why << ")\n";
  return 1;
}

}  // namespace levee::server
