#include "proxy/event/dns.h"

#include <netinet/in.h>
#include <uv.h>

#include <cstring>

namespace levee::event {
namespace {

struct Lookup {
  uv_getaddrinfo_t req;
  std::weak_ptr<char> alive;
  DnsResolver::Callback cb;
  uint16_t port;
};

}  // namespace

DnsResolver::~DnsResolver() { alive_.reset(); }

void DnsResolver::resolve(const std::string& host, uint16_t port, Callback cb) {
  auto lookup = std::make_unique<Lookup>();
  lookup->alive = alive_;
  lookup->cb = std::move(cb);
  lookup->port = port;
  lookup->req.data = lookup.get();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(
      dispatcher_.loop(), &lookup->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        std::unique_ptr<Lookup> self(static_cast<Lookup*>(req->data));  // adopt back from libuv
        std::vector<sockaddr_storage> out;
        std::string error;
        if (status != 0) {
          error = uv_strerror(status);
        }
        for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
          sockaddr_storage ss{};
          std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
          if (ss.ss_family == AF_INET) {
            reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(self->port);
          } else if (ss.ss_family == AF_INET6) {
            reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(self->port);
          } else {
            continue;
          }
          bool dup = false;
          for (auto& o : out) {
            dup = dup || std::memcmp(&o, &ss, sizeof(ss)) == 0;
          }
          if (!dup) {
            out.push_back(ss);
          }
        }
        uv_freeaddrinfo(res);
        if (self->alive.expired()) {
          return;
        }
        self->cb(std::move(out), std::move(error));
      },
      host.c_str(), nullptr, &hints);
  if (rc != 0) {
    Callback failed = std::move(lookup->cb);
    failed({}, uv_strerror(rc));
    return;
  }
  lookup.release();  // owned by libuv until the callback
}

}  // namespace levee::event
