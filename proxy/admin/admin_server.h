#pragma once
// A small HTTP/1.1 server for the probe and admin listeners (main loop only). Requests are
// read whole (bounded) and handed to a handler that returns the whole response.

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/event/dispatcher.h"
#include "proxy/event/tcp_socket.h"

namespace levee::admin {

struct AdminResponse;

struct AdminRequest {
  std::string method;
  std::string path;   // without query
  std::string query;  // after '?', may be empty
  std::string authorization;
  std::string content_type;
  std::string body;
  std::string peer;  // IP of the client (audit lines)
  bool body_too_large{false};  // the body exceeded AdminServer::kMaxBody (it was not kept)
  // Completes a response the handler deferred (AdminResponse::deferred). Main loop only; a
  // no-op once the client has gone away. Handlers copy it into their completion callback.
  std::function<void(AdminResponse)> respond_later;
};

struct AdminResponse {
  int status{200};
  std::string content_type{"application/json"};
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // The handler answers later through AdminRequest::respond_later (e.g. POST /admin/reload,
  // which waits for the file to be read off the loop); the connection waits for it.
  bool deferred{false};
};

class AdminServer {
public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;
  // Request bodies above this get 413 (documented in README "Admin API"). A declared
  // Content-Length above it is answered at once, without reading the body.
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
