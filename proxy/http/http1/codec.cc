#include "proxy/http/http1/codec.h"

#include <llhttp.h>

#include <charconv>

namespace levee::http::http1 {
namespace {

// RFC 9110 5.1 token characters (header names).
bool isTokenChar(unsigned char c) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         kExtra.find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 9110 5.5: field-value = *( VCHAR / obs-text / SP / HTAB ); no CTLs.
bool isValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

template <typename Codec>
Codec* self(llhttp_t* p) {
  return static_cast<Codec*>(p->data);
}

}  // namespace

// === impl ServerCodec ===

struct ServerCodec::Parser {
  llhttp_t parser;
};

ServerCodec::ServerCodec(ServerCodecCallbacks& cb, const CodecLimits& limits)
    : parser_(std::make_unique<Parser>()), cb_(&cb), limits_(limits) {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = [](llhttp_t* p) { return self<ServerCodec>(p)->onMessageBegin(); };
    s.on_url = [](llhttp_t* p, const char* at, size_t n) { return self<ServerCodec>(p)->onUrl(at, n); };
    s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      return self<ServerCodec>(p)->onHeaderField(at, n);
    };
    s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      return self<ServerCodec>(p)->onHeaderValue(at, n);
    };
    s.on_headers_complete = [](llhttp_t* p) { return self<ServerCodec>(p)->onHeadersComplete(); };
    s.on_body = [](llhttp_t* p, const char* at, size_t n) { return self<ServerCodec>(p)->onBody(at, n); };
    s.on_message_complete = [](llhttp_t* p) { return self<ServerCodec>(p)->onMessageComplete(); };
    return s;
  }();
  // One settings table for all parsers (llhttp only reads it).
  llhttp_init(&parser_->parser, HTTP_REQUEST, &kSettings);
  parser_->parser.data = this;
  settings_ = &kSettings;
}

ServerCodec::~ServerCodec() = default;

void ServerCodec::reset(ServerCodecCallbacks& cb, const CodecLimits& limits) {
  cb_ = &cb;
  limits_ = limits;
  llhttp_init(&parser_->parser, HTTP_REQUEST, static_cast<const llhttp_settings_t*>(settings_));
  parser_->parser.data = this;
  head_.clear();
  header_bytes_ = 0;
  body_bytes_ = 0;
  last_was_value_ = false;
  in_head_ = false;
  in_message_ = false;
  has_body_ = false;
  paused_ = false;
  upgraded_ = false;
  stopped_ = false;
  errored_ = false;
  scanning_head_ = true;
  scan_cr_after_lf_ = false;
  scan_prev_ = 0;
  scan_lines_ = 0;
}

int ServerCodec::fail(int status, std::string_view reason, std::string detail) {
  errored_ = true;
  cb_->onCodecError(CodecError{status, reason, std::move(detail)});
  return -1;
}

bool ServerCodec::addHeaderBytes(size_t n) {
  header_bytes_ += n;
  return header_bytes_ <= limits_.max_header_bytes;
}

int ServerCodec::onMessageBegin() {
  head_.clear();
  header_bytes_ = 0;
  body_bytes_ = 0;
  last_was_value_ = false;
  in_head_ = true;
  in_message_ = true;
  has_body_ = false;
  return stopped_ ? -1 : 0;
}

int ServerCodec::onUrl(const char* at, size_t len) {
  if (!addHeaderBytes(len)) {
    return fail(431, "header_too_large", "request line too long");
  }
  head_.target.append(at, len);
  return 0;
}

int ServerCodec::onHeaderField(const char* at, size_t len) {
  // ": " and CRLF are counted once per header, not once per piece llhttp hands us.
  bool starts_header = last_was_value_ || head_.headers.size() == 0;
  if (!addHeaderBytes(len + (starts_header ? 4 : 0))) {
    return fail(431, "header_too_large", "request headers too large");
  }
  for (size_t i = 0; i < len; ++i) {
    if (!isTokenChar(static_cast<unsigned char>(at[i]))) {
      return fail(400, "bad_request", "invalid header name");
    }
  }
  if (last_was_value_ || head_.headers.size() == 0) {
    if (head_.headers.size() >= limits_.max_headers) {
      return fail(431, "header_too_large", "too many request headers");
    }
    head_.headers.beginHeader();
  }
  last_was_value_ = false;
  head_.headers.appendToLastName({at, len});
  return 0;
}

