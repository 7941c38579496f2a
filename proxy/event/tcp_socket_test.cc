#include "proxy/event/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_common/test_loop.h"

namespace levee::event {
namespace {

// The event layer cannot link proxy/network (it is the layer above), so the listening fd is
// made here exactly as network::createListenFd makes it (address_test.cc covers that function
// with a TcpListener too): SO_REUSEADDR + SO_REUSEPORT, bound to 127.0.0.1:0.
int listenFdOnEphemeralPort(sockaddr_in* bound) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  EXPECT_EQ(0, ::listen(fd, 128));
  socklen_t len = sizeof(*bound);
  EXPECT_EQ(0, ::getsockname(fd, reinterpret_cast<sockaddr*>(bound), &len));
  EXPECT_NE(0, bound->sin_port);
  return fd;
}

// Records everything a socket reports.
struct Recorder : TcpSocketCallbacks {
  void onData(const char* data, size_t len) override {
    received.append(data, len);
    if (on_data) {
      on_data();
    }
  }
  void onEof() override { ++eofs; }
  void onError(int err) override {
    ++errors;
    last_error = err;
  }
  void onWriteDrained() override { ++drained; }
  void onConnected() override { ++connected; }
  size_t callbacks() const { return received.size() + static_cast<size_t>(eofs + errors + drained + connected); }

  std::string received;
  int eofs{0};
  int errors{0};
  int last_error{0};
  int drained{0};
  int connected{0};
  std::function<void()> on_data;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

class TcpSocketTest : public testing::Test {
protected:
  void SetUp() override {
    int fd = listenFdOnEphemeralPort(&addr_);
    std::string error;
    listener_ = TcpListener::create(
        dispatcher(), fd, [this](TcpSocketPtr s) { accepted_.push_back(std::move(s)); }, &error);
    ASSERT_NE(nullptr, listener_) << error;
  }
  void TearDown() override {
    // Sockets and the listener go before the loop (the fixture's loop_ is destroyed last).
    client_.reset();
    accepted_.clear();
    listener_.reset();
  }

  Dispatcher& dispatcher() { return loop_.dispatcher(); }

  // Connects client_ and returns the accepted server side (reading into `server_rec_`).
  TcpSocket& connectPair() {
    client_ = std::make_unique<TcpSocket>(dispatcher());
    client_->setCallbacks(&client_rec_);
    EXPECT_EQ(0, client_->connect(reinterpret_cast<const sockaddr*>(&addr_)));
    EXPECT_TRUE(loop_.runUntil([&] { return client_rec_.connected == 1 && accepted_.size() == 1; }));
    TcpSocket& server = *accepted_.front();
    server.setCallbacks(&server_rec_);
    server.readStart();
    client_->readStart();
    return server;
  }

  test::TestLoop loop_;
  sockaddr_in addr_{};
  TcpListenerPtr listener_;
  std::vector<TcpSocketPtr> accepted_;
  TcpSocketPtr client_;
  Recorder client_rec_;
  Recorder server_rec_;
};

TEST_F(TcpSocketTest, ConnectAndAccept) {
  TcpSocket& server = connectPair();
  EXPECT_TRUE(client_->isOpen());
  EXPECT_TRUE(server.isOpen());
  EXPECT_TRUE(server.reading());
  EXPECT_EQ("127.0.0.1", server.peerIp());
  EXPECT_EQ("127.0.0.1", client_->peerIp());
  EXPECT_EQ(0, client_rec_.errors);
}

TEST_F(TcpSocketTest, ConnectToAClosedPortReportsAnError) {
  listener_.reset();
  loop_.runNoWait();
  // Nothing listens on the port any more.
  client_ = std::make_unique<TcpSocket>(dispatcher());
  client_->setCallbacks(&client_rec_);
  ASSERT_EQ(0, client_->connect(reinterpret_cast<const sockaddr*>(&addr_)));
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.errors == 1; }));
  EXPECT_EQ(0, client_rec_.connected);
  EXPECT_LT(client_rec_.last_error, 0);
}

TEST_F(TcpSocketTest, SmallWritesBothWays) {
  TcpSocket& server = connectPair();
  client_->write("ping");
  client_->write(std::string_view("-1"));
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.received == "ping-1"; }));
  Slice slices[] = {{"po", 2}, {"ng", 2}};
  server.writev(slices, 2);
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.received == "pong"; }));
  EXPECT_EQ(0U, server.writeQueueBytes());
}

