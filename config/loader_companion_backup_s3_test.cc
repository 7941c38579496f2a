// `companion.backup.s3` (config/loader_companion_backup.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::errorsOf;
using test::load;

// `companion:` is on line 12 (after the route policy of loader_test_util.h).
const std::string kBase = test::withRoute("", R"(companion:
  backup:
    dir: /var/lib/levee/backups
    targets: { files: { paths: [/x] } }
)");

TEST(LoaderBackupS3Test, FullSection) {
  const Policy p = load(kBase + R"(    s3:
      endpoint: https://s3.example.com:8443/
      bucket: my-backups.eu
      prefix: levee/prod
      region: eu-west-1
      access_key_id_file: /etc/levee/s3-key-id
      secret_access_key_env: LEVEE_S3_SECRET
      tls: { verify: false, ca_file: /etc/levee/ca.pem }
      connect_timeout: 2s
      stall_timeout: 30s
      keep_local: true
      multipart_part_size: 8MiB
)");
  const BackupS3Config& s = p.companion.backup.s3;
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ("https://s3.example.com:8443", s.endpoint);
  EXPECT_EQ("my-backups.eu", s.bucket);
  EXPECT_EQ("levee/prod/", s.prefix);
  EXPECT_EQ("eu-west-1", s.region);
  EXPECT_EQ("/etc/levee/s3-key-id", s.access_key_id_file);
  EXPECT_TRUE(s.access_key_id_env.empty());
  EXPECT_EQ("LEVEE_S3_SECRET", s.secret_access_key_env);
  EXPECT_FALSE(s.tls_verify);
  EXPECT_EQ("/etc/levee/ca.pem", s.tls_ca_file);
  EXPECT_EQ(Duration(2000), s.connect_timeout);
  EXPECT_EQ(Duration(30000), s.stall_timeout);
  EXPECT_TRUE(s.keep_local);
  EXPECT_EQ(8u << 20, s.multipart_part_size);
}

TEST(LoaderBackupS3Test, Defaults) {
  EXPECT_FALSE(load(kBase).companion.backup.s3.enabled);
  const Policy p = load(kBase + R"(    s3:
      endpoint: http://127.0.0.1:9000
      bucket: bk1
      access_key_id_env: AWS_ACCESS_KEY_ID
      secret_access_key_env: AWS_SECRET_ACCESS_KEY
)");
  const BackupS3Config& s = p.companion.backup.s3;
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ("", s.prefix);
  EXPECT_EQ("us-east-1", s.region);
  EXPECT_TRUE(s.tls_verify);
  EXPECT_EQ(Duration(5000), s.connect_timeout);
  EXPECT_EQ(Duration(60000), s.stall_timeout);
  EXPECT_FALSE(s.keep_local);
  EXPECT_EQ(64u << 20, s.multipart_part_size);
}

TEST(LoaderBackupS3Test, ErrorsCarryFileLineColumnAndPath) {
  EXPECT_THAT(errorsOf(kBase + R"(    s3:
      endpoint: ftp://host/path
      bucket: Bad_Bucket
      prefix: /abs/../x
      region: "eu west"
      access_key_id_file: relative/file
      access_key_id_env: AWS_ACCESS_KEY_ID
      secret: inline
      stall_timeout: 0s
)"),
              ElementsAre("p.yaml:17:7: companion.backup.s3: missing secret_access_key_file or "
                          "secret_access_key_env (secrets are read from a file or an environment variable, never "
                          "the YAML)",
                          "p.yaml:17:17: companion.backup.s3.endpoint: expected http://host[:port] or "
                          "https://host[:port] (no path), got \"ftp://host/path\"",
                          HasSubstr("p.yaml:18:15: companion.backup.s3.bucket: bucket names must match"),
                          HasSubstr("p.yaml:19:15: companion.backup.s3.prefix: expected a key prefix"),
                          "p.yaml:20:15: companion.backup.s3.region: expected a region name like us-east-1, got "
                          "\"eu west\"",
                          "p.yaml:22:26: companion.backup.s3.access_key_id_env: give only one of "
                          "access_key_id_file and access_key_id_env",
                          "p.yaml:23:7: companion.backup.s3.secret: unknown key \"secret\" (expected one of: "
                          "endpoint, bucket, prefix, region, access_key_id_file, access_key_id_env, "
                          "secret_access_key_file, secret_access_key_env, tls, connect_timeout, stall_timeout, "
                          "keep_local, multipart_part_size)",
                          "p.yaml:24:22: companion.backup.s3.stall_timeout: must be greater than 0"));
  EXPECT_THAT(errorsOf(kBase + R"(    s3:
      endpoint: http://127.0.0.1:9000
      bucket: bk1
      access_key_id_file: /k
      secret_access_key_env: "1BAD"
      tls: { verify: true }
      multipart_part_size: 1MiB
)"),
              ElementsAre(HasSubstr("p.yaml:20:30: companion.backup.s3.secret_access_key_env: expected an "
                                    "environment variable name"),
                          "p.yaml:21:12: companion.backup.s3.tls: the endpoint is http:// (no TLS): use an "
                          "https:// endpoint or remove tls",
                          "p.yaml:22:28: companion.backup.s3.multipart_part_size: must be at least 5MiB (S3's "
                          "smallest part)"));
  EXPECT_THAT(errorsOf(kBase + "    s3: { bucket: bk1 }\n"),
              ElementsAre(HasSubstr("companion.backup.s3.endpoint: missing required key \"endpoint\""),
                          HasSubstr("missing access_key_id_file or access_key_id_env"),
                          HasSubstr("missing secret_access_key_file or secret_access_key_env")));
}

}  // namespace
}  // namespace levee::config
