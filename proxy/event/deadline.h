#pragma once
// Deadlines that are almost always cancelled: a route's request timeout and per-try timeout are
// armed by every request and fire for almost none. A uv timer per request costs two allocations,
// a heap insert and a handle close. Here all deadlines of one duration on one dispatcher share
// a DeadlineQueue: arming appends to an intrusive list (deadlines of equal duration expire in
// arming order), cancelling unlinks, and one uv timer per queue is armed for the head. A
// cancelled head leaves that timer pointing early; it then fires, finds nothing due and re-arms
// for the new head (lazy, so a steady stream of requests costs about one timer fire per
// duration, not one timer operation per request). libuv's docs suggest the same for equal
// timeouts. Loop thread only.

#include <chrono>
#include <cstdint>
#include <memory>

namespace levee::event {

class Dispatcher;
class DeadlineQueue;
class Timer;

// One deadline, embedded in its owner (no allocation). The callback is a plain function and
// context so arming never allocates; it may destroy the owner (and this Deadline).
class Deadline {
public:
  using Callback = void (*)(void* context);
  Deadline(Callback cb, void* context) : cb_(cb), context_(context) {}
  ~Deadline() { cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Fires `timeout` (> 0) from the loop's current time; re-arming replaces the previous one.
  void arm(Dispatcher& dispatcher, std::chrono::milliseconds timeout);
  void cancel();
  bool armed() const { return queue_ != nullptr; }

private:
  friend class DeadlineQueue;
  Callback cb_;
  void* context_;
  DeadlineQueue* queue_{nullptr};
  Deadline* prev_{nullptr};
  Deadline* next_{nullptr};
  uint64_t due_ms_{0};
};

// The deadlines of one duration on one dispatcher (owned by the Dispatcher).
class DeadlineQueue {
public:
  DeadlineQueue(Dispatcher& dispatcher, std::chrono::milliseconds duration);
  ~DeadlineQueue();  // unlinks every deadline still armed (they never fire)
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;

  std::chrono::milliseconds duration() const { return duration_; }
  void push(Deadline& d);
  void remove(Deadline& d);
  size_t size() const { return size_; }

private:
  void onTimer();

  Dispatcher& dispatcher_;
  const std::chrono::milliseconds duration_;
  std::unique_ptr<Timer> timer_;
  Deadline* head_{nullptr};
  Deadline* tail_{nullptr};
  size_t size_{0};
};

}  // namespace levee::event