TEST_F(TcpSocketTest, OneMebibyteArrivesIntact) {
  connectPair();
  const std::string data = pattern(1024 * 1024);
  // In pieces, as a proxy would forward them.
  for (size_t off = 0; off < data.size(); off += 10000) {
    client_->write(data.data() + off, std::min<size_t>(10000, data.size() - off));
  }
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.received.size() >= data.size(); }));
  EXPECT_TRUE(server_rec_.received == data) << "payload differs";
  ASSERT_TRUE(loop_.runUntil([&] { return client_->writeQueueBytes() == 0; }));
  EXPECT_EQ(0, client_rec_.errors);
  EXPECT_EQ(0, server_rec_.errors);
}

TEST_F(TcpSocketTest, HighWatermarkThenDrained) {
  TcpSocket& server = connectPair();
  server.readStop();  // the peer does not read: the client's queue grows
  const std::string chunk = pattern(1024 * 1024);
  for (int i = 0; i < 8 && !client_->aboveHighWatermark(); ++i) {
    client_->write(chunk);
  }
  ASSERT_TRUE(client_->aboveHighWatermark());
  server.readStart();
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.drained == 1; }));
  EXPECT_LE(client_->writeQueueBytes(), TcpSocket::kLowWatermark);
  ASSERT_TRUE(loop_.runUntil([&] { return client_->writeQueueBytes() == 0; }));
  EXPECT_EQ(1, client_rec_.drained);
  size_t sent = client_rec_.received.size();  // nothing came back
  EXPECT_EQ(0U, sent);
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.received.size() % chunk.size() == 0 && !server_rec_.received.empty(); }));
}

TEST_F(TcpSocketTest, HalfCloseDeliversEofAndKeepsTheOtherDirection) {
  TcpSocket& server = connectPair();
  client_->write("request");
  client_->shutdownWrite();
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.eofs == 1; }));
  EXPECT_EQ("request", server_rec_.received);  // data before FIN
  EXPECT_FALSE(server.reading());
  // Writes after shutdownWrite() are ignored.
  client_->write("late");
  // The server can still answer on its open half.
  server.write("response");
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.received == "response"; }));
  server.shutdownWrite();
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1; }));
  EXPECT_EQ("request", server_rec_.received);
  EXPECT_EQ(0, client_rec_.errors);
  EXPECT_EQ(0, server_rec_.errors);
}

TEST_F(TcpSocketTest, HalfCloseAfterALargeWriteSendsEverythingFirst) {
  connectPair();
  const std::string data = pattern(3 * 1024 * 1024);
  client_->write(data);
  client_->shutdownWrite();
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.eofs == 1; }));
  EXPECT_EQ(data.size(), server_rec_.received.size());
  EXPECT_TRUE(server_rec_.received == data);
}

TEST_F(TcpSocketTest, CloseAfterFlushDeliversQueuedBytes) {
  TcpSocket& server = connectPair();
  const std::string data = pattern(4 * 1024 * 1024);
  server.write(data);
  size_t server_callbacks = server_rec_.callbacks();
  server.closeAfterFlush();
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1 || client_rec_.errors > 0; }));
  EXPECT_EQ(0, client_rec_.errors);
  EXPECT_EQ(data.size(), client_rec_.received.size());
  EXPECT_TRUE(client_rec_.received == data);
  EXPECT_FALSE(server.isOpen());
  // No callbacks on the closing side, even though the client wrote meanwhile.
  EXPECT_EQ(server_callbacks, server_rec_.callbacks());
}

TEST_F(TcpSocketTest, CloseAfterFlushWithNothingQueuedClosesNow) {
  TcpSocket& server = connectPair();
  server.closeAfterFlush();
  EXPECT_FALSE(server.isOpen());
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1; }));
}

TEST_F(TcpSocketTest, CloseDropsQueuedBytesAndStopsCallbacks) {
  TcpSocket& server = connectPair();
  server.write("never sent? maybe");
  server.close();
  EXPECT_FALSE(server.isOpen());
  EXPECT_EQ(0U, server.writeQueueBytes());
  server.write("ignored after close");
  server.close();  // idempotent
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1 || client_rec_.errors == 1; }));
  EXPECT_EQ(0U, server_rec_.callbacks());
}

TEST_F(TcpSocketTest, ResetCloseGivesThePeerAnError) {
  TcpSocket& server = connectPair();
  server.close(/*reset=*/true);
  EXPECT_FALSE(server.isOpen());
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.errors == 1 || client_rec_.eofs == 1; }));
  EXPECT_EQ(1, client_rec_.errors);
}

