#include "proxy/common/json_reader.h"

#include <gtest/gtest.h>

namespace levee::json {
namespace {

TEST(JsonReaderTest, ParsesAnObjectWithEveryType) {
  auto v = parse(R"( {"s":"a\"b\u00e9","n":-1.5e2,"t":true,"f":false,"z":null,"a":[1,{}]} )");
  ASSERT_TRUE(v.has_value()) << v.error().message;
  const Object* o = v->object();
  ASSERT_NE(nullptr, o);
  EXPECT_EQ("a\"b\xc3\xa9", *o->at("s").string());
  EXPECT_EQ(-150.0, *o->at("n").number());
  EXPECT_TRUE(*o->at("t").boolean());
  EXPECT_FALSE(*o->at("f").boolean());
  EXPECT_TRUE(o->at("z").isNull());
  ASSERT_EQ(2u, o->at("a").array()->size());
  EXPECT_EQ("object", typeName(o->at("a").array()->at(1)));
}

TEST(JsonReaderTest, ErrorsNameTheByteOffset) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"", "invalid JSON at byte 0: unexpected end of input"},
      {"{\"a\":1,}", "invalid JSON at byte 7: expected a string key"},
      {"{\"a\" 1}", "invalid JSON at byte 5: expected ':'"},
      {"{\"a\":1} x", "invalid JSON at byte 8: unexpected text after the value"},
      {"{\"a\":1,\"a\":2}", "invalid JSON at byte 12: duplicate key \"a\""},
      {"\"abc", "invalid JSON at byte 4: unterminated string"},
      {"nul", "invalid JSON at byte 0: unexpected character"},
      {"delay=1s", "invalid JSON at byte 0: unexpected character"},
  };
  for (const auto& c : cases) {
    auto v = parse(c.text);
    ASSERT_FALSE(v.has_value()) << c.text;
    EXPECT_EQ(c.error, v.error().message) << c.text;
  }
}

TEST(JsonReaderTest, DepthIsBounded) {
  std::string deep(100, '[');
  auto v = parse(deep);
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(std::string::npos, v.error().message.find("nested deeper than 32")) << v.error().message;
}

}  // namespace
}  // namespace levee::json
