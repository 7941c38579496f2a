#include "proxy/event/dispatcher.h"

#include <uv.h>

#include "proxy/common/assert.h"

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
    : loop_(new uv_loop_t), async_(new uv_async_t), idle_(new uv_idle_t),
      thread_id_(std::this_thread::get_id()) {
  LEVEE_RELEASE_ASSERT(uv_loop_init(loop_) == 0, "uv_loop_init");
  uv_async_init(loop_, async_, &Dispatcher::onUvAsync);
  async_->data = this;
  uv_idle_init(loop_, idle_);
  idle_->data = this;
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
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    posted_.clear();
  }
  closeAndFree(async_);
  closeAndFree(idle_);
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
    uv_idle_start(idle_, &Dispatcher::onUvIdle);
  }
  to_delete_.push_back(std::move(obj));
}

void Dispatcher::onUvIdle(uv_idle_t* i) noexcept {
  auto* self = static_cast<Dispatcher*>(i->data);
  if (self != nullptr) {
    self->clearDeferred();
  }
}

void Dispatcher::clearDeferred() {
  // Destructors may retire more objects; loop until the list stays empty.
  while (!to_delete_.empty()) {
    std::vector<DeferredDeletablePtr> batch;
    batch.swap(to_delete_);
    batch.clear();
  }
  if (idle_ != nullptr && idle_->data != nullptr) {
    uv_idle_stop(idle_);
  }
}

uint64_t Dispatcher::nowMs() const { return uv_now(loop_); }

}  // namespace levee::event
