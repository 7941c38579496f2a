// companion.failover.postgres and endpoints_from (loader_companion.cc).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/loader_context.h"
#include "config/loader_test_util.h"

namespace levee::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::errorsOf;
using test::load;

std::string policyWith(std::string_view companion, std::string_view from =
                                                       "{ failover: postgres, role: primary }") {
  return std::string(R"(version: 1
service: svc
listeners:
  - { name: db, address: 127.0.0.1:15432, protocol: tcp, upstream: pg }
upstreams:
  pg: { protocol: tcp, endpoints_from: )") +
         std::string(from) + " }\n" + std::string(companion);
}

constexpr std::string_view kCompanion = R"(companion:
  failover:
    postgres:
      members:
        - { name: pg-0, dsn: "host=127.0.0.1 port=5432 user=postgres" }
        - { name: pg-1, dsn: "hostaddr=127.0.0.2 user='a b' port=5433" }
      check_interval: 500ms
      failure_threshold: 2
      max_lag: 16MB
      lease: { backend: none }
)";

TEST(LoaderCompanionTest, ParsesFailoverAndEndpointsFrom) {
  Policy p = load(policyWith(kCompanion));
  const PostgresFailoverConfig& f = p.companion.failover_postgres;
  ASSERT_TRUE(f.enabled);
  ASSERT_EQ(f.members.size(), 2u);
  EXPECT_EQ(f.members[0].name, "pg-0");
  EXPECT_EQ(f.members[0].address.toString(), "127.0.0.1:5432");
  EXPECT_EQ(f.members[1].address.toString(), "127.0.0.2:5433");
  EXPECT_EQ(f.check_interval.count(), 500);
  EXPECT_EQ(f.check_timeout.count(), 1000);
  EXPECT_EQ(f.failure_threshold, 2u);
  EXPECT_EQ(f.max_lag, 16000000u);
  EXPECT_TRUE(f.auto_failover);
  EXPECT_EQ(p.upstreams.at("pg").endpoints_from.role, EndpointsFrom::Role::Primary);
  EXPECT_TRUE(p.upstreams.at("pg").endpoints.empty());
}

TEST(LoaderCompanionTest, DefaultsAndReplicaRole) {
  Policy p = load(policyWith(R"(companion:
  failover:
    postgres:
      members:
        - { name: a, dsn: "host=127.0.0.1" }
        - { name: b, dsn: "host=127.0.0.1 port=5433" }
)",
                             "{ failover: postgres, role: replica }"));
  const PostgresFailoverConfig& f = p.companion.failover_postgres;
  EXPECT_EQ(f.check_interval.count(), 1000);
  EXPECT_EQ(f.failure_threshold, 3u);
  EXPECT_EQ(f.max_lag, 16u * 1024 * 1024);
  EXPECT_EQ(f.members[0].address.port, 5432);
  EXPECT_EQ(p.upstreams.at("pg").endpoints_from.role, EndpointsFrom::Role::Replica);
}

