#pragma once
// A real event loop for unit tests (STYLE B.8). Tests drive it with runUntil(predicate); a
// generous guard timer only turns a hang into a test failure (nothing waits on it when the
// test passes). Teardown runs Dispatcher::shutdown(), which asserts uv_loop_close() == 0, so a
// leaked handle aborts the test.

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <functional>

#include "proxy/event/dispatcher.h"

namespace levee::test {

class TestLoop {
public:
  TestLoop() = default;
  ~TestLoop() { dispatcher_.shutdown(); }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;

  event::Dispatcher& dispatcher() { return dispatcher_; }

  // Runs loop iterations until `done()` holds. Returns false (and fails the test) if the guard
  // fired first.
  bool runUntil(const std::function<bool()>& done,
                std::chrono::milliseconds guard = std::chrono::seconds(20)) {
    bool timed_out = false;
    event::Timer guard_timer(dispatcher_, [&timed_out] { timed_out = true; });
    guard_timer.enable(guard);
    // UV_RUN_ONCE blocks in poll until the next timer (the guard) even when a callback earlier
    // in the iteration already satisfied `done`; a prepare handle (just before poll) stops the
    // iteration from blocking once it holds.
    struct Ctx {
      const std::function<bool()>* done;
      const bool* timed_out;
    };
    Ctx ctx{&done, &timed_out};
    auto* prepare = new uv_prepare_t;
    uv_prepare_init(dispatcher_.loop(), prepare);
    prepare->data = &ctx;
    uv_prepare_start(prepare, [](uv_prepare_t* p) {
      const auto* c = static_cast<const Ctx*>(p->data);
      if ((*c->done)() || *c->timed_out) {
        uv_stop(p->loop);
      }
    });
    uv_unref(reinterpret_cast<uv_handle_t*>(prepare));
    while (!done() && !timed_out) {
      uv_run(dispatcher_.loop(), UV_RUN_ONCE);
    }
    uv_prepare_stop(prepare);
    uv_close(reinterpret_cast<uv_handle_t*>(prepare),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
    EXPECT_FALSE(timed_out) << "TestLoop::runUntil: condition not reached";
    return !timed_out;
  }

  // Runs exactly `n` loop iterations that do not block (UV_RUN_NOWAIT).
  void runNoWait(int n = 1) {
    for (int i = 0; i < n; ++i) {
      uv_run(dispatcher_.loop(), UV_RUN_NOWAIT);
    }
  }

private:
  event::Dispatcher dispatcher_;
};

}  // namespace levee::test