int ServerCodec::onHeaderValue(const char* at, size_t len) {
  if (!addHeaderBytes(len)) {
    return fail(431, "header_too_large", "request headers too large");
  }
  for (size_t i = 0; i < len; ++i) {
    if (!isValueChar(static_cast<unsigned char>(at[i]))) {
      return fail(400, "bad_request", "invalid header value");
    }
  }
  last_was_value_ = true;
  head_.headers.appendToLastValue({at, len});
  return 0;
}

int ServerCodec::onHeadersComplete() {
  llhttp_t& p = parser_->parser;
  in_head_ = false;
  head_.method = llhttp_method_name(static_cast<llhttp_method_t>(p.method));
  head_.version_minor = p.http_minor;
  if (p.http_major != 1) {
    return fail(400, "bad_request", "unsupported HTTP version");
  }
  head_.keep_alive = llhttp_should_keep_alive(&p) != 0;
  head_.chunked = (p.flags & F_CHUNKED) != 0;
  head_.has_content_length = (p.flags & F_CONTENT_LENGTH) != 0;
  head_.content_length = head_.has_content_length ? p.content_length : 0;
  head_.upgrade = p.upgrade != 0;
  // Differing duplicate Content-Length values, or Content-Length with Transfer-Encoding, are
  // rejected by llhttp in strict mode (request smuggling); a Transfer-Encoding that is not
  // chunked-last is too. We additionally reject a Transfer-Encoding we could not frame.
  // We only frame `chunked`: any other transfer-coding (gzip, chunked) would reach the
  // upstream decoded into an undeclared encoding, so it is refused.
  if (head_.headers.has("transfer-encoding") &&
      (!head_.chunked || !equalsIgnoreCase(head_.headers.get("transfer-encoding"), "chunked"))) {
    return fail(400, "bad_request", "unsupported transfer-encoding");
  }
  if (head_.target.empty() || (head_.target[0] != '/' && head_.target != "*")) {
    // Absolute-form targets are for forward proxies; a sidecar expects origin-form.
    if (!(p.method == HTTP_CONNECT)) {
      return fail(400, "bad_request", "request target must be origin-form");
    }
  }
  std::string_view expect = head_.headers.get("expect");
  head_.expect_continue = equalsIgnoreCase(expect, "100-continue");
  if (limits_.max_body_bytes != 0 && head_.has_content_length &&
      head_.content_length > limits_.max_body_bytes) {
    return fail(413, "body_too_large", "content-length above the limit");
  }
  has_body_ = head_.chunked || head_.content_length > 0;
  cb_->onRequestHead(head_, !has_body_);
  if (stopped_) {
    return -1;
  }
  return 0;
}

int ServerCodec::onBody(const char* at, size_t len) {
  body_bytes_ += len;
  if (limits_.max_body_bytes != 0 && body_bytes_ > limits_.max_body_bytes) {
    return fail(413, "body_too_large", "request body above the limit");
  }
  cb_->onRequestBody(at, len);
  return stopped_ ? -1 : 0;
}

int ServerCodec::onMessageComplete() {
  in_message_ = false;
  if (has_body_) {
    cb_->onRequestBodyEnd();
  }
  if (stopped_) {
    return -1;
  }
  if (head_.upgrade) {
    upgraded_ = true;
    return 0;  // llhttp returns HPE_PAUSED_UPGRADE itself
  }
  // One request at a time: pause until the response is done (pipelining keeps order).
  paused_ = true;
  scanning_head_ = true;
  scan_prev_ = 0;
  scan_lines_ = 0;
  scan_cr_after_lf_ = false;
  return HPE_PAUSED;
}

