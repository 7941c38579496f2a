#include "proxy/network/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "proxy/event/tcp_socket.h"
#include "tests/test_common/test_loop.h"

namespace levee::network {
namespace {

uint16_t portOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
}

sockaddr_storage boundAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  EXPECT_EQ(0, ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len));
  return ss;
}

bool ipv6Available() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

TEST(ParseIpTest, Valid) {
  struct Case {
    std::string host;
    uint16_t port;
    int family;
    std::string to_string;
  };
  const Case cases[] = {
      {"127.0.0.1", 80, AF_INET, "127.0.0.1:80"},
      {"0.0.0.0", 0, AF_INET, "0.0.0.0:0"},
      {"255.255.255.255", 65535, AF_INET, "255.255.255.255:65535"},
      {"10.1.2.3", 15000, AF_INET, "10.1.2.3:15000"},
      {"::1", 80, AF_INET6, "[::1]:80"},
      {"[::1]", 8080, AF_INET6, "[::1]:8080"},
      {"::", 15021, AF_INET6, "[::]:15021"},
      {"[::]", 1, AF_INET6, "[::]:1"},
      {"2001:db8::1", 443, AF_INET6, "[2001:db8::1]:443"},
      {"2001:0DB8:0000:0000:0000:0000:0000:0001", 443, AF_INET6, "[2001:db8::1]:443"},  // canonical form
      {"::ffff:10.0.0.1", 9, AF_INET6, "[::ffff:10.0.0.1]:9"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.host);
    auto ss = parseIp(c.host, c.port);
    ASSERT_TRUE(ss.has_value());
    EXPECT_EQ(c.family, ss->ss_family);
    EXPECT_EQ(c.port, portOf(*ss));
    EXPECT_EQ(c.to_string, toString(*ss));
  }
}

TEST(ParseIpTest, Invalid) {
  for (const std::string host :
       {"", "localhost", "example.com", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.4:80", "01.2.3.4x", " 1.2.3.4",
        "[127.0.0.1]", "[::1", "::1]", "[]", "[[::1]]", ":::", "1::2::3", "fe80::1%eth0", "[::1]:80", "::g"}) {
    EXPECT_FALSE(parseIp(host, 80).has_value()) << host;
  }
}

TEST(ToStringTest, UnknownFamily) {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_EQ("?", toString(ss));
}

TEST(CreateListenFdTest, BindsAnEphemeralPort) {
  auto addr = parseIp("127.0.0.1", 0);
  ASSERT_TRUE(addr.has_value());
  Result<int> fd = createListenFd(*addr);
  ASSERT_TRUE(fd.has_value()) << fd.error().toString();
  sockaddr_storage bound = boundAddress(*fd);
  EXPECT_EQ(AF_INET, bound.ss_family);
  EXPECT_NE(0, portOf(bound));
  // Non-blocking and close-on-exec, listening.
  int accept_conn = 0;
  socklen_t len = sizeof(accept_conn);
  ASSERT_EQ(0, ::getsockopt(*fd, SOL_SOCKET, SO_ACCEPTCONN, &accept_conn, &len));
  EXPECT_EQ(1, accept_conn);
  int reuseport = 0;
  len = sizeof(reuseport);
  ASSERT_EQ(0, ::getsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len));
  EXPECT_NE(0, reuseport);
  ::close(*fd);
}

TEST(CreateListenFdTest, TwiceOnTheSamePortWorks) {
  auto addr = parseIp("127.0.0.1", 0);
  ASSERT_TRUE(addr.has_value());
  Result<int> first = createListenFd(*addr);
  ASSERT_TRUE(first.has_value()) << first.error().toString();
  uint16_t port = portOf(boundAddress(*first));
  auto same = parseIp("127.0.0.1", port);
  Result<int> second = createListenFd(*same);
  ASSERT_TRUE(second.has_value()) << second.error().toString();
  EXPECT_EQ(port, portOf(boundAddress(*second)));
  ::close(*first);
  ::close(*second);
}

