#include "proxy/server/options.h"

#include <gtest/gtest.h>

namespace levee::server {
namespace {

TEST(OptionsTest, RunWithFlags) {
  auto o = parseOptions({"run", "--config", "p.yaml", "--concurrency=2", "--log-level", "debug"});
  ASSERT_TRUE(o.has_value()) << o.error().toString();
  EXPECT_EQ(o->command, Options::Command::Run);
  EXPECT_EQ(o->config_path, "p.yaml");
  EXPECT_EQ(o->concurrency, 2u);
  EXPECT_EQ(o->log_level, "debug");
}

TEST(OptionsTest, BareConfigMeansRun) {
  auto o = parseOptions({"--config", "p.yaml"});
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->command, Options::Command::Run);
}

TEST(OptionsTest, Validate) {
  auto o = parseOptions({"validate", "x.yaml"});
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->command, Options::Command::Validate);
  EXPECT_EQ(o->config_path, "x.yaml");
}

TEST(OptionsTest, Await) {
  auto d = parseOptions({"await"});
  ASSERT_TRUE(d.has_value()) << d.error().toString();
  EXPECT_EQ(d->command, Options::Command::Await);
  EXPECT_EQ(d->await_address, "127.0.0.1:15021");
  EXPECT_EQ(d->await_timeout_ms, 60000u);
  auto o = parseOptions({"await", "--address", "127.0.0.1:9", "--timeout=1.5s"});
  ASSERT_TRUE(o.has_value()) << o.error().toString();
  EXPECT_EQ(o->await_address, "127.0.0.1:9");
  EXPECT_EQ(o->await_timeout_ms, 1500u);
  EXPECT_FALSE(parseOptions({"await", "--timeout", "5"}).has_value());  // the unit is mandatory
  EXPECT_FALSE(parseOptions({"await", "--address", "localhost"}).has_value());
  EXPECT_FALSE(parseOptions({"await", "--timeout"}).has_value());
  EXPECT_EQ(parseOptions({"await", "--config", "x"}).error().message, "await: unknown option \"--config\"");
}

TEST(OptionsTest, Errors) {
  EXPECT_FALSE(parseOptions({"run"}).has_value());
  EXPECT_FALSE(parseOptions({"run", "--config", "a", "--concurrency", "0"}).has_value());
  EXPECT_FALSE(parseOptions({"run", "--config", "a", "--concurrency", "x"}).has_value());
  EXPECT_FALSE(parseOptions({"run", "--config", "a", "--log-level", "loud"}).has_value());
  EXPECT_FALSE(parseOptions({"frobnicate"}).has_value());
  EXPECT_FALSE(parseOptions({"run", "--config"}).has_value());
  EXPECT_EQ(parseOptions({"run", "--bogus"}).error().message, "unknown option \"--bogus\"");
}

}  // namespace
}  // namespace levee::server
