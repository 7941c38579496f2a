#pragma once
// A small HTTP/1.1 server for the probe and admin listeners (main loop only). Requests are
// read whole (bounded) and handed to a handler that returns the whole response.

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/event/dispatcher.h"
#include "proxy/event/tcp_socket.h"

namespace levee::admin {

struct AdminRequest {
  std::string method;
  std::string path;   // without query
  std::string query;  // after '?', may be empty
  std::string authorization;
  std::string content_type;
  std::string body;
  std::string peer;
  bool body_too_large{false};
};

struct AdminResponse {
  int status{200};
  std::string content_type{"application/json"};
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class AdminServer {
public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;
  static constexpr size_t kMaxBody = 64 * 1024;

  AdminServer(event::Dispatcher& dispatcher, std::string name, Handler handler);
  ~AdminServer();
  // Binds and listens on `fd` (from network::createListenFd).
  bool listen(int fd, std::string* error);

private:
  class Session;
  void onAccept(event::TcpSocketPtr socket);
  void remove(Session* s);

  event::Dispatcher& dispatcher_;
  std::string name_;
  Handler handler_;
  event::TcpListenerPtr listener_;
  std::list<std::unique_ptr<Session>> sessions_;
};

// JSON error body {"error": message} with `status`.
AdminResponse jsonError(int status, std::string_view message);

}  // namespace levee::admin
