#include "proxy/common/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace levee::json {
namespace {

std::string jsonQuote(std::string_view s) {
  std::string out;
  appendQuoted(out, s);
  return out;
}

struct EscapeCase {
  std::string_view name;
  std::string input;
  std::string expected;
};

class AppendQuotedTest : public testing::TestWithParam<EscapeCase> {};

TEST_P(AppendQuotedTest, EscapesPerRfc8259) {
  EXPECT_EQ(GetParam().expected, jsonQuote(GetParam().input));
}

INSTANTIATE_TEST_SUITE_P(
    Table, AppendQuotedTest,
    testing::Values(
        EscapeCase{"empty", "", R"("")"},
        EscapeCase{"plain", "hello world", R"("hello world")"},
        EscapeCase{"quote", "a\"b", R"("a\"b")"},
        EscapeCase{"backslash", "a\\b", R"("a\\b")"},
        EscapeCase{"newline", "a\nb", R"("a\nb")"},
        EscapeCase{"carriage_return", "a\rb", R"("a\rb")"},
        EscapeCase{"tab", "a\tb", R"("a\tb")"},
        EscapeCase{"nul", std::string("a\0b", 3), R"("a\u0000b")"},
        EscapeCase{"soh", "\x01", R"("\u0001")"},
        EscapeCase{"backspace", "\b", R"("\u0008")"},
        EscapeCase{"formfeed", "\f", R"("\u000c")"},
        EscapeCase{"esc", "\x1b", R"("\u001b")"},
        EscapeCase{"unit_separator", "\x1f", R"("\u001f")"},
        EscapeCase{"space_is_not_escaped", " ", R"(" ")"},
        EscapeCase{"del", "\x7f", R"("\u007f")"},
        EscapeCase{"slash_is_not_escaped", "/a/b", R"("/a/b")"},
        EscapeCase{"utf8_passes_through", "caf\xc3\xa9", "\"caf\xc3\xa9\""},
        EscapeCase{"high_bytes_pass_through", "\x80\xff", "\"\x80\xff\""},
        EscapeCase{"mixed", "\"\\\n\x01", R"("\"\\\n\u0001")"}),
    [](const testing::TestParamInfo<EscapeCase>& p) { return std::string(p.param.name); });

TEST(AppendQuotedTest, AppendsToExistingContent) {
  std::string out = "x=";
  appendQuoted(out, "y");
  EXPECT_EQ(R"(x="y")", out);
}

TEST(AppendQuotedTest, EveryControlCharacterIsEscaped) {
  for (int c = 0; c < 0x20; ++c) {
    std::string s(1, static_cast<char>(c));
    std::string q = jsonQuote(s);
    for (char ch : q) {
      EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << "control char " << c << " leaked: " << q;
    }
  }
}

TEST(WriterTest, EmptyObjectAndArray) {
  std::string out;
  Writer(out).beginObject().endObject();
  EXPECT_EQ("{}", out);
  out.clear();
  Writer(out).beginArray().endArray();
  EXPECT_EQ("[]", out);
}

TEST(WriterTest, FlatObjectHasCommasBetweenMembersOnly) {
  std::string out;
  Writer w(out);
  w.beginObject().key("a").value(1).key("b").value("x").key("c").value(true).key("d").null().endObject();
  EXPECT_EQ(R"({"a":1,"b":"x","c":true,"d":null})", out);
}

TEST(WriterTest, NestedObjectsAndArrays) {
  std::string out;
  Writer w(out);
  w.beginObject()
      .key("list")
      .beginArray()
      .value(1)
      .beginObject()
      .key("k")
      .value("v")
      .endObject()
      .beginArray()
      .endArray()
      .value(false)
      .endArray()
      .key("obj")
      .beginObject()
      .key("inner")
      .beginObject()
      .endObject()
      .endObject()
      .key("last")
      .value(2)
      .endObject();
  EXPECT_EQ(R"({"list":[1,{"k":"v"},[],false],"obj":{"inner":{}},"last":2})", out);
}

TEST(WriterTest, TopLevelArrayOfValues) {
  std::string out;
  Writer(out).beginArray().value("a").value(uint64_t{2}).null().value(false).endArray();
  EXPECT_EQ(R"(["a",2,null,false])", out);
}

TEST(WriterTest, KeysAreEscaped) {
  std::string out;
  Writer(out).beginObject().key("a\"b\n").value("c\\").endObject();
  EXPECT_EQ(R"({"a\"b\n":"c\\"})", out);
}

TEST(WriterTest, RawIsInsertedVerbatimWithCommas) {
  std::string out;
  Writer(out).beginObject().key("a").raw(R"({"x":1})").key("b").raw("[1,2]").endObject();
  EXPECT_EQ(R"({"a":{"x":1},"b":[1,2]})", out);
  out.clear();
  Writer(out).beginArray().raw("1").raw("2").endArray();
  EXPECT_EQ("[1,2]", out);
}

TEST(WriterTest, CharPointerIsAStringNotABool) {
  std::string out;
  Writer(out).beginArray().value("true").endArray();
  EXPECT_EQ(R"(["true"])", out);
}

struct IntCase {
  int64_t v;
  std::string expected;
};

TEST(WriterTest, IntegerValues) {
  const IntCase cases[] = {
      {0, "0"},
      {-1, "-1"},
      {42, "42"},
      {std::numeric_limits<int64_t>::max(), "9223372036854775807"},
      {std::numeric_limits<int64_t>::min(), "-9223372036854775808"},
  };
  for (const auto& c : cases) {
    std::string out;
    Writer(out).value(c.v);
    EXPECT_EQ(c.expected, out);
  }
  std::string out;
  Writer(out).value(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ("18446744073709551615", out);
  out.clear();
  Writer(out).value(7u);
  EXPECT_EQ("7", out);
  out.clear();
  Writer(out).value(-7);
  EXPECT_EQ("-7", out);
}

struct DoubleCase {
  double v;
  std::string expected;
};

TEST(WriterTest, DoubleValuesAndNonFiniteAsNull) {
  const DoubleCase cases[] = {
      {0.0, "0"},
      {1.5, "1.5"},
      {-2.25, "-2.25"},
      {0.005, "0.005"},
      {1e20, "1e+20"},
      {std::nan(""), "null"},
      {std::numeric_limits<double>::infinity(), "null"},
      {-std::numeric_limits<double>::infinity(), "null"},
  };
  for (const auto& c : cases) {
    std::string out;
    Writer(out).value(c.v);
    EXPECT_EQ(c.expected, out) << c.v;
  }
}

TEST(WriterTest, NanInsideObjectKeepsItWellFormed) {
  std::string out;
  Writer(out).beginObject().key("a").value(std::nan("")).key("b").value(1.0).endObject();
  EXPECT_EQ(R"({"a":null,"b":1})", out);
}

}  // namespace
}  // namespace levee::json
