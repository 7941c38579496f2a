#pragma once
// HTTP/1.1 codecs on llhttp. The server codec turns downstream bytes into request events; the
// client codec turns upstream bytes into response events. Both are strict: anything llhttp
// rejects, plus the ambiguities listed in parseError(), is an error and the caller closes.
// Callbacks run inside dispatch(); a callback may call stop() to abandon the connection.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/http/header_map.h"

namespace levee::http::http1 {

struct CodecLimits {
  uint32_t max_header_bytes{60 * 1024};
  uint32_t max_headers{100};
  uint64_t max_body_bytes{0};  // 0 = unlimited
};

// Why parsing failed, mapped to the local reply by the caller.
struct CodecError {
  int status{400};             // 400, 413 or 431 (server); 502 for upstream responses
  std::string_view reason;     // local-reply reason: bad_request, header_too_large, ...
  std::string detail;          // llhttp's message, for logs
};

class ServerCodecCallbacks {
public:
  virtual ~ServerCodecCallbacks() = default;
  // The head is complete. `end_stream`: the request has no body.
  virtual void onRequestHead(RequestHead& head, bool end_stream) = 0;
  virtual void onRequestBody(const char* data, size_t len) = 0;
  // End of a request that had a body (not called when onRequestHead had end_stream).
  virtual void onRequestBodyEnd() = 0;
  virtual void onCodecError(const CodecError& error) = 0;
};

class ServerCodec {
public:
  ServerCodec(ServerCodecCallbacks& cb, const CodecLimits& limits);
  ~ServerCodec();
  ServerCodec(const ServerCodec&) = delete;
  ServerCodec& operator=(const ServerCodec&) = delete;
  // Makes a pooled codec as good as new for another connection (buffers keep their capacity).
  void reset(ServerCodecCallbacks& cb, const CodecLimits& limits);

  // Parses as much as it can. Returns bytes consumed: fewer than `len` when the codec paused
  // after a complete request (pipelining: the caller keeps the rest and calls resume()+dispatch
  // when the response is done), after an upgrade request (the rest is tunnel data), or after
  // an error/stop.
  size_t dispatch(const char* data, size_t len);
  void resume();
  void stop() { stopped_ = true; }
  bool paused() const { return paused_; }
  bool upgraded() const { return upgraded_; }
  // True between the first byte of a request and the end of its head (header timeout).
  bool inHead() const { return in_head_; }
  // A request has started and not finished (for idle/drain decisions).
  bool inMessage() const { return in_message_; }
  RequestHead& head() { return head_; }

  // llhttp trampolines (public for the C callback table).
  int onMessageBegin();
  int onUrl(const char* at, size_t len);
  int onHeaderField(const char* at, size_t len);
  int onHeaderValue(const char* at, size_t len);
  int onHeadersComplete();
  int onBody(const char* at, size_t len);
  int onMessageComplete();

private:
  int fail(int status, std::string_view reason, std::string detail);
  bool addHeaderBytes(size_t n);
  bool scanHeadForObsFold(const char* data, size_t len);

  struct Parser;
  std::unique_ptr<Parser> parser_;
  const void* settings_{nullptr};
  ServerCodecCallbacks* cb_;
  CodecLimits limits_;
  RequestHead head_;
  uint64_t header_bytes_{0};
  uint64_t body_bytes_{0};
  bool last_was_value_{false};
  bool in_head_{false};
  bool in_message_{false};
  bool has_body_{false};
  bool paused_{false};
  bool upgraded_{false};
  bool stopped_{false};
  bool errored_{false};
  bool scanning_head_{true};
  bool scan_cr_after_lf_{false};
  char scan_prev_{0};
  uint32_t scan_lines_{0};
};

class ClientCodecCallbacks {
public:
  virtual ~ClientCodecCallbacks() = default;
  // A 1xx informational response (100 Continue); 101 goes to onResponseHead with upgraded().
  virtual void onInformational(ResponseHead& head) = 0;
  virtual void onResponseHead(ResponseHead& head, bool end_stream) = 0;
  virtual void onResponseBody(const char* data, size_t len) = 0;
  virtual void onResponseBodyEnd() = 0;
  virtual void onCodecError(const CodecError& error) = 0;
};

class ClientCodec {
public:
  ClientCodec(ClientCodecCallbacks& cb, uint32_t max_header_bytes);
  ~ClientCodec();
  ClientCodec(const ClientCodec&) = delete;
  ClientCodec& operator=(const ClientCodec&) = delete;

  // Call before each request is sent: HEAD responses carry no body.
  void expectResponse(bool head_request);
  size_t dispatch(const char* data, size_t len);
  // The upstream closed: completes a close-delimited body; errors a truncated one.
  // Returns true if a response was completed by the EOF.
  bool onEof();
  void stop() { stopped_ = true; }
  bool upgraded() const { return upgraded_; }
  bool inMessage() const { return in_message_; }
  ResponseHead& head() { return head_; }

  int onMessageBegin();
  int onStatus(const char* at, size_t len);
  int onHeaderField(const char* at, size_t len);
  int onHeaderValue(const char* at, size_t len);
  int onHeadersComplete();
  int onBody(const char* at, size_t len);
  int onMessageComplete();

private:
  int fail(std::string detail);
  struct Parser;
  std::unique_ptr<Parser> parser_;
  ClientCodecCallbacks& cb_;
  uint32_t max_header_bytes_;
  ResponseHead head_;
  uint64_t header_bytes_{0};
  bool last_was_value_{false};
  bool head_request_{false};
  bool informational_{false};
  bool in_message_{false};
  bool has_body_{false};
  bool upgraded_{false};
  bool stopped_{false};
  bool errored_{false};
};

}  // namespace levee::http::http1
