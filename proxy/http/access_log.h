#pragma once
// The access log: one JSON line per finished request, written by a background thread so the data
// plane never blocks on I/O (STYLE B.9, B.10 #4).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace levee::http {

// Everything a line needs. The views only have to stay valid for the duration of log().
struct AccessLogEntry {
  std::chrono::system_clock::time_point start;
  std::string_view request_id, listener, route, method, path, authority, upstream, endpoint, reason,
      fallback, protocol /*"HTTP/1.1"*/, downstream_peer;
  int status{0};
  uint64_t duration_us{0}, bytes_received{0}, bytes_sent{0};
  uint32_t attempts{0};
};

class AccessLog {
public:
  // path: "stdout" | "stderr" | "off" (or "") | a file path (appended to; parent directories are
  // created). Lines go through an async spdlog logger with its own one-thread pool and the
  // overrun_oldest policy: when the queue is full the oldest lines are dropped, never waited for.
  // The file is flushed about once a second and on destruction.
  // Returns nullptr if the file cannot be opened; `error` (if given) then says why.
  static std::unique_ptr<AccessLog> create(const std::string& path);
  static std::unique_ptr<AccessLog> create(const std::string& path, std::string* error);

  // Drains the queue, flushes and closes the sink (joins the log thread).
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const;
  // Formats on the calling thread, then queues the line. Thread-safe; never blocks on I/O.
  void log(const AccessLogEntry& e);
  // Asks the log thread to flush (asynchronous).
  void flush();
  // Lines dropped because the queue was full.
  uint64_t droppedLines() const;

  // The JSON line for `e`, without the trailing newline, appended to `out`:
  // {"time":"2026-11-23T19:40:01.123Z","request_id":"...","listener":"...","route":"...",
  //  "method":"GET","path":"/x","authority":"...","protocol":"HTTP/1.1","status":200,
  //  "reason":"...","fallback":"stale","upstream":"...","endpoint":"...","attempts":1,"duration_ms":1.234,
  //  "bytes_received":0,"bytes_sent":12,"downstream_peer":"..."}
  // Empty strings are omitted except method and path; numbers are always present.
  static void format(const AccessLogEntry& e, std::string& out);

private:
  struct Impl;
  explicit AccessLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace levee::http
