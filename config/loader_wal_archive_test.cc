// companion.backup.wal_archive (loader_companion_backup.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using test::errorsOf;
using test::load;

// The wal_archive block starts on line 10, column 18.
std::string policyWith(std::string_view wal, std::string_view targets =
                                                 "{ postgres: { dsn: \"host=127.0.0.1 user=postgres\", databases: [app] } }") {
  return std::string(R"(version: 1
service: svc
listeners:
  - { name: in, address: 127.0.0.1:15006, routes: [ { name: r, upstream: app } ] }
upstreams:
  app: { endpoints: [ { address: 127.0.0.1:8080 } ] }
companion:
  backup:
    dir: /var/lib/levee/backups
    wal_archive: )") + std::string(wal) + "\n    targets: " + std::string(targets) + "\n";
}

TEST(LoaderWalArchiveTest, Defaults) {
  const Policy p = load(policyWith("{}"));
  const WalArchiveConfig& w = p.companion.backup.wal_archive;
  EXPECT_TRUE(w.enabled);
  EXPECT_EQ(w.dsn, "host=127.0.0.1 user=postgres");  // from targets.postgres
  EXPECT_EQ(w.slot, "levee_wal");
  EXPECT_EQ(w.dir, "/var/lib/levee/backups/wal");
  EXPECT_EQ(w.restart_backoff, Duration(1000));
  EXPECT_EQ(w.max_restart_backoff, Duration(30000));
  EXPECT_EQ(w.status_interval, Duration(1000));
  EXPECT_TRUE(w.synchronous);
}

TEST(LoaderWalArchiveTest, AllKeys) {
  const Policy p = load(policyWith(
      "{ dsn: \"host=10.0.0.5 user=repl\", slot: wal_1, dir: /srv/wal, restart_backoff: 200ms, "
      "max_restart_backoff: 5s, status_interval: 250ms, synchronous: false }"));
  const WalArchiveConfig& w = p.companion.backup.wal_archive;
  EXPECT_EQ(w.dsn, "host=10.0.0.5 user=repl");
  EXPECT_EQ(w.slot, "wal_1");
  EXPECT_EQ(w.dir, "/srv/wal");
  EXPECT_EQ(w.restart_backoff, Duration(200));
  EXPECT_EQ(w.max_restart_backoff, Duration(5000));
  EXPECT_EQ(w.status_interval, Duration(250));
  EXPECT_FALSE(w.synchronous);
}

TEST(LoaderWalArchiveTest, DisabledIsOff) {
  const Policy p = load(policyWith("{ enabled: false }", "{ files: { paths: [/srv] } }"));
  EXPECT_FALSE(p.companion.backup.wal_archive.enabled);
  EXPECT_EQ(p.companion.backup.wal_archive, WalArchiveConfig{});
}

TEST(LoaderWalArchiveTest, ErrorsInOnePass) {
  EXPECT_THAT(errorsOf(policyWith("{ slot: Bad-Slot, dir: rel/wal, restart_backoff: 0s, status_interval: x, "
                                  "synchronous: 3, bogus: 1 }")),
              ElementsAre("p.yaml:10:26: companion.backup.wal_archive.slot: slot names must match "
                          "[a-z0-9_]{1,63}, got \"Bad-Slot\"",
                          "p.yaml:10:41: companion.backup.wal_archive.dir: expected an absolute directory "
                          "path, got \"rel/wal\"",
                          "p.yaml:10:67: companion.backup.wal_archive.restart_backoff: must be greater than 0",
                          "p.yaml:10:88: companion.backup.wal_archive.status_interval: invalid duration \"x\" "
                          "(expected e.g. \"250ms\", \"3s\", \"5m\", \"1h\")",
                          "p.yaml:10:104: companion.backup.wal_archive.synchronous: expected true or false, "
                          "got \"3\"",
                          "p.yaml:10:107: companion.backup.wal_archive.bogus: unknown key \"bogus\" (expected "
                          "one of: enabled, dsn, slot, dir, restart_backoff, max_restart_backoff, "
                          "status_interval, synchronous, partial_upload_interval)"));
}

TEST(LoaderWalArchiveTest, DsnRequiredWithoutPostgresTarget) {
  EXPECT_THAT(errorsOf(policyWith("{ slot: s }", "{ files: { paths: [/srv] } }")),
              ElementsAre("p.yaml:10:18: companion.backup.wal_archive.dsn: missing required key \"dsn\" "
                          "(or set targets.postgres.dsn)"));
}

TEST(LoaderWalArchiveTest, BackoffOrder) {
  EXPECT_THAT(errorsOf(policyWith("{ restart_backoff: 10s, max_restart_backoff: 1s }")),
              ElementsAre("p.yaml:10:63: companion.backup.wal_archive.max_restart_backoff: must be at least "
                          "restart_backoff (10s)"));
}

TEST(LoaderWalArchiveTest, WrongType) {
  EXPECT_THAT(errorsOf(policyWith("true")),
              ElementsAre("p.yaml:10:18: companion.backup.wal_archive: expected a mapping, got \"true\""));
}

constexpr std::string_view kS3 =
    "    s3: { endpoint: http://127.0.0.1:9000, bucket: bk1, access_key_id_env: K, secret_access_key_env: S }\n";

TEST(LoaderWalArchiveTest, WithS3TheArchiveUploadsToTheBucket) {
  const Policy p = load(policyWith("{ partial_upload_interval: 15s }") + std::string(kS3));
  const WalArchiveConfig& w = p.companion.backup.wal_archive;
  EXPECT_TRUE(w.enabled);
  EXPECT_TRUE(w.s3.enabled);
  EXPECT_EQ(w.s3, p.companion.backup.s3);  // the same bucket as the base backups
  EXPECT_EQ(w.s3.bucket, "bk1");
  EXPECT_EQ(w.partial_upload_interval, Duration(15000));
  EXPECT_EQ(load(policyWith("{}") + std::string(kS3)).companion.backup.wal_archive.partial_upload_interval,
            Duration(60000));
  // 0: complete segments only.
  EXPECT_EQ(load(policyWith("{ partial_upload_interval: 0s }") + std::string(kS3))
                .companion.backup.wal_archive.partial_upload_interval,
            Duration(0));
}

TEST(LoaderWalArchiveTest, PartialUploadIntervalNeedsS3) {
  EXPECT_FALSE(load(policyWith("{}")).companion.backup.wal_archive.s3.enabled);
  EXPECT_THAT(errorsOf(policyWith("{ partial_upload_interval: 5s }")),
              ElementsAre("p.yaml:10:45: companion.backup.wal_archive.partial_upload_interval: only applies with "
                          "companion.backup.s3 (the .partial segment is uploaded to the bucket)"));
}

}  // namespace
}  // namespace levee::config