bool ServerCodec::scanHeadForObsFold(const char* data, size_t len) {
  // llhttp accepts obs-fold (a header line starting with SP/HT, RFC 9112 5.2); a proxy must
  // not (request smuggling), so the head's bytes are scanned until its empty line.
  for (size_t i = 0; i < len && scanning_head_; ++i) {
    char c = data[i];
    if (scan_prev_ == '\n') {
      if ((c == ' ' || c == '\t') && scan_lines_ > 0) {
        return false;
      }
      if (c == '\r') {
        scan_cr_after_lf_ = true;
        scan_prev_ = c;
        continue;
      }
    }
    if (c == '\n') {
      if (scan_cr_after_lf_ && scan_lines_ > 0) {
        scanning_head_ = false;  // end of head: the body is not ours to scan
      }
      ++scan_lines_;
    }
    if (c != '\r') {
      scan_cr_after_lf_ = false;
    }
    scan_prev_ = c;
  }
  return true;
}

size_t ServerCodec::dispatch(const char* data, size_t len) {
  if (stopped_ || errored_ || paused_ || upgraded_) {
    return 0;
  }
  if (scanning_head_ && !scanHeadForObsFold(data, len)) {
    fail(400, "bad_request", "obs-fold in request headers");
    return 0;
  }
  llhttp_errno_t err = llhttp_execute(&parser_->parser, data, len);
  if (err == HPE_OK) {
    return len;
  }
  const char* pos = llhttp_get_error_pos(&parser_->parser);
  size_t consumed = (pos != nullptr && pos >= data && pos <= data + len) ? static_cast<size_t>(pos - data) : len;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    if (err == HPE_PAUSED_UPGRADE) {
      upgraded_ = true;
    }
    return consumed;
  }
  if (!errored_ && !stopped_) {
    errored_ = true;
    cb_->onCodecError(CodecError{400, "bad_request",
                                std::string(llhttp_errno_name(err)) + ": " +
                                    llhttp_get_error_reason(&parser_->parser)});
  }
  return consumed;
}

void ServerCodec::resume() {
  if (paused_) {
    paused_ = false;
    llhttp_resume(&parser_->parser);
  }
}

// === impl ClientCodec ===

struct ClientCodec::Parser {
  llhttp_t parser;
};

ClientCodec::ClientCodec(ClientCodecCallbacks& cb, uint32_t max_header_bytes)
    : parser_(std::make_unique<Parser>()), cb_(cb), max_header_bytes_(max_header_bytes) {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = [](llhttp_t* p) { return self<ClientCodec>(p)->onMessageBegin(); };
    s.on_status = [](llhttp_t* p, const char* at, size_t n) { return self<ClientCodec>(p)->onStatus(at, n); };
    s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      return self<ClientCodec>(p)->onHeaderField(at, n);
    };
    s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      return self<ClientCodec>(p)->onHeaderValue(at, n);
    };
    s.on_headers_complete = [](llhttp_t* p) { return self<ClientCodec>(p)->onHeadersComplete(); };
    s.on_body = [](llhttp_t* p, const char* at, size_t n) { return self<ClientCodec>(p)->onBody(at, n); };
    s.on_message_complete = [](llhttp_t* p) { return self<ClientCodec>(p)->onMessageComplete(); };
    return s;
  }();
  llhttp_init(&parser_->parser, HTTP_RESPONSE, &kSettings);
  parser_->parser.data = this;
}

ClientCodec::~ClientCodec() = default;

void ClientCodec::expectResponse(bool head_request) { head_request_ = head_request; }

int ClientCodec::fail(std::string detail) {
  errored_ = true;
  cb_.onCodecError(CodecError{502, "upstream_protocol_error", std::move(detail)});
  return -1;
}

int ClientCodec::onMessageBegin() {
  head_.clear();
  header_bytes_ = 0;
  last_was_value_ = false;
  in_message_ = true;
  has_body_ = false;
  informational_ = false;
  return stopped_ ? -1 : 0;
}

