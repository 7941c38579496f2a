// `companion.backup` (config/loader_companion.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::errorsOf;
using test::load;

constexpr std::string_view kBase = R"(version: 1
service: orders
listeners:
  - name: inbound
    address: 127.0.0.1:15006
    routes:
      - name: all
        match: { prefix: / }
        upstream: app
upstreams:
  app:
    endpoints:
      - { address: 127.0.0.1:8080 }
)";

TEST(LoaderCompanionTest, FullBackupSection) {
  const Policy p = load(std::string(kBase) + R"(companion:
  backup:
    dir: /var/lib/levee/backups
    targets:
      postgres: { dsn: "host=127.0.0.1 port=5432 user=postgres", databases: [app, billing] }
      redis: { address: 127.0.0.1:6379 }
      files: { paths: [/app/uploads, /etc/app] }
    retention: { daily: 3, weekly: 2, monthly: 1 }
    schedule: "0 2 * * *"
)");
  const BackupConfig& b = p.companion.backup;
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ("/var/lib/levee/backups", b.dir);
  EXPECT_EQ("host=127.0.0.1 port=5432 user=postgres", b.postgres_dsn);
  EXPECT_THAT(b.postgres_databases, ElementsAre("app", "billing"));
  EXPECT_TRUE(b.redis_enabled);
  EXPECT_EQ(6379, b.redis_address.port);
  EXPECT_THAT(b.file_paths, ElementsAre("/app/uploads", "/etc/app"));
  EXPECT_EQ(3u, b.retention_daily);
  EXPECT_EQ(2u, b.retention_weekly);
  EXPECT_EQ(1u, b.retention_monthly);
  EXPECT_EQ("0 2 * * *", b.schedule);
}

TEST(LoaderCompanionTest, DefaultsAndAbsence) {
  EXPECT_FALSE(load(kBase).companion.backup.enabled);
  const Policy p = load(std::string(kBase) + "companion:\n  backup:\n    dir: /b\n    targets: { files: { paths: [/x] } }\n");
  EXPECT_TRUE(p.companion.backup.enabled);
  EXPECT_EQ(7u, p.companion.backup.retention_daily);
  EXPECT_EQ(4u, p.companion.backup.retention_weekly);
  EXPECT_EQ(12u, p.companion.backup.retention_monthly);
  EXPECT_TRUE(p.companion.backup.schedule.empty());
  EXPECT_FALSE(p.companion.backup.redis_enabled);
  EXPECT_TRUE(p.companion.backup.redis_restore_bind.empty());
}

TEST(LoaderCompanionTest, RedisRestoreBind) {
  const Policy p = load(std::string(kBase) +
                        "companion:\n  backup:\n    dir: /b\n"
                        "    targets: { redis: { address: 10.0.0.7:6379, restore_bind: 10.0.0.2 } }\n");
  EXPECT_EQ("10.0.0.2", p.companion.backup.redis_restore_bind);
  EXPECT_THAT(errorsOf(std::string(kBase) +
                       "companion:\n  backup:\n    dir: /b\n"
                       "    targets: { redis: { address: 10.0.0.7:6379, restore_bind: somehost } }\n"),
              ElementsAre(HasSubstr("companion.backup.targets.redis.restore_bind: expected an IP address of this "
                                    "host, got \"somehost\"")));
}

TEST(LoaderCompanionTest, RedisAuth) {
  const std::string head = std::string(kBase) + "companion:\n  backup:\n    dir: /b\n    targets: { redis: { address: 10.0.0.7:6379";
  const Policy p = load(head + ", username: backup, password_file: /run/secrets/redis } }\n");
  EXPECT_EQ("backup", p.companion.backup.redis_username);
  EXPECT_EQ("/run/secrets/redis", p.companion.backup.redis_password_file);
  EXPECT_TRUE(p.companion.backup.redis_password_env.empty());
  const Policy e = load(head + ", password_env: REDIS_PASSWORD } }\n");
  EXPECT_EQ("REDIS_PASSWORD", e.companion.backup.redis_password_env);
  EXPECT_TRUE(e.companion.backup.redis_username.empty());
  const Policy none = load(head + " } }\n");
  EXPECT_TRUE(none.companion.backup.redis_password_file.empty());
  EXPECT_TRUE(none.companion.backup.redis_password_env.empty());
  EXPECT_THAT(errorsOf(head + ", username: backup } }\n"),
              ElementsAre(HasSubstr("companion.backup.targets.redis.username: username needs password_file or "
                                    "password_env")));
  EXPECT_THAT(errorsOf(head + ", password_file: relative } }\n"),
              ElementsAre(HasSubstr("companion.backup.targets.redis.password_file: expected an absolute file path")));
  EXPECT_THAT(errorsOf(head + ", password_file: /a, password_env: B } }\n"),
              ElementsAre(HasSubstr("give only one of password_file and password_env")));
  EXPECT_THAT(errorsOf(head + ", password: hunter2 } }\n"), ElementsAre(HasSubstr("unknown key \"password\"")));
}

TEST(LoaderCompanionTest, ErrorsCarryFileLineColumnAndPath) {
  EXPECT_THAT(errorsOf(std::string(kBase) + R"(companion:
  backup:
    dir: relative/dir
    targets:
      postgres: { databases: ["bad name"] }
      files: { paths: [] }
      s3x: {}
    retention: { daily: 0 }
    schedule: "61 * * * *"
)"),
              ElementsAre("p.yaml:16:10: companion.backup.dir: expected an absolute directory path, got \"relative/dir\"",
                          "p.yaml:18:17: companion.backup.targets.postgres.dsn: missing required key \"dsn\"",
                          "p.yaml:18:31: companion.backup.targets.postgres.databases[0]: database names must match "
                          "[A-Za-z0-9_-]{1,48}, got \"bad name\"",
                          "p.yaml:19:23: companion.backup.targets.files.paths: must list at least one path",
                          "p.yaml:20:7: companion.backup.targets.s3x: unknown key \"s3x\" (expected one of: "
                          "postgres, redis, files)",
                          "p.yaml:21:25: companion.backup.retention.daily: expected an integer in [1,10000], got \"0\"",
                          "p.yaml:22:15: companion.backup.schedule: invalid cron expression: minute: 61 is out of "
                          "range (0-59)"));
  EXPECT_THAT(errorsOf(std::string(kBase) + "companion:\n  backup:\n    dir: /b\n    targets: {}\n"),
              ElementsAre(HasSubstr("p.yaml:17:14: companion.backup.targets: must name at least one of postgres, "
                                    "redis, files")));
  EXPECT_THAT(errorsOf(std::string(kBase) + "companion:\n  backup: { dir: /b }\n"),
              ElementsAre(HasSubstr("companion.backup.targets: missing required key \"targets\"")));
  EXPECT_THAT(errorsOf(std::string(kBase) +
                       "companion:\n  backup:\n    dir: /b\n    targets: { files: { paths: [/x] } }\n"
                       "    schedule: \"0 0 31 2 *\"\n"),
              ElementsAre("p.yaml:18:15: companion.backup.schedule: the cron expression never matches a date"));
}

}  // namespace
}  // namespace levee::config
