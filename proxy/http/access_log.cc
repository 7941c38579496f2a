#include "proxy/http/access_log.h"

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/periodic_worker.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstring>
#include <ctime>
#include <exception>

#include "proxy/common/json.h"

namespace levee::http {

namespace {

// Queue depth of the log thread: at ~300 bytes a line this bounds the memory held by pending
// lines to a few MiB; beyond it the oldest lines are dropped (overrun_oldest).
constexpr size_t kQueueLines = 8192;
constexpr std::chrono::seconds kFlushInterval{1};

// `"2026-11-23T19:40:01.123Z"` (quotes included: it needs no escaping) into `buf`. The part up to
// the seconds is cached per thread: it changes once a second while a worker logs thousands of lines.
std::string_view formatTime(std::chrono::system_clock::time_point tp, char (&buf)[48]) {
  struct Cache {
    int64_t second{INT64_MIN};
    char text[32]{};
    size_t len{0};
  };
  thread_local Cache cache;
  const auto secs = std::chrono::floor<std::chrono::seconds>(tp);
  const int64_t second = secs.time_since_epoch().count();
  if (second != cache.second) {
    const auto t = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&t, &tm);
    cache.len = std::strftime(cache.text, sizeof(cache.text), "%Y-%m-%dT%H:%M:%S", &tm);
    cache.second = second;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp - secs).count();
  char* p = buf;
  *p++ = '"';
  std::memcpy(p, cache.text, cache.len);
  p += cache.len;
  *p++ = '.';
  *p++ = static_cast<char>('0' + ms / 100);
  *p++ = static_cast<char>('0' + ms / 10 % 10);
  *p++ = static_cast<char>('0' + ms % 10);
  *p++ = 'Z';
  *p++ = '"';
  return {buf, static_cast<size_t>(p - buf)};
}

// Microseconds as milliseconds with exactly three decimals, without floating point: 1234 -> 1.234.
std::string_view formatMillis(uint64_t us, char (&buf)[32]) {
  uint64_t ms = us / 1000;
  const auto frac = static_cast<unsigned>(us % 1000);
  char* end = buf + sizeof(buf);
  char* p = end;
  *--p = static_cast<char>('0' + frac % 10);
  *--p = static_cast<char>('0' + frac / 10 % 10);
  *--p = static_cast<char>('0' + frac / 100);
  *--p = '.';
  do {
    *--p = static_cast<char>('0' + ms % 10);
    ms /= 10;
  } while (ms != 0);
  return {p, static_cast<size_t>(end - p)};
}

void optional(json::Writer& w, std::string_view key, std::string_view value) {
  if (!value.empty()) {
    w.key(key).value(value);
  }
}

}  // namespace

struct AccessLog::Impl {
  // Torn down explicitly by ~AccessLog: flusher, then pool (its destructor drains the queue and
  // joins the log thread), then logger and sink.
  std::shared_ptr<spdlog::details::thread_pool> pool;
  std::shared_ptr<spdlog::async_logger> logger;
  std::unique_ptr<spdlog::details::periodic_worker> flusher;
};

AccessLog::AccessLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AccessLog::~AccessLog() {
  impl_->flusher.reset();
  if (impl_->logger) {
    impl_->logger->flush();  // queued behind every pending line
  }
  // Joining the log thread (it drains the queue first) before releasing the logger makes this
  // thread the one that closes the sink, after the log thread is done with it.
  impl_->pool.reset();
  impl_->logger.reset();
}

std::unique_ptr<AccessLog> AccessLog::create(const std::string& path) {
  return create(path, nullptr);
}

std::unique_ptr<AccessLog> AccessLog::create(const std::string& path, std::string* error) {
  auto impl = std::make_unique<Impl>();
  if (path.empty() || path == "off") {
    return std::unique_ptr<AccessLog>(new AccessLog(std::move(impl)));
  }
  spdlog::sink_ptr sink;
  if (path == "stdout") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else if (path == "stderr") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    // spdlog reports a failed open by throwing; contain it here (STYLE B.5: no exception crosses
    // our code).
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    } catch (const std::exception& ex) {
      if (error != nullptr) {
        *error = "access log \"" + path + "\": " + ex.what();
      }
      return nullptr;
    }
  }
  sink->set_pattern("%v");
  impl->pool = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
  impl->logger = std::make_shared<spdlog::async_logger>(
      "access_log", std::move(sink), impl->pool, spdlog::async_overflow_policy::overrun_oldest);
  impl->logger->set_pattern("%v");
  impl->logger->set_level(spdlog::level::info);
  impl->logger->flush_on(spdlog::level::off);  // batched: flushed by `flusher` and on shutdown
  // Captures the logger, not the Impl: the worker is joined before the logger is released.
  impl->flusher = std::make_unique<spdlog::details::periodic_worker>(
      [logger = impl->logger.get()] { logger->flush(); }, kFlushInterval);
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(impl)));
}

bool AccessLog::enabled() const { return impl_->logger != nullptr; }

void AccessLog::log(const AccessLogEntry& e) {
  if (!impl_->logger) {
    return;
  }
  // Reused per thread, so a steady state formats without allocating; spdlog copies the bytes into
  // its queue slot.
  thread_local std::string line;
  line.clear();
  format(e, line);
  impl_->logger->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

void AccessLog::flush() {
  if (impl_->logger) {
    impl_->logger->flush();
  }
}

uint64_t AccessLog::droppedLines() const {
  return impl_->pool ? static_cast<uint64_t>(impl_->pool->overrun_counter()) : 0;
}

void AccessLog::format(const AccessLogEntry& e, std::string& out) {
  json::Writer w(out);
  w.beginObject();
  char time_buf[48];
  w.key("time").raw(formatTime(e.start, time_buf));
  optional(w, "request_id", e.request_id);
  optional(w, "listener", e.listener);
  optional(w, "route", e.route);
  w.key("method").value(e.method);
  w.key("path").value(e.path);
  optional(w, "authority", e.authority);
  optional(w, "protocol", e.protocol);
  w.key("status").value(e.status);
  optional(w, "reason", e.reason);
  optional(w, "fallback", e.fallback);
  optional(w, "upstream", e.upstream);
  optional(w, "endpoint", e.endpoint);
  w.key("attempts").value(static_cast<uint64_t>(e.attempts));
  char buf[32];
  w.key("duration_ms").raw(formatMillis(e.duration_us, buf));
  w.key("bytes_received").value(e.bytes_received);
  w.key("bytes_sent").value(e.bytes_sent);
  optional(w, "downstream_peer", e.downstream_peer);
  w.endObject();
}

}  // namespace levee::http
