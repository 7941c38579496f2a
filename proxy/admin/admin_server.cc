#include "proxy/admin/admin_server.h"

#include "proxy/common/json.h"
#include "proxy/http/header_map.h"
#include "proxy/http/http1/codec.h"

namespace levee::admin {

AdminResponse jsonError(int status, std::string_view message) {
  AdminResponse r;
  r.status = status;
  json::Writer w(r.body);
  w.beginObject().key("error").value(message).key("status").value(status).endObject();
  r.body.push_back('\n');
  return r;
}

class AdminServer::Session final : public event::TcpSocketCallbacks,
                                   public http::http1::ServerCodecCallbacks,
                                   public event::DeferredDeletable {
public:
  Session(AdminServer& server, event::TcpSocketPtr socket)
      : server_(server), socket_(std::move(socket)), codec_(*this, limits()) {
    peer_ = socket_->peerIp();
    socket_->setCallbacks(this);
    socket_->readStart();
    timer_ = server_.dispatcher_.createTimer([this] { close(); });
    timer_->enable(std::chrono::seconds(30));
  }
  std::list<std::unique_ptr<Session>>::iterator self;

  static http::http1::CodecLimits limits() {
    http::http1::CodecLimits l;
    l.max_header_bytes = 16 * 1024;
    l.max_headers = 64;
    l.max_body_bytes = 0;  // checked here to answer 413 with our JSON
    return l;
  }

  void onData(const char* data, size_t len) override {
    if (lingering_) {
      return;  // the rest of a refused body: read and dropped
    }
    size_t consumed = codec_.dispatch(data, len);
    if (closed_) {
      return;
    }
    if (consumed < len && codec_.paused()) {
      pending_.append(data + consumed, len - consumed);
    }
  }
  void onEof() override { close(); }
  void onError(int) override { close(); }

  void onRequestHead(http::RequestHead& head, bool end_stream) override {
    req_ = AdminRequest{};
    req_.method = head.method;
    std::string_view target = head.target;
    auto q = target.find('?');
    req_.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
      req_.query = std::string(target.substr(q + 1));
    }
    req_.authorization = std::string(head.headers.get("authorization"));
    req_.content_type = std::string(head.headers.get("content-type"));
    req_.peer = peer_;
    keep_alive_ = head.keep_alive;
    if (head.has_content_length && head.content_length > kMaxBody) {
      // Answer now (the handler still routes, authorizes and audits) and close: the body is
      // never read.
      req_.body_too_large = true;
      keep_alive_ = false;
      respond();
      return;
    }
    if (end_stream) {
      respond();
    }
  }
  void onRequestBody(const char* data, size_t len) override {
    if (closed_ || req_.body_too_large) {
      return;
    }
    if (req_.body.size() + len > kMaxBody) {
      req_.body_too_large = true;  // a chunked body grew too large: answer now, then close
      req_.body.clear();
      keep_alive_ = false;
      respond();
      return;
    }
    req_.body.append(data, len);
  }
  void onRequestBodyEnd() override {
    if (!closed_ && !req_.body_too_large) {
      respond();
    }
  }
  void onCodecError(const http::http1::CodecError& error) override {
    AdminResponse r = jsonError(error.status, error.reason);
    write(r, false);
    close();
  }

private:
  void respond() {
    std::weak_ptr<bool> alive = alive_;
    Session* session = this;
    uint64_t serial = ++serial_;
    req_.respond_later = [alive, session, serial](AdminResponse r) {
      auto a = alive.lock();
      if (a && *a && session->serial_ == serial && session->waiting_) {
        session->waiting_ = false;
        session->finish(r);
      }
    };
    AdminResponse r = server_.handler_(req_);
    if (r.deferred) {
      waiting_ = true;  // the codec stays paused until respond_later runs
      return;
    }
    finish(r);
  }

  void finish(const AdminResponse& r) {
    bool head = req_.method == "HEAD";
    write(r, keep_alive_ && !head);
    if (req_.body_too_large) {
      linger();
      return;
    }
    if (!keep_alive_) {
      close();
      return;
    }
    codec_.resume();
    if (!pending_.empty()) {
      std::string p;
      p.swap(pending_);
      onData(p.data(), p.size());
    }
  }

  void write(const AdminResponse& r, bool keep_alive) {
    std::string out;
    out.reserve(r.body.size() + 256);
    out += "HTTP/1.1 " + std::to_string(r.status) + " ";
    out += http::reasonPhrase(r.status);
    out += "\r\ncontent-type: " + r.content_type;
    out += "\r\ncontent-length: " + std::to_string(r.body.size());
    out += "\r\ncache-control: no-store";
    for (const auto& [k, v] : r.headers) {
      out += "\r\n" + k + ": " + v;
    }
    if (!keep_alive) {
      out += "\r\nconnection: close";
    }
    out += "\r\n\r\n";
    if (req_.method != "HEAD") {
      out += r.body;
    }
    socket_->write(out);
  }

  // After answering a body we did not read: send FIN, keep reading (and dropping) for a while
  // before closing. Closing with unread bytes in the receive buffer makes the kernel send RST,
  // which can destroy the 413 before the client reads it.
  void linger() {
    lingering_ = true;
    socket_->shutdownWrite();
    timer_->enable(std::chrono::seconds(2));
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    *alive_ = false;
    timer_->disable();
    socket_->closeAfterFlush();
    server_.remove(this);
  }

  AdminServer& server_;
  event::TcpSocketPtr socket_;
  http::http1::ServerCodec codec_;
  event::TimerPtr timer_;
  AdminRequest req_;
  std::string pending_;
  std::string peer_;
  bool keep_alive_{true};
  bool closed_{false};
  bool waiting_{false};  // a deferred response is outstanding
  bool lingering_{false};
  uint64_t serial_{0};
  // Tells deferred completions whether this session still exists (they hold a weak_ptr).
  std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
};

AdminServer::AdminServer(event::Dispatcher& dispatcher, std::string name, Handler handler)
    : dispatcher_(dispatcher), name_(std::move(name)), handler_(std::move(handler)) {}

AdminServer::~AdminServer() = default;

bool AdminServer::listen(int fd, std::string* error) {
  listener_ = event::TcpListener::create(
      dispatcher_, fd, [this](event::TcpSocketPtr s) { onAccept(std::move(s)); }, error);
  return listener_ != nullptr;
}

void AdminServer::onAccept(event::TcpSocketPtr socket) {
  auto s = std::make_unique<Session>(*this, std::move(socket));
  Session* raw = s.get();
  sessions_.push_back(std::move(s));
  raw->self = std::prev(sessions_.end());
}

void AdminServer::remove(Session* s) {
  auto it = s->self;
  std::unique_ptr<Session> owned = std::move(*it);
  sessions_.erase(it);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace levee::admin
