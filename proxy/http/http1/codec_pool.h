#pragma once
// Per-worker free list of server codecs: a keep-alive connection holds a codec (parser state
// and header buffers) only while a request is in progress, so idle connections stay small.

#include <memory>
#include <vector>

#include "proxy/http/http1/codec.h"

namespace levee::http::http1 {

class ServerCodecPool {
public:
  static constexpr size_t kMaxFree = 1024;
  std::unique_ptr<ServerCodec> acquire(ServerCodecCallbacks& cb, const CodecLimits& limits) {
    if (free_.empty()) {
      return std::make_unique<ServerCodec>(cb, limits);
    }
    std::unique_ptr<ServerCodec> c = std::move(free_.back());
    free_.pop_back();
    c->reset(cb, limits);
    return c;
  }
  void release(std::unique_ptr<ServerCodec> codec) {
    if (free_.size() < kMaxFree && codec->head().headers.bytes() < 16 * 1024) {
      free_.push_back(std::move(codec));
    }
  }
  size_t freeCount() const { return free_.size(); }

private:
  std::vector<std::unique_ptr<ServerCodec>> free_;
};

}  // namespace levee::http::http1
