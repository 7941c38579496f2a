#include "proxy/common/hash.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace levee {
namespace {

// loadShort covers every byte: for each length 1..7, changing any one byte changes the word.
TEST(HashTest, LoadShortSeesEveryByte) {
  for (size_t n = 1; n <= 7; ++n) {
    const std::string base(n, 'a');
    const uint64_t w = loadShort(base.data(), n);
    for (size_t pos = 0; pos < n; ++pos) {
      std::string other = base;
      other[pos] = 'b';
      EXPECT_NE(w, loadShort(other.data(), n)) << "n=" << n << " pos=" << pos;
    }
  }
}

TEST(HashTest, FastHash64DependsOnEveryByteLengthAndSeed) {
  std::set<uint64_t> seen;
  size_t made = 0;
  for (size_t n = 0; n <= 24; ++n) {
    std::string s(n, 'x');
    seen.insert(fastHash64(s, 1));
    ++made;
    for (size_t pos = 0; pos < n; ++pos) {
      std::string t = s;
      t[pos] = 'y';
      seen.insert(fastHash64(t, 1));
      ++made;
    }
  }
  EXPECT_EQ(made, seen.size());  // no two of these collide
  EXPECT_NE(fastHash64("host", 1), fastHash64("host", 2));
  EXPECT_EQ(fastHash64("/index.html?q=1", 7), fastHash64(std::string("/index.html?q=1"), 7));
}

}  // namespace
}  // namespace levee
