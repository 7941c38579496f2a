#include "proxy/event/dispatcher.h"

#include <uv.h>

#include "proxy/common/assert.h"
#include "proxy/event/deadline.h"
#include "proxy/event/tcp_socket.h"

namespace levee::event {
namespace {

// The CMake idiom (STYLE B.4): the handle's memory outlives its owner until close_cb.
template <typename T>
void closeAndFree(T* handle) {
  auto* h = reinterpret_cast<uv_handle_t*>(handle);
  h->data = nullptr;
  if (!uv_is_closing(h)) {
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
  }
}

}  // namespace

// === impl Timer ===

Timer::Timer(Dispatcher& dispatcher, std::function<void()> cb)
    : handle_(new uv_timer_t), cb_(std::move(cb)) {
  uv_timer_init(dispatcher.loop(), handle_);
  handle_->data = this;
}

Timer::~Timer() {
  uv_timer_stop(handle_);
  closeAndFree(handle_);
}

void Timer::onUvTimer(uv_timer_t* t) noexcept {
  auto* self = static_cast<Timer*>(t->data);
  if (self == nullptr) {
    return;
  }
  self->cb_();
}

void Timer::enable(std::chrono::milliseconds timeout) {
  uv_timer_start(handle_, &Timer::onUvTimer, static_cast<uint64_t>(timeout.count()), 0);
}

void Timer::enableRepeating(std::chrono::milliseconds period) {
  auto p = static_cast<uint64_t>(period.count());
  uv_timer_start(handle_, &Timer::onUvTimer, p, p);
}

void Timer::disable() { uv_timer_stop(handle_); }

bool Timer::enabled() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_)) != 0;
}

// === impl SignalWatcher ===

SignalWatcher::SignalWatcher(Dispatcher& dispatcher, int signum, std::function<void()> cb)
    : handle_(new uv_signal_t), cb_(std::move(cb)) {
  uv_signal_init(dispatcher.loop(), handle_);
  handle_->data = this;
  uv_signal_start(handle_, &SignalWatcher::onUvSignal, signum);
}

SignalWatcher::~SignalWatcher() {
  uv_signal_stop(handle_);
  closeAndFree(handle_);
}

void SignalWatcher::onUvSignal(uv_signal_t* s, int) noexcept {
  auto* self = static_cast<SignalWatcher*>(s->data);
  if (self != nullptr) {
    self->cb_();
  }
}

// === impl Dispatcher ===

Dispatcher::Dispatcher()
    : loop_(new uv_loop_t), async_(new uv_async_t), prepare_(new uv_prepare_t),
      check_(new uv_check_t), flush_kick_(new uv_timer_t), thread_id_(std::this_thread::get_id()) {
  LEVEE_RELEASE_ASSERT(uv_loop_init(loop_) == 0, "uv_loop_init");
  uv_async_init(loop_, async_, &Dispatcher::onUvAsync);
  async_->data = this;
  // Prepare runs just before the loop blocks (flushes writes made by timers and the like);
  // check runs right after I/O callbacks (flushes their writes, then deferred deletes).
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
  uv_prepare_start(prepare_, &Dispatcher::onUvPrepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
  uv_check_init(loop_, check_);
  check_->data = this;
  uv_check_start(check_, &Dispatcher::onUvCheck);
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_timer_init(loop_, flush_kick_);
  flush_kick_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(flush_kick_));
  // The async handle must not keep run() alive once everything else is done.
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

Dispatcher::~Dispatcher() {
  if (loop_ != nullptr) {
    shutdown();
  }
}

void Dispatcher::shutdown() {
  clearDeferred();
  recent_deadline_queues_.fill(nullptr);
  deadline_queues_.clear();  // closes their timers while the loop can still free them
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    posted_.clear();
  }
  flushSockets();
  to_flush_.clear();
  closeAndFree(async_);
  closeAndFree(prepare_);
  closeAndFree(check_);
  closeAndFree(flush_kick_);
  // Any handle still open belongs to an owner that is gone or shutting down: close it.
  uv_walk(
      loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) {
          h->data = nullptr;
          uv_close(h, nullptr);
        }
      },
      nullptr);
  uv_run(loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop_);
  LEVEE_RELEASE_ASSERT(rc == 0, "uv_loop_close: handles leaked");
  delete loop_;
  loop_ = nullptr;
}

