#include "proxy/common/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace levee {
namespace {

struct ToStringCase {
  Error error;
  std::string expected;
};

TEST(ErrorTest, ToStringFormats) {
  const ToStringCase cases[] = {
      {Error{"boom"}, "boom"},
      {Error{"boom", "policy.yaml"}, "policy.yaml: boom"},
      {Error{"boom", "policy.yaml", 3, 7}, "policy.yaml:3:7: boom"},
      {Error{"boom", "policy.yaml", 3, 7, "listeners[0].port"}, "policy.yaml:3:7: listeners[0].port: boom"},
      {Error{"boom", "", 0, 0, "upstreams.a"}, "upstreams.a: boom"},
      {Error{"boom", "policy.yaml", 0, 0, "x"}, "policy.yaml: x: boom"},
      // A line without a column still prints both (column 0 = unknown).
      {Error{"boom", "p.yaml", 12, 0}, "p.yaml:12:0: boom"},
      // A location without a file is not printed.
      {Error{"boom", "", 4, 5}, "boom"},
      {Error{""}, ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.expected, c.error.toString());
  }
}

TEST(ErrorTest, MakeErrorCarriesMessageOnly) {
  Result<int> r = makeError("nope");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ("nope", r.error().message);
  EXPECT_TRUE(r.error().file.empty());
  EXPECT_EQ(0, r.error().line);
  EXPECT_EQ("nope", r.error().toString());
}

Result<int> parsePositive(int v) {
  if (v <= 0) {
    Error e{"not positive"};
    e.path = "value";
    return std::unexpected(e);
  }
  return v;
}

Result<std::unique_ptr<int>> makeBox(int v) {
  if (v < 0) {
    return makeError("negative box");
  }
  return std::make_unique<int>(v);
}

int g_after_assign = 0;

Result<int> doubled(int v) {
  LEVEE_ASSIGN_OR_RETURN(int x, parsePositive(v));
  ++g_after_assign;
  return x * 2;
}

// Two uses in one function must not collide (the temporary is named after __LINE__).
Result<int> sum(int a, int b) {
  LEVEE_ASSIGN_OR_RETURN(int x, parsePositive(a));
  LEVEE_ASSIGN_OR_RETURN(int y, parsePositive(b));
  return x + y;
}

// Move-only values are moved out.
Result<int> unbox(int v) {
  LEVEE_ASSIGN_OR_RETURN(std::unique_ptr<int> box, makeBox(v));
  return *box;
}

// Assigning to an existing variable.
Result<std::string> assignExisting(int v) {
  int out = -1;
  LEVEE_ASSIGN_OR_RETURN(out, parsePositive(v));
  return std::to_string(out);
}

Status check(int v) {
  if (v != 0) {
    return makeError("check failed: " + std::to_string(v));
  }
  return {};
}

int g_after_check = 0;

Status checkBoth(int a, int b) {
  LEVEE_RETURN_IF_ERROR(check(a));
  LEVEE_RETURN_IF_ERROR(check(b));
  ++g_after_check;
  return {};
}

// RETURN_IF_ERROR works on a Result<T> too, in a function of another Result type.
Result<std::string> checkResult(int v) {
  LEVEE_RETURN_IF_ERROR(parsePositive(v));
  return std::string("ok");
}

TEST(ResultMacrosTest, AssignOrReturnPassesValue) {
  g_after_assign = 0;
  Result<int> r = doubled(21);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(42, *r);
  EXPECT_EQ(1, g_after_assign);
}

TEST(ResultMacrosTest, AssignOrReturnPropagatesErrorUnchanged) {
  g_after_assign = 0;
  Result<int> r = doubled(-1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ("not positive", r.error().message);
  EXPECT_EQ("value", r.error().path);
  EXPECT_EQ(0, g_after_assign);
}

TEST(ResultMacrosTest, AssignOrReturnTwiceInOneFunction) {
  EXPECT_EQ(5, sum(2, 3).value());
  EXPECT_FALSE(sum(2, 0).has_value());
  EXPECT_FALSE(sum(0, 2).has_value());
}

TEST(ResultMacrosTest, AssignOrReturnMoveOnly) {
  EXPECT_EQ(7, unbox(7).value());
  Result<int> r = unbox(-1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ("negative box", r.error().message);
}

TEST(ResultMacrosTest, AssignOrReturnIntoExistingVariableAcrossTypes) {
  EXPECT_EQ("4", assignExisting(4).value());
  Result<std::string> r = assignExisting(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ("not positive", r.error().message);
}

TEST(ResultMacrosTest, ReturnIfErrorStopsAtFirstError) {
  g_after_check = 0;
  EXPECT_TRUE(checkBoth(0, 0).has_value());
  EXPECT_EQ(1, g_after_check);

  Status s = checkBoth(1, 2);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ("check failed: 1", s.error().message);

  s = checkBoth(0, 2);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ("check failed: 2", s.error().message);
  EXPECT_EQ(1, g_after_check);
}

TEST(ResultMacrosTest, ReturnIfErrorOnResultOfOtherType) {
  EXPECT_EQ("ok", checkResult(1).value());
  Result<std::string> r = checkResult(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ("value", r.error().path);
}

}  // namespace
}  // namespace levee
