#pragma once
// The HTTP filter interfaces. A connection manager runs one filter chain per *stream* (one
// request/response exchange), so HTTP/2 can reuse the same chain with a second codec.
// Pure interfaces: implementations live in proxy/http (callbacks) and filters/ or proxy/router.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace levee::event {
class Dispatcher;
}

namespace levee::http {

struct RequestHead;
struct ResponseHead;
struct StreamInfo;

enum class FilterHeadersStatus {
  // Go on to the next filter.
  Continue,
  // Stop here; the filter MUST later call continueDecoding(), sendLocalReply() or resetStream().
  StopIteration,
};

enum class FilterDataStatus {
  Continue,
  // The filter consumed the data (e.g. the router wrote it upstream or buffered it).
  StopIterationNoBuffer,
};

// Implemented by the stream (connection manager). Outlives the filters of the stream.
// Thread: the stream's worker; never call after the filter's onDestroy().
class DecoderFilterCallbacks {
public:
  virtual ~DecoderFilterCallbacks() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual const RequestHead& requestHead() const = 0;
  virtual StreamInfo& streamInfo() = 0;
  // Resumes iteration after StopIteration.
  virtual void continueDecoding() = 0;
  // One path for every locally generated response (DESIGN section 2): JSON body with
  // `reason`, header x-levee-reason. If the response already started, resets the stream.
  // `retry_after_s` > 0 sets Retry-After (503/429 without it get "1"). `extra_headers` are
  // complete "name: value\r\n" lines added as they are.
  virtual void sendLocalReply(int status, std::string_view reason, std::string_view detail,
                              uint32_t retry_after_s = 0, std::string_view extra_headers = {}) = 0;
  // Terminal filter's response path. `head` is forwarded (hop-by-hop headers removed).
  virtual void encodeHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void encode1xx(ResponseHead& head) = 0;
  virtual void encodeData(const char* data, size_t len, bool end_stream) = 0;
  // After a 101 response: raw bytes both ways (decodeData delivers downstream bytes).
  virtual void switchToTunnel() = 0;
  // Half-close of a tunnel's upstream side.
  virtual void encodeTunnelEof() = 0;
  // Aborts: the downstream connection is closed (a truncated response is never completed).
  virtual void resetStream() = 0;
  // Backpressure: stop/resume reading the downstream connection (upstream write queue high).
  virtual void readDisable(bool disable) = 0;
  virtual bool downstreamAboveHighWatermark() const = 0;
};

class DecoderFilter {
public:
  virtual ~DecoderFilter() = default;
  virtual void setDecoderCallbacks(DecoderFilterCallbacks& cb) = 0;
  virtual FilterHeadersStatus decodeHeaders(RequestHead& head, bool end_stream) = 0;
  virtual FilterDataStatus decodeData(const char* data, size_t len, bool end_stream) = 0;
  // A tunnel's downstream side sent EOF.
  virtual void decodeTunnelEof() {}
  // The downstream write queue went above the high watermark (true) or drained (false).
  virtual void onDownstreamWatermark(bool /*above*/) {}
  // Exactly once, before destruction: cancel timers and pool requests; no callbacks afterwards.
  virtual void onDestroy() = 0;
};
using DecoderFilterPtr = std::unique_ptr<DecoderFilter>;

// Builds the filter chain of a new stream (implemented by the server wiring).
class FilterChainFactory {
public:
  virtual ~FilterChainFactory() = default;
  // Appends filters to `out` in order; the last one is terminal (the router).
  virtual void createFilterChain(class FilterChainBuilder& out) = 0;
};

class FilterChainBuilder {
public:
  virtual ~FilterChainBuilder() = default;
  virtual void addDecoderFilter(DecoderFilterPtr filter) = 0;
  // The request the chain is built for (the route is matched once, here, and cached in
  // StreamInfo so per-route filters and the router agree on it).
  virtual const RequestHead& requestHead() const = 0;
  virtual StreamInfo& streamInfo() = 0;
};

}  // namespace levee::http
