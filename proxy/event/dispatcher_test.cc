#include "proxy/event/dispatcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <thread>
#include <vector>

#include "tests/test_common/test_loop.h"

namespace levee::event {
namespace {

using namespace std::chrono_literals;

class DispatcherTest : public testing::Test {
protected:
  Dispatcher& dispatcher() { return loop_.dispatcher(); }
  test::TestLoop loop_;
};

TEST_F(DispatcherTest, OneShotTimerFiresOnceAndDisarms) {
  int fired = 0;
  TimerPtr t = dispatcher().createTimer([&] { ++fired; });
  EXPECT_FALSE(t->enabled());
  t->enable(0ms);
  EXPECT_TRUE(t->enabled());
  ASSERT_TRUE(loop_.runUntil([&] { return fired > 0; }));
  EXPECT_EQ(1, fired);
  EXPECT_FALSE(t->enabled());
  loop_.runNoWait(3);
  EXPECT_EQ(1, fired);
}

TEST_F(DispatcherTest, TimerCanBeReenabledFromItsCallback) {
  int fired = 0;
  TimerPtr t;
  t = dispatcher().createTimer([&] {
    if (++fired < 3) {
      t->enable(0ms);
    }
  });
  t->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return fired == 3; }));
  EXPECT_FALSE(t->enabled());
}

TEST_F(DispatcherTest, RepeatingTimerRepeatsUntilDisabled) {
  int fired = 0;
  TimerPtr t;
  t = dispatcher().createTimer([&] {
    if (++fired == 3) {
      t->disable();
    }
  });
  t->enableRepeating(1ms);
  EXPECT_TRUE(t->enabled());
  ASSERT_TRUE(loop_.runUntil([&] { return fired == 3; }));
  EXPECT_FALSE(t->enabled());
  loop_.runNoWait(3);
  EXPECT_EQ(3, fired);
}

TEST_F(DispatcherTest, DisabledTimerDoesNotFire) {
  int disabled_fired = 0;
  bool sentinel_fired = false;
  TimerPtr disabled = dispatcher().createTimer([&] { ++disabled_fired; });
  TimerPtr sentinel = dispatcher().createTimer([&] { sentinel_fired = true; });
  disabled->enable(0ms);
  disabled->disable();
  EXPECT_FALSE(disabled->enabled());
  disabled->disable();  // idempotent
  sentinel->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return sentinel_fired; }));
  EXPECT_EQ(0, disabled_fired);
}

TEST_F(DispatcherTest, DestroyingAnArmedTimerDisarmsIt) {
  int fired = 0;
  bool sentinel_fired = false;
  TimerPtr t = dispatcher().createTimer([&] { ++fired; });
  TimerPtr sentinel = dispatcher().createTimer([&] { sentinel_fired = true; });
  t->enable(0ms);
  sentinel->enable(0ms);
  t.reset();
  ASSERT_TRUE(loop_.runUntil([&] { return sentinel_fired; }));
  EXPECT_EQ(0, fired);
}

TEST_F(DispatcherTest, TimerDestroyedByAnotherTimersCallbackInTheSameRound) {
  int fired = 0;
  TimerPtr victim = dispatcher().createTimer([&] { ++fired; });
  TimerPtr killer = dispatcher().createTimer([&] { victim.reset(); });
  killer->enable(0ms);
  victim->enable(0ms);  // due at the same time, after `killer`
  ASSERT_TRUE(loop_.runUntil([&] { return victim == nullptr; }));
  loop_.runNoWait(2);
  EXPECT_EQ(0, fired);
}

TEST_F(DispatcherTest, TimerMayBeDestroyedInItsOwnCallback) {
  bool fired = false;
  TimerPtr t;
  t = dispatcher().createTimer([&t, &fired] {
    fired = true;
    t.reset();
  });
  t->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return fired; }));
  EXPECT_EQ(nullptr, t);
}

TEST_F(DispatcherTest, EnableReplacesThePreviousTimeout) {
  int fired = 0;
  bool sentinel_fired = false;
  TimerPtr t = dispatcher().createTimer([&] { ++fired; });
  TimerPtr sentinel = dispatcher().createTimer([&] { sentinel_fired = true; });
  t->enable(0ms);
  t->enable(std::chrono::hours(1));  // re-arming moves the deadline
  sentinel->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return sentinel_fired; }));
  EXPECT_EQ(0, fired);
  EXPECT_TRUE(t->enabled());
}

TEST_F(DispatcherTest, PostFromAnotherThreadRunsOnTheLoopThread) {
  std::atomic<bool> ran{false};
  std::thread::id ran_on;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread other([&] {
    EXPECT_FALSE(dispatcher().isThreadSafe());
    dispatcher().post([&] {
      ran_on = std::this_thread::get_id();
      ran = true;
    });
  });
  ASSERT_TRUE(loop_.runUntil([&] { return ran.load(); }));
  other.join();
  EXPECT_EQ(loop_thread, ran_on);
  EXPECT_TRUE(dispatcher().isThreadSafe());
}

TEST_F(DispatcherTest, PostsRunInOrder) {
  std::vector<int> order;
  std::thread other([&] {
    for (int i = 0; i < 100; ++i) {
      dispatcher().post([&order, i] { order.push_back(i); });
    }
  });
  other.join();
  ASSERT_TRUE(loop_.runUntil([&] { return order.size() == 100; }));
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(i, order[static_cast<size_t>(i)]);
  }
}