TEST_F(TcpSocketTest, DestroyingASocketWithWritesInFlightIsSafe) {
  connectPair();
  accepted_.front()->readStop();  // keep the client's write in flight
  const std::string data = pattern(8 * 1024 * 1024);
  client_->write(data);
  bool destroyed = false;
  // Posted callbacks run in the poll phase, after the prepare phase handed the queue to libuv.
  dispatcher().post([&] {
    EXPECT_GT(client_->writeQueueBytes(), 0U);
    client_.reset();
    destroyed = true;
  });
  ASSERT_TRUE(loop_.runUntil([&] { return destroyed; }));
  accepted_.front()->readStart();
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.eofs == 1 || server_rec_.errors == 1; }));
  EXPECT_LT(server_rec_.received.size(), data.size() + 1);
}

TEST_F(TcpSocketTest, DestroyingASocketRightAfterWriteIsSafe) {
  connectPair();
  client_->write("queued, flush scheduled");
  client_.reset();  // the dispatcher's flush list must not keep the dead socket
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.eofs == 1 || server_rec_.errors == 1; }));
}

TEST_F(TcpSocketTest, DestroyingTheServerSideInsideOnDataIsSafe) {
  TcpSocket& server = connectPair();
  (void)server;
  bool destroyed = false;
  server_rec_.on_data = [&] {
    accepted_.clear();
    destroyed = true;
  };
  client_->write("boom");
  ASSERT_TRUE(loop_.runUntil([&] { return destroyed; }));
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1 || client_rec_.errors == 1; }));
}

// Regression test for a fixed bug: TcpSocket::flush() clears flush_scheduled_ while the socket is still in the dispatcher's
// flush list, so close() (run by ~TcpSocket) skips cancelFlush() and the dispatcher later calls
// flush() on the freed socket (heap-use-after-free, seen under ASan in
// Dispatcher::flushSockets <- onUvPrepare). Reached by write() followed by shutdownWrite() or
// closeAfterFlush() (both call flush() directly) and destruction in the same callback; the
// header promises "destroying a TcpSocket at any time is safe".
TEST_F(TcpSocketTest, DestroyAfterWriteAndShutdownWriteIsSafe) {
  connectPair();
  client_->write("hello");
  client_->shutdownWrite();
  client_.reset();
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.eofs == 1 || server_rec_.errors == 1; }));
  EXPECT_EQ("hello", server_rec_.received);
}

// Regression test for a fixed bug: same as above through closeAfterFlush(): write(); closeAfterFlush(); delete -> the
// dispatcher's flush list still points at the deleted socket.
TEST_F(TcpSocketTest, DestroyAfterWriteAndCloseAfterFlushIsSafe) {
  TcpSocket& server = connectPair();
  server.write("bye");
  server.closeAfterFlush();
  accepted_.clear();
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.eofs == 1 || client_rec_.errors == 1; }));
  EXPECT_EQ("bye", client_rec_.received);
}

TEST_F(TcpSocketTest, ReadStopPausesDelivery) {
  TcpSocket& server = connectPair();
  server.readStop();
  EXPECT_FALSE(server.reading());
  client_->write("held");
  loop_.runNoWait(10);
  EXPECT_EQ("", server_rec_.received);
  server.readStart();
  ASSERT_TRUE(loop_.runUntil([&] { return server_rec_.received == "held"; }));
}

TEST_F(TcpSocketTest, ReleaseIdleBuffersKeepsWorking) {
  TcpSocket& server = connectPair();
  server.write("a");
  server.releaseIdleBuffers();  // deferred until flushed
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.received == "a"; }));
  server.releaseIdleBuffers();
  server.write("b");
  ASSERT_TRUE(loop_.runUntil([&] { return client_rec_.received == "ab"; }));
}

TEST_F(TcpSocketTest, ManyConnections) {
  std::vector<std::unique_ptr<TcpSocket>> clients;
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < 20; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    clients.push_back(std::make_unique<TcpSocket>(dispatcher()));
    clients.back()->setCallbacks(recs.back().get());
    ASSERT_EQ(0, clients.back()->connect(reinterpret_cast<const sockaddr*>(&addr_)));
  }
  ASSERT_TRUE(loop_.runUntil([&] { return accepted_.size() == 20; }));
  clients.clear();
}

}  // namespace
}  // namespace levee::event
