#include "proxy/common/thread_cached.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace levee::common {
namespace {

struct Base {
  virtual ~Base() = default;
};
struct Small final : Base, ThreadCached<Small, 4> {
  explicit Small(int v) : value(v) {}
  int value;
  char pad[40]{};
};

TEST(ThreadCachedTest, ReusesFreedBlocksOnTheSameThread) {
  const size_t before = Small::cachedOnThisThread();
  auto a = std::make_unique<Small>(1);
  void* where = a.get();
  a.reset();
  EXPECT_EQ(before + 1, Small::cachedOnThisThread());
  auto b = std::make_unique<Small>(2);
  EXPECT_EQ(where, b.get());  // the block just freed
  EXPECT_EQ(2, b->value);
  EXPECT_EQ(before, Small::cachedOnThisThread());
}

TEST(ThreadCachedTest, DeleteThroughABasePointerUsesTheClassLists) {
  std::unique_ptr<Base> p = std::make_unique<Small>(3);
  const size_t before = Small::cachedOnThisThread();
  ASSERT_LT(before, 4U);
  p.reset();  // the virtual destructor reaches Small's operator delete, with sizeof(Small)
  EXPECT_EQ(before + 1, Small::cachedOnThisThread());
}

TEST(ThreadCachedTest, KeepsAtMostTheLimitAndFreesTheRest) {
  std::vector<std::unique_ptr<Small>> v;
  for (int i = 0; i < 10; ++i) {
    v.push_back(std::make_unique<Small>(i));
  }
  v.clear();  // 4 cached, 6 returned to ::operator delete
  EXPECT_EQ(4U, Small::cachedOnThisThread());
  for (int i = 0; i < 10; ++i) {
    v.push_back(std::make_unique<Small>(i));
    EXPECT_EQ(i, v.back()->value);
  }
  EXPECT_EQ(0U, Small::cachedOnThisThread());
  v.clear();
}

TEST(ThreadCachedTest, AnotherThreadHasItsOwnList) {
  auto a = std::make_unique<Small>(1);
  size_t other_before = 99;
  size_t other_after = 99;
  std::thread t([&] {
    other_before = Small::cachedOnThisThread();
    a.reset();  // freed here: joins this thread's list, freed at thread exit
    other_after = Small::cachedOnThisThread();
  });
  t.join();
  EXPECT_EQ(0U, other_before);
  EXPECT_EQ(1U, other_after);
}

}  // namespace
}  // namespace levee::common