TEST(CreateListenFdTest, Ipv6Loopback) {
  if (!ipv6Available()) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  auto addr = parseIp("::1", 0);
  ASSERT_TRUE(addr.has_value());
  Result<int> fd = createListenFd(*addr);
  ASSERT_TRUE(fd.has_value()) << fd.error().toString();
  sockaddr_storage bound = boundAddress(*fd);
  EXPECT_EQ(AF_INET6, bound.ss_family);
  EXPECT_EQ("[::1]:" + std::to_string(portOf(bound)), toString(bound));
  ::close(*fd);
}

TEST(CreateListenFdTest, BindErrorIsReportedWithTheAddress) {
  // A port held by a socket without SO_REUSEPORT cannot be shared.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(0, ::bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  ASSERT_EQ(0, ::listen(holder, 1));
  sockaddr_storage held{};
  socklen_t len = sizeof(held);
  ASSERT_EQ(0, ::getsockname(holder, reinterpret_cast<sockaddr*>(&held), &len));
  uint16_t port = portOf(held);

  auto addr = parseIp("127.0.0.1", port);
  Result<int> fd = createListenFd(*addr);
  ASSERT_FALSE(fd.has_value());
  EXPECT_EQ("bind 127.0.0.1:" + std::to_string(port) + ": Address already in use", fd.error().message);
  ::close(holder);
}

TEST(CreateListenFdTest, NonLocalAddressFails) {
  // 192.0.2.0/24 (TEST-NET-1) is not assigned to this host.
  auto addr = parseIp("192.0.2.1", 0);
  Result<int> fd = createListenFd(*addr);
  if (fd.has_value()) {
    ::close(*fd);
    GTEST_SKIP() << "host allows non-local binds";
  }
  EXPECT_TRUE(fd.error().message.starts_with("bind 192.0.2.1:0: ")) << fd.error().message;
}

struct Sink : event::TcpSocketCallbacks {
  void onData(const char* data, size_t len) override { received.append(data, len); }
  void onEof() override { ++eofs; }
  void onError(int) override { ++errors; }
  void onConnected() override { connected = true; }
  std::string received;
  int eofs{0};
  int errors{0};
  bool connected{false};
};

// The fd serves a TcpListener; two listeners on the same port (two workers) both accept.
TEST(CreateListenFdTest, ServesTcpListenersSharingThePort) {
  test::TestLoop loop;
  auto addr = parseIp("127.0.0.1", 0);
  Result<int> fd1 = createListenFd(*addr);
  ASSERT_TRUE(fd1.has_value());
  sockaddr_storage bound = boundAddress(*fd1);
  Result<int> fd2 = createListenFd(bound);
  ASSERT_TRUE(fd2.has_value());

  std::vector<event::TcpSocketPtr> accepted;
  std::string error;
  auto onAccept = [&](event::TcpSocketPtr s) { accepted.push_back(std::move(s)); };
  auto l1 = event::TcpListener::create(loop.dispatcher(), *fd1, onAccept, &error);
  ASSERT_NE(nullptr, l1) << error;
  auto l2 = event::TcpListener::create(loop.dispatcher(), *fd2, onAccept, &error);
  ASSERT_NE(nullptr, l2) << error;

  std::vector<std::unique_ptr<event::TcpSocket>> clients;
  std::vector<std::unique_ptr<Sink>> sinks;
  for (int i = 0; i < 8; ++i) {
    sinks.push_back(std::make_unique<Sink>());
    clients.push_back(std::make_unique<event::TcpSocket>(loop.dispatcher()));
    clients.back()->setCallbacks(sinks.back().get());
    ASSERT_EQ(0, clients.back()->connect(reinterpret_cast<const sockaddr*>(&bound)));
  }
  ASSERT_TRUE(loop.runUntil([&] { return accepted.size() == 8; }));
  Sink server_sink;
  accepted[0]->setCallbacks(&server_sink);
  accepted[0]->readStart();
  for (auto& c : clients) {
    c->write("x");
  }
  ASSERT_TRUE(loop.runUntil([&] { return !server_sink.received.empty(); }));
  clients.clear();
  accepted.clear();
  l1.reset();
  l2.reset();
}

}  // namespace
}  // namespace levee::network
