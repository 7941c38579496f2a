#pragma once
// One event loop (libuv) per thread. The Dispatcher owns the uv_loop_t and offers the few
// primitives the layers above need: timers, cross-thread post(), deferred deletion, signals.
// This header does not include <uv.h>: only proxy/event/*.cc do (DESIGN section 3).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

struct uv_loop_s;
struct uv_timer_s;
struct uv_async_s;
struct uv_idle_s;
struct uv_prepare_s;
struct uv_check_s;
struct uv_signal_s;

namespace levee::event {

class Dispatcher;
class DeadlineQueue;
class TcpSocket;

// Objects retired with Dispatcher::deferredDelete() are destroyed at the start of the next
// loop iteration, never on the stack of the callback that retired them (Envoy's model).
class DeferredDeletable {
public:
  virtual ~DeferredDeletable() = default;
};
using DeferredDeletablePtr = std::unique_ptr<DeferredDeletable>;

// A one-shot or repeating timer. Owned by its user; destroying it disarms and closes it.
// The callback may capture `this` of the owner (the timer dies with the owner).
class Timer {
public:
  Timer(Dispatcher& dispatcher, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void enable(std::chrono::milliseconds timeout);
  void enableRepeating(std::chrono::milliseconds period);
  void disable();
  bool enabled() const;

private:
  static void onUvTimer(uv_timer_s* t) noexcept;
  uv_timer_s* handle_;
  std::function<void()> cb_;
};
using TimerPtr = std::unique_ptr<Timer>;

// Runs `cb` on the dispatcher thread when one of `signals` arrives (main loop only).
class SignalWatcher {
public:
  SignalWatcher(Dispatcher& dispatcher, int signum, std::function<void()> cb);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

private:
  static void onUvSignal(uv_signal_s* s, int signum) noexcept;
  uv_signal_s* handle_;
  std::function<void()> cb_;
};
using SignalWatcherPtr = std::unique_ptr<SignalWatcher>;

class Dispatcher {
public:
  Dispatcher();
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  uv_loop_s* loop() { return loop_; }
  // Runs until exit() is called (or nothing is left to do).
  void run();
  // Thread-safe: asks the loop to return from run() soon.
  void exit();
  // Thread-safe: runs `cb` on this dispatcher's thread.
  void post(std::function<void()> cb);
  // Destroys `obj` at the end of this loop iteration (never on the caller's stack).
  void deferredDelete(DeferredDeletablePtr obj);
  // Same for any owned object (wrapped in a DeferredDeletable holder).
  template <typename T>
  void deferredDeleteAny(std::unique_ptr<T> obj) {
    struct Holder final : DeferredDeletable {
      explicit Holder(std::unique_ptr<T> o) : owned(std::move(o)) {}
      std::unique_ptr<T> owned;
    };
    deferredDelete(std::make_unique<Holder>(std::move(obj)));
  }
  TimerPtr createTimer(std::function<void()> cb) { return std::make_unique<Timer>(*this, std::move(cb)); }
  // The shared queue for deadlines of `duration` (proxy/event/deadline.h), created on first use.
  DeadlineQueue& deadlineQueue(std::chrono::milliseconds duration);
  bool isThreadSafe() const { return std::this_thread::get_id() == thread_id_; }
  // Sets the thread that runs this loop (defaults to the constructing thread).
  void bindToCurrentThread() { thread_id_ = std::this_thread::get_id(); }
  // Loop time in ms (cached per iteration; cheap).
  uint64_t nowMs() const;
  // Closes every handle still open and runs the loop until they are freed; asserts the loop closed.
  void shutdown();
  // Write coalescing: sockets with queued bytes are flushed once per loop iteration (before
  // the loop blocks and after I/O callbacks), so a burst of events becomes one write per
  // socket and the peer is woken once (HAProxy's model). See TcpSocket.
  void scheduleFlush(TcpSocket* socket);
  void cancelFlush(TcpSocket* socket);

private:
  static void onUvAsync(uv_async_s* a) noexcept;
  static void onUvPrepare(uv_prepare_s* p) noexcept;
  static void onUvCheck(uv_check_s* c) noexcept;
  void runPosted();
  void clearDeferred();
  void flushSockets();

  uv_loop_s* loop_;
  uv_async_s* async_;
  uv_prepare_s* prepare_;
  uv_check_s* check_;
  uv_timer_s* flush_kick_;  // wakes a blocked poll when writes are queued from a check callback
  std::thread::id thread_id_;
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<DeferredDeletablePtr> to_delete_;
  std::vector<TcpSocket*> to_flush_;
  // One per distinct duration ever armed (route and per-try timeouts: a handful), kept for the
  // dispatcher's life; the first kRecentDeadlineQueues created are found by a linear scan.
  static constexpr size_t kRecentDeadlineQueues = 8;
  std::unordered_map<int64_t, std::unique_ptr<DeadlineQueue>> deadline_queues_;
  std::array<DeadlineQueue*, kRecentDeadlineQueues> recent_deadline_queues_{};
  bool exit_requested_{false};
};

}  // namespace levee::event