void Dispatcher::run() {
  bindToCurrentThread();
  uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  while (!exit_requested_) {
    uv_run(loop_, UV_RUN_DEFAULT);
    runPosted();
    if (!exit_requested_ && !uv_loop_alive(loop_)) {
      break;
    }
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

void Dispatcher::exit() {
  post([this] {
    exit_requested_ = true;
    uv_stop(loop_);
  });
}

void Dispatcher::post(std::function<void()> cb) {
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    posted_.push_back(std::move(cb));
  }
  uv_async_send(async_);
}

void Dispatcher::onUvAsync(uv_async_t* a) noexcept {
  auto* self = static_cast<Dispatcher*>(a->data);
  if (self != nullptr) {
    self->runPosted();
  }
}

void Dispatcher::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    batch.swap(posted_);
  }
  for (auto& cb : batch) {
    cb();
  }
}

void Dispatcher::deferredDelete(DeferredDeletablePtr obj) {
  if (to_delete_.empty()) {
    // Make sure the loop comes round to the check phase soon even if no I/O is pending.
    uv_timer_start(flush_kick_, [](uv_timer_t*) {}, 0, 0);
  }
  to_delete_.push_back(std::move(obj));
}

void Dispatcher::scheduleFlush(TcpSocket* socket) {
  socket->in_flush_list_ = true;
  to_flush_.push_back(socket);
}

void Dispatcher::cancelFlush(TcpSocket* socket) {
  for (auto& s : to_flush_) {
    if (s == socket) {
      s = nullptr;
    }
  }
  socket->in_flush_list_ = false;
}

void Dispatcher::flushSockets() {
  // Iterate the live list by index: flush() callbacks may append to it (more writes) or
  // null entries (a socket closed by another socket's callback), and both are seen here.
  for (size_t i = 0; i < to_flush_.size(); ++i) {
    TcpSocket* s = to_flush_[i];
    if (s != nullptr) {
      to_flush_[i] = nullptr;
      s->in_flush_list_ = false;
      s->flush();
    }
  }
  to_flush_.clear();
}

void Dispatcher::onUvPrepare(uv_prepare_t* p) noexcept {
  auto* self = static_cast<Dispatcher*>(p->data);
  if (self != nullptr) {
    self->flushSockets();
  }
}

void Dispatcher::onUvCheck(uv_check_t* c) noexcept {
  auto* self = static_cast<Dispatcher*>(c->data);
  if (self != nullptr) {
    self->flushSockets();
    self->clearDeferred();
    if (!self->to_flush_.empty()) {
      // Destructors queued writes: come round again without blocking.
      uv_timer_start(self->flush_kick_, [](uv_timer_t*) {}, 0, 0);
    }
  }
}

void Dispatcher::clearDeferred() {
  // Destructors may retire more objects; loop until the list stays empty.
  while (!to_delete_.empty()) {
    std::vector<DeferredDeletablePtr> batch;
    batch.swap(to_delete_);
    batch.clear();
  }
}

uint64_t Dispatcher::nowMs() const { return uv_now(loop_); }

DeadlineQueue& Dispatcher::deadlineQueue(std::chrono::milliseconds duration) {
  for (DeadlineQueue* q : recent_deadline_queues_) {
    if (q != nullptr && q->duration() == duration) {
      return *q;
    }
  }
  std::unique_ptr<DeadlineQueue>& q = deadline_queues_[duration.count()];
  if (!q) {
    q = std::make_unique<DeadlineQueue>(*this, duration);
    for (DeadlineQueue*& slot : recent_deadline_queues_) {
      if (slot == nullptr) {
        slot = q.get();
        break;
      }
    }
  }
  return *q;
}

}  // namespace levee::event