int ClientCodec::onStatus(const char*, size_t len) {
  header_bytes_ += len;
  return 0;
}

int ClientCodec::onHeaderField(const char* at, size_t len) {
  header_bytes_ += len + 4;
  if (header_bytes_ > max_header_bytes_) {
    return fail("upstream response headers too large");
  }
  if (last_was_value_ || head_.headers.size() == 0) {
    head_.headers.beginHeader();
  }
  last_was_value_ = false;
  head_.headers.appendToLastName({at, len});
  return 0;
}

int ClientCodec::onHeaderValue(const char* at, size_t len) {
  header_bytes_ += len;
  if (header_bytes_ > max_header_bytes_) {
    return fail("upstream response headers too large");
  }
  last_was_value_ = true;
  head_.headers.appendToLastValue({at, len});
  return 0;
}

int ClientCodec::onHeadersComplete() {
  llhttp_t& p = parser_->parser;
  head_.status = p.status_code;
  if (head_.status < 100 || head_.status > 599) {
    return fail("invalid status code " + std::to_string(head_.status));
  }
  head_.version_minor = p.http_minor;
  head_.keep_alive = llhttp_should_keep_alive(&p) != 0;
  head_.chunked = (p.flags & F_CHUNKED) != 0;
  head_.has_content_length = (p.flags & F_CONTENT_LENGTH) != 0;
  head_.content_length = head_.has_content_length ? p.content_length : 0;
  if (head_.status >= 100 && head_.status < 200 && head_.status != 101) {
    informational_ = true;
    cb_.onInformational(head_);
    return stopped_ ? -1 : 0;
  }
  if (head_.status == 101) {
    upgraded_ = true;
    cb_.onResponseHead(head_, false);
    return stopped_ ? -1 : 2;  // no body; llhttp returns HPE_PAUSED_UPGRADE
  }
  bool no_body = head_request_ || head_.status == 204 || head_.status == 304;
  if (no_body) {
    cb_.onResponseHead(head_, true);
    return stopped_ ? -1 : 1;  // skip body
  }
  // Body until close when neither framing is present.
  has_body_ = head_.chunked || !head_.has_content_length || head_.content_length > 0;
  cb_.onResponseHead(head_, !has_body_);
  return stopped_ ? -1 : 0;
}

int ClientCodec::onBody(const char* at, size_t len) {
  cb_.onResponseBody(at, len);
  return stopped_ ? -1 : 0;
}

int ClientCodec::onMessageComplete() {
  in_message_ = false;
  if (informational_) {
    informational_ = false;
    return stopped_ ? -1 : 0;
  }
  if (has_body_) {
    cb_.onResponseBodyEnd();
  }
  return stopped_ ? -1 : HPE_PAUSED;
}

size_t ClientCodec::dispatch(const char* data, size_t len) {
  if (stopped_ || errored_ || upgraded_) {
    return 0;
  }
  llhttp_t& p = parser_->parser;
  if (llhttp_get_errno(&p) == HPE_PAUSED) {
    llhttp_resume(&p);
  }
  llhttp_errno_t err = llhttp_execute(&p, data, len);
  if (err == HPE_OK) {
    return len;
  }
  const char* pos = llhttp_get_error_pos(&p);
  size_t consumed = (pos != nullptr && pos >= data && pos <= data + len) ? static_cast<size_t>(pos - data) : len;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    return consumed;
  }
  if (!errored_ && !stopped_) {
    fail(std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&p));
  }
  return consumed;
}

bool ClientCodec::onEof() {
  if (!in_message_ || errored_ || stopped_) {
    return false;
  }
  llhttp_t& p = parser_->parser;
  if (llhttp_get_errno(&p) == HPE_PAUSED) {
    llhttp_resume(&p);
  }
  bool was_in = in_message_;
  llhttp_errno_t err = llhttp_finish(&p);
  // on_message_complete pauses the parser (one response at a time), so HPE_PAUSED is success.
  return (err == HPE_OK || err == HPE_PAUSED) && was_in && !in_message_;
}

}  // namespace levee::http::http1