TEST(LoaderCompanionTest, ErrorsCarryLocationAndPath) {
  EXPECT_THAT(errorsOf(policyWith(R"(companion:
  failover:
    postgres:
      members:
        - { name: "bad name", dsn: "host=/var/run/postgresql" }
        - { name: b, dsn: "user=x" }
      failure_threshold: 0
      max_lag: 16 parsecs
      lease: { backend: zookeeper }
      check_intervall: 1s
)")),
              ElementsAre(
                  "p.yaml:11:19: companion.failover.postgres.members[0].name: must match "
                  "[a-zA-Z0-9_.-]+ (it is a metric label), got \"bad name\"",
                  "p.yaml:11:36: companion.failover.postgres.members[0].dsn: the DSN host "
                  "\"/var/run/postgresql\" is a Unix socket; the L4 route needs a TCP address",
                  "p.yaml:12:27: companion.failover.postgres.members[1].dsn: the DSN needs host= "
                  "(or hostaddr=) with an IP address: the L4 route connects there",
                  "p.yaml:13:26: companion.failover.postgres.failure_threshold: expected an "
                  "integer in [1,100], got \"0\"",
                  "p.yaml:14:16: companion.failover.postgres.max_lag: invalid size \"16 "
                  "parsecs\": unknown unit \" parsecs\" (use B, KB, MB, GB, TB, KiB, MiB, GiB or "
                  "TiB)",
                  "p.yaml:15:25: companion.failover.postgres.lease.backend: expected one of "
                  "none, etcd, got \"zookeeper\"",
                  "p.yaml:16:7: companion.failover.postgres.check_intervall: unknown key "
                  "\"check_intervall\" (did you mean \"check_interval\"?)"));
}

std::string withLease(std::string_view lease) {
  return policyWith(std::string(kCompanion.substr(0, kCompanion.find("      lease:"))) + std::string(lease));
}

TEST(LoaderCompanionTest, EtcdLease) {
  Policy p = load(withLease(R"(      lease:
        backend: etcd
        endpoints: [http://127.0.0.1:2379/, "http://etcd-1.etcd:2379"]
        key: /levee/pg/leader
)"));
  const PostgresFailoverConfig& f = p.companion.failover_postgres;
  EXPECT_EQ(f.lease_backend, PostgresFailoverConfig::LeaseBackend::Etcd);
  EXPECT_THAT(f.lease_endpoints, ElementsAre("http://127.0.0.1:2379", "http://etcd-1.etcd:2379"));
  EXPECT_EQ(f.lease_key, "/levee/pg/leader");
  EXPECT_EQ(f.lease_ttl.count(), 10000);  // default
  EXPECT_EQ(load(withLease("      lease: { backend: etcd, endpoints: [\"http://[::1]:2379\"], key: k, ttl: 30s }\n"))
                .companion.failover_postgres.lease_ttl.count(),
            30000);
}

TEST(LoaderCompanionTest, EtcdLeaseTls) {
  const Policy p = load(withLease(R"(      lease:
        backend: etcd
        endpoints: [https://etcd-0.etcd:2379/]
        key: /levee/leader
        tls: { ca_file: /etc/etcd/ca.pem, cert_file: /etc/etcd/client.pem, key_file: /etc/etcd/client-key.pem }
)"));
  const PostgresFailoverConfig& f = p.companion.failover_postgres;
  EXPECT_THAT(f.lease_endpoints, ElementsAre("https://etcd-0.etcd:2379"));
  EXPECT_EQ(f.lease_tls_ca_file, "/etc/etcd/ca.pem");
  EXPECT_EQ(f.lease_tls_cert_file, "/etc/etcd/client.pem");
  EXPECT_EQ(f.lease_tls_key_file, "/etc/etcd/client-key.pem");
  EXPECT_TRUE(f.lease_tls_verify);
  // https without a tls block: the system's CA bundle, no client certificate.
  const Policy plain = load(withLease("      lease: { backend: etcd, endpoints: [https://10.0.0.1:2379], key: k }\n"));
  EXPECT_TRUE(plain.companion.failover_postgres.lease_tls_ca_file.empty());
  EXPECT_THAT(errorsOf(withLease(R"(      lease:
        backend: etcd
        endpoints: [http://10.0.0.1:2379, https://10.0.0.2]
        key: k
        tls: { ca_file: ca.pem, cert_file: /c.pem, verify: maybe }
)")),
              ElementsAre("p.yaml:18:43: companion.failover.postgres.lease.endpoints[1]: expected "
                          "https://host:port (no path, no credentials), got \"https://10.0.0.2\"",
                          "p.yaml:20:25: companion.failover.postgres.lease.tls.ca_file: expected an absolute "
                          "file path, got \"ca.pem\"",
                          "p.yaml:20:44: companion.failover.postgres.lease.tls.cert_file: cert_file and key_file "
                          "go together (the client certificate and its key)",
                          "p.yaml:20:60: companion.failover.postgres.lease.tls.verify: expected true or false, got \"maybe\""));
  EXPECT_THAT(errorsOf(withLease("      lease: { backend: etcd, endpoints: [http://10.0.0.1:2379], key: k, "
                                 "tls: { verify: false } }\n")),
              ElementsAre(HasSubstr("companion.failover.postgres.lease.tls: tls applies to https:// endpoints "
                                    "and none is listed")));
}

TEST(LoaderCompanionTest, EtcdLeaseErrors) {
  EXPECT_THAT(errorsOf(withLease(R"(      lease:
        backend: etcd
        endpoints: [https://10.0.0.1:2379, "10.0.0.2:2379", http://10.0.0.3:2379/v3, http://h:0, [x]]
        ttl: 1s
        tls: {}
)")),
              ElementsAre(
                  "p.yaml:17:9: companion.failover.postgres.lease.key: missing required key \"key\"",
                  "p.yaml:18:44: companion.failover.postgres.lease.endpoints[1]: expected "
                  "http://host:port or https://host:port, got \"10.0.0.2:2379\"",
                  "p.yaml:18:61: companion.failover.postgres.lease.endpoints[2]: expected "
                  "http://host:port (no path, no credentials), got \"http://10.0.0.3:2379/v3\"",
                  "p.yaml:18:86: companion.failover.postgres.lease.endpoints[3]: expected a port in "
                  "[1,65535] in \"http://h:0\"",
                  "p.yaml:18:98: companion.failover.postgres.lease.endpoints[4]: expected "
                  "http(s)://host:port, got a sequence",
                  "p.yaml:19:14: companion.failover.postgres.lease.ttl: expected a duration in "
                  "[2s,5m], got 1s"));
  EXPECT_THAT(errorsOf(withLease("      lease: { backend: etcd, endpoints: [], key: \"\", ttl: 2500ms }\n")),
              ElementsAre("p.yaml:16:42: companion.failover.postgres.lease.endpoints: needs at least "
                          "one etcd endpoint (http(s)://host:port)",
                          "p.yaml:16:51: companion.failover.postgres.lease.key: must not be empty",
                          "p.yaml:16:60: companion.failover.postgres.lease.ttl: etcd lease TTLs are "
                          "whole seconds, got 2500ms"));
  EXPECT_THAT(errorsOf(withLease("      lease: { backend: none, key: k }\n")),
              ElementsAre("p.yaml:16:36: companion.failover.postgres.lease.key: only for backend: "
                          "etcd (backend none needs no settings)"));
}

TEST(LoaderCompanionTest, DuplicateMembersAndTooFew) {
  EXPECT_THAT(errorsOf(policyWith(R"(companion:
  failover:
    postgres:
      members:
        - { name: a, dsn: "host=127.0.0.1" }
        - { name: a, dsn: "host=127.0.0.2" }
        - { name: c, dsn: "host=127.0.0.1 port=5432" }
)")),
              ElementsAre("p.yaml:12:19: companion.failover.postgres.members[1].name: duplicate "
                          "member name \"a\" (first listed at companion.failover.postgres."
                          "members[0])",
                          "p.yaml:13:27: companion.failover.postgres.members[2].dsn: member "
                          "address 127.0.0.1:5432 is also companion.failover.postgres.members[0]'s"));
  EXPECT_THAT(errorsOf(policyWith(R"(companion:
  failover:
    postgres:
      members: [ { name: a, dsn: "host=127.0.0.1" } ]
)")),
              ElementsAre("p.yaml:10:16: companion.failover.postgres.members: failover needs at "
                          "least two members (a primary and a replica)"));
}

TEST(LoaderCompanionTest, EndpointsFromNeedsTcpAndCompanion) {
  EXPECT_THAT(errorsOf(policyWith("", "{ failover: postgres, role: primary }")),
              ElementsAre("p.yaml:6:40: upstreams.pg.endpoints_from: endpoints_from: { failover: "
                          "postgres } needs a companion.failover.postgres section (the members "
                          "it follows)"));
  EXPECT_THAT(errorsOf(policyWith(kCompanion, "{ failover: mysql, role: leader }")),
              ElementsAre("p.yaml:6:52: upstreams.pg.endpoints_from.failover: expected one of "
                          "postgres, got \"mysql\"",
                          "p.yaml:6:65: upstreams.pg.endpoints_from.role: expected one of "
                          "primary, replica, got \"leader\""));
  EXPECT_THAT(errorsOf(R"(version: 1
service: svc
listeners:
  - { name: db, address: 127.0.0.1:15432, protocol: tcp, upstream: pg }
upstreams:
  pg: { protocol: tcp, endpoints: [ { address: 127.0.0.1:1 } ], endpoints_from: { failover: postgres, role: primary } }
)" + std::string(kCompanion)),
              ElementsAre("p.yaml:6:35: upstreams.pg.endpoints: an upstream has either static "
                          "endpoints or endpoints_from, not both"));
}

// Backup and failover sit side by side in one companion section.
TEST(LoaderCompanionTest, BackupBesideFailover) {
  EXPECT_THAT(errorsOf(policyWith("companion:\n  backup: { dir: /tmp }\n" +
                                  std::string(kCompanion).substr(11))),
              ElementsAre("p.yaml:8:11: companion.backup.targets: missing required key \"targets\""));
}

TEST(DsnTcpAddressTest, KeywordValueForms) {
  SocketAddress a;
  EXPECT_EQ(detail::dsnTcpAddress("host=10.0.0.1 port=6432 password='x y\\'z'", a), std::nullopt);
  EXPECT_EQ(a.toString(), "10.0.0.1:6432");
  EXPECT_EQ(detail::dsnTcpAddress("host = ::1", a), std::nullopt);
  EXPECT_EQ(a.port, 5432);
  EXPECT_TRUE(detail::dsnTcpAddress("host=db.svc", a).has_value());
  EXPECT_TRUE(detail::dsnTcpAddress("host=a,b", a).has_value());
  EXPECT_TRUE(detail::dsnTcpAddress("postgresql://127.0.0.1/db", a).has_value());
  EXPECT_TRUE(detail::dsnTcpAddress("host='127.0.0.1", a).has_value());
}

}  // namespace
}  // namespace levee::config
