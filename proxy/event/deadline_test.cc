// Deadlines sharing per-duration queues: order, cancel, re-arm, callbacks that destroy other
// deadlines, and the lazy timer (a cancelled head makes it fire early and re-arm). Runs a real
// loop with short durations; every wait is bounded by TestLoop, and "never fired" is checked
// against a later sentinel of the same queue (same-duration deadlines fire in arming order).
#include "proxy/event/deadline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "proxy/event/dispatcher.h"
#include "tests/test_common/test_loop.h"

namespace levee::event {
namespace {

using namespace std::chrono_literals;

struct Probe {
  Probe(std::vector<int>& to, int n) : log(to), id(n) {}
  std::vector<int>& log;
  int id;
  std::function<void()> then;
  Deadline deadline{[](void* self) {
                      auto* p = static_cast<Probe*>(self);
                      p->log.push_back(p->id);
                      if (p->then) {
                        p->then();
                      }
                    },
                    this};
};

class DeadlineTest : public testing::Test {
protected:
  Dispatcher& dispatcher() { return loop_.dispatcher(); }
  test::TestLoop loop_;
  std::vector<int> fired_;
};

TEST_F(DeadlineTest, EqualDurationsFireInArmingOrderAndShareOneQueue) {
  Probe a(fired_, 1), b(fired_, 2), c(fired_, 3);
  a.deadline.arm(dispatcher(), 5ms);
  b.deadline.arm(dispatcher(), 5ms);
  c.deadline.arm(dispatcher(), 5ms);
  EXPECT_EQ(&dispatcher().deadlineQueue(5ms), &dispatcher().deadlineQueue(5ms));
  EXPECT_EQ(3U, dispatcher().deadlineQueue(5ms).size());
  ASSERT_TRUE(loop_.runUntil([&] { return fired_.size() == 3; }));
  EXPECT_EQ((std::vector<int>{1, 2, 3}), fired_);
  EXPECT_FALSE(a.deadline.armed());
  EXPECT_EQ(0U, dispatcher().deadlineQueue(5ms).size());
}

TEST_F(DeadlineTest, CancelledDeadlinesNeverFireAndACancelledHeadDoesNotDelayTheNext) {
  Probe a(fired_, 1), b(fired_, 2), c(fired_, 3);
  a.deadline.arm(dispatcher(), 20ms);
  b.deadline.arm(dispatcher(), 20ms);
  c.deadline.arm(dispatcher(), 20ms);
  a.deadline.cancel();  // the queue's timer still points at a's due time: it re-arms for b
  c.deadline.cancel();
  EXPECT_FALSE(a.deadline.armed());
  EXPECT_EQ(1U, dispatcher().deadlineQueue(20ms).size());
  Probe sentinel(fired_, 9);  // armed last: when it fires, every earlier due time has passed
  sentinel.deadline.arm(dispatcher(), 20ms);
  ASSERT_TRUE(loop_.runUntil([&] { return fired_.size() == 2; }));
  EXPECT_EQ((std::vector<int>{2, 9}), fired_);
}

TEST_F(DeadlineTest, RearmingMovesTheDeadlineToTheEndOrToAnotherDuration) {
  Probe a(fired_, 1), b(fired_, 2);
  a.deadline.arm(dispatcher(), 10ms);
  b.deadline.arm(dispatcher(), 10ms);
  a.deadline.arm(dispatcher(), 10ms);  // now after b
  ASSERT_TRUE(loop_.runUntil([&] { return fired_.size() == 2; }));
  EXPECT_EQ((std::vector<int>{2, 1}), fired_);
  fired_.clear();
  a.deadline.arm(dispatcher(), 60000ms);
  b.deadline.arm(dispatcher(), 1ms);
  a.deadline.arm(dispatcher(), 2ms);  // leaves the 60 s queue
  EXPECT_EQ(0U, dispatcher().deadlineQueue(60000ms).size());
  ASSERT_TRUE(loop_.runUntil([&] { return fired_.size() == 2; }));
  EXPECT_EQ((std::vector<int>{2, 1}), fired_);
}

TEST_F(DeadlineTest, ACallbackMayDestroyLaterDeadlinesAndRearmItself) {
  auto a = std::make_unique<Probe>(fired_, 1);
  auto b = std::make_unique<Probe>(fired_, 2);
  Probe c(fired_, 3);
  int rearmed = 0;
  a->then = [&] { b.reset(); };  // destroys a deadline due at the same time
  c.then = [&] {
    if (rearmed++ == 0) {
      c.deadline.arm(dispatcher(), 1ms);
    }
  };
  a->deadline.arm(dispatcher(), 3ms);
  b->deadline.arm(dispatcher(), 3ms);
  c.deadline.arm(dispatcher(), 3ms);
  ASSERT_TRUE(loop_.runUntil([&] { return fired_.size() == 3; }));
  EXPECT_EQ((std::vector<int>{1, 3, 3}), fired_);
  EXPECT_EQ(nullptr, b);
}

TEST_F(DeadlineTest, DestroyingAnArmedDeadlineUnlinksIt) {
  {
    Probe a(fired_, 1);
    a.deadline.arm(dispatcher(), 2ms);
    EXPECT_EQ(1U, dispatcher().deadlineQueue(2ms).size());
  }
  EXPECT_EQ(0U, dispatcher().deadlineQueue(2ms).size());
  Probe sentinel(fired_, 9);
  sentinel.deadline.arm(dispatcher(), 2ms);
  ASSERT_TRUE(loop_.runUntil([&] { return !fired_.empty(); }));
  EXPECT_EQ((std::vector<int>{9}), fired_);
}

}  // namespace
}  // namespace levee::event