TEST_F(DispatcherTest, PostFromALoopCallbackRunsLaterNotInline) {
  bool posted_ran = false;
  bool was_inline = true;
  dispatcher().post([&] {
    dispatcher().post([&] { posted_ran = true; });
    was_inline = posted_ran;
  });
  ASSERT_TRUE(loop_.runUntil([&] { return posted_ran; }));
  EXPECT_FALSE(was_inline);
}

TEST_F(DispatcherTest, RunReturnsAfterExitFromAnotherThread) {
  std::atomic<bool> ran{false};
  std::thread other([&] {
    dispatcher().post([&] { ran = true; });
    dispatcher().exit();
  });
  dispatcher().run();  // returns only once exit() was processed
  other.join();
  EXPECT_TRUE(ran.load());
}

TEST_F(DispatcherTest, ExitFromALoopCallback) {
  int fired = 0;
  TimerPtr t = dispatcher().createTimer([&] {
    ++fired;
    dispatcher().exit();
  });
  t->enable(0ms);
  dispatcher().run();
  EXPECT_EQ(1, fired);
}

struct Tracked : DeferredDeletable {
  explicit Tracked(int& destroyed, Dispatcher* d = nullptr, int chain = 0)
      : destroyed_(destroyed), dispatcher_(d), chain_(chain) {}
  ~Tracked() override {
    ++destroyed_;
    if (chain_ > 0) {
      // Retiring more objects from a destructor is allowed.
      dispatcher_->deferredDelete(std::make_unique<Tracked>(destroyed_, dispatcher_, chain_ - 1));
    }
  }
  int& destroyed_;
  Dispatcher* dispatcher_;
  int chain_;
};

TEST_F(DispatcherTest, DeferredDeleteIsNotInline) {
  int destroyed = 0;
  bool checked = false;
  TimerPtr t = dispatcher().createTimer([&] {
    dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed));
    EXPECT_EQ(0, destroyed);  // still alive on the stack of the retiring callback
    checked = true;
  });
  t->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return checked; }));
  ASSERT_TRUE(loop_.runUntil([&] { return destroyed == 1; }));
}

TEST_F(DispatcherTest, DeferredDeleteHappensBeforeTheNextIterationsTimers) {
  int destroyed = 0;
  int seen_by_next = -1;
  TimerPtr next = dispatcher().createTimer([&] { seen_by_next = destroyed; });
  TimerPtr t = dispatcher().createTimer([&] {
    dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed));
    next->enable(1ms);
  });
  t->enable(0ms);
  ASSERT_TRUE(loop_.runUntil([&] { return seen_by_next >= 0; }));
  EXPECT_EQ(1, seen_by_next);
}

TEST_F(DispatcherTest, DeferredDeleteFromAPostedCallback) {
  int destroyed = 0;
  bool retired = false;
  dispatcher().post([&] {
    dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed));
    dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed));
    EXPECT_EQ(0, destroyed);
    retired = true;
  });
  ASSERT_TRUE(loop_.runUntil([&] { return destroyed == 2; }));
  EXPECT_TRUE(retired);
}

TEST_F(DispatcherTest, DeferredDeleteRetiredFromDestructorsAreDestroyedToo) {
  int destroyed = 0;
  dispatcher().post([&] { dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed, &dispatcher(), 3)); });
  ASSERT_TRUE(loop_.runUntil([&] { return destroyed == 4; }));
}

TEST(DispatcherShutdownTest, ShutdownDestroysPendingDeferredAndDropsPosts) {
  int destroyed = 0;
  bool posted_ran = false;
  {
    test::TestLoop loop;
    loop.dispatcher().deferredDelete(std::make_unique<Tracked>(destroyed));
    loop.dispatcher().post([&] { posted_ran = true; });
    EXPECT_EQ(0, destroyed);
  }  // ~TestLoop: shutdown() asserts uv_loop_close() == 0
  EXPECT_EQ(1, destroyed);
  EXPECT_FALSE(posted_ran);
}

TEST(DispatcherShutdownTest, ShutdownClosesTimersStillArmed) {
  auto loop = std::make_unique<test::TestLoop>();
  int fired = 0;
  // A timer destroyed just before shutdown: its uv_close is completed by shutdown().
  TimerPtr t = loop->dispatcher().createTimer([&] { ++fired; });
  t->enable(std::chrono::hours(1));
  t.reset();
  loop.reset();
  EXPECT_EQ(0, fired);
}

TEST_F(DispatcherTest, NowMsIsMonotonic) {
  uint64_t before = dispatcher().nowMs();
  bool fired = false;
  TimerPtr t = dispatcher().createTimer([&] { fired = true; });
  t->enable(1ms);
  ASSERT_TRUE(loop_.runUntil([&] { return fired; }));
  EXPECT_GE(dispatcher().nowMs(), before + 1);
}

TEST_F(DispatcherTest, SignalWatcherRunsOnTheLoop) {
  bool got = false;
  SignalWatcherPtr w = std::make_unique<SignalWatcher>(dispatcher(), SIGUSR2, [&] { got = true; });
  ASSERT_EQ(0, ::raise(SIGUSR2));
  ASSERT_TRUE(loop_.runUntil([&] { return got; }));
}

TEST_F(DispatcherTest, BindToCurrentThread) {
  EXPECT_TRUE(dispatcher().isThreadSafe());
  std::thread other([&] {
    dispatcher().bindToCurrentThread();
    EXPECT_TRUE(dispatcher().isThreadSafe());
  });
  other.join();
  EXPECT_FALSE(dispatcher().isThreadSafe());
  dispatcher().bindToCurrentThread();
  EXPECT_TRUE(dispatcher().isThreadSafe());
}

}  // namespace
}  // namespace levee::event
