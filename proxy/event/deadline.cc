#include "proxy/event/deadline.h"

#include "proxy/event/dispatcher.h"

namespace levee::event {

// === impl Deadline ===

void Deadline::arm(Dispatcher& dispatcher, std::chrono::milliseconds timeout) {
  cancel();
  dispatcher.deadlineQueue(timeout).push(*this);
}

void Deadline::cancel() {
  if (queue_ != nullptr) {
    queue_->remove(*this);
  }
}

// === impl DeadlineQueue ===

DeadlineQueue::DeadlineQueue(Dispatcher& dispatcher, std::chrono::milliseconds duration)
    : dispatcher_(dispatcher), duration_(duration),
      timer_(dispatcher.createTimer([this] { onTimer(); })) {}

DeadlineQueue::~DeadlineQueue() {
  while (head_ != nullptr) {
    remove(*head_);
  }
}

void DeadlineQueue::push(Deadline& d) {
  d.queue_ = this;
  d.due_ms_ = dispatcher_.nowMs() + static_cast<uint64_t>(duration_.count());
  d.prev_ = tail_;
  d.next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = &d;
  } else {
    head_ = &d;
  }
  tail_ = &d;
  ++size_;
  if (!timer_->enabled()) {
    timer_->enable(duration_);  // armed timers point at or before every due time in the list
  }
}

void DeadlineQueue::remove(Deadline& d) {
  (d.prev_ != nullptr ? d.prev_->next_ : head_) = d.next_;
  (d.next_ != nullptr ? d.next_->prev_ : tail_) = d.prev_;
  d.prev_ = d.next_ = nullptr;
  d.queue_ = nullptr;
  --size_;
}

void DeadlineQueue::onTimer() {
  const uint64_t now = dispatcher_.nowMs();
  // A callback may cancel or destroy any deadline (including later ones): re-read the head.
  while (head_ != nullptr && head_->due_ms_ <= now) {
    Deadline& d = *head_;
    remove(d);
    d.cb_(d.context_);
  }
  if (head_ != nullptr) {
    timer_->enable(std::chrono::milliseconds(head_->due_ms_ - now));
  }
}

}  // namespace levee::event
