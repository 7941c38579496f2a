// The pure parts of the etcd lease (lease_etcd.h): base64, the JSON bodies of the v3 gateway
// calls and their answers (as etcd 3.4 writes them), and the ownership clock.

#include "companion/failover/lease_etcd.h"

#include <gtest/gtest.h>

#include "proxy/common/json_reader.h"

namespace levee::companion::failover::etcd {
namespace {

TEST(EtcdBase64Test, RoundTripAndVectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("/levee/test"), "L2xldmVlL3Rlc3Q=");
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  for (size_t n = 0; n <= all.size(); n += 37) {
    const std::string in = all.substr(0, n);
    EXPECT_EQ(base64Decode(base64Encode(in)), in) << n;
  }
  EXPECT_EQ(base64Decode("bWU="), "me");
  EXPECT_EQ(base64Decode(""), "");
}

TEST(EtcdBase64Test, RejectsNonCanonical) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Z!==", "Zm 9", "x=x="}) {
    EXPECT_EQ(base64Decode(bad), std::nullopt) << bad;
  }
}

TEST(EtcdBodiesTest, RequestsAreJsonWithBase64KeysAndStringInts) {
  EXPECT_EQ(grantBody(10), R"({"TTL":"10"})");
  EXPECT_EQ(leaseIdBody(4111120382757873413), R"({"ID":"4111120382757873413"})");
  EXPECT_EQ(rangeBody("/levee/test"), R"({"key":"L2xldmVlL3Rlc3Q="})");
  EXPECT_EQ(acquireTxnBody("/levee/test", "me", 7),
            R"({"compare":[{"target":"CREATE","result":"EQUAL","key":"L2xldmVlL3Rlc3Q=",)"
            R"("create_revision":"0"}],"success":[{"request_put":{"key":"L2xldmVlL3Rlc3Q=",)"
            R"("value":"bWU=","lease":"7"}}],"failure":[{"request_range":{"key":"L2xldmVlL3Rlc3Q="}}]})");
  const std::string keep = keepTxnBody("k", "me", 7);
  EXPECT_NE(keep.find(R"({"target":"VALUE","result":"EQUAL","key":"aw==","value":"bWU="})"),
            std::string::npos);
  EXPECT_NE(keep.find(R"({"target":"LEASE","result":"EQUAL","key":"aw==","lease":"7"})"),
            std::string::npos);
  for (const std::string& body : {grantBody(3), leaseIdBody(-1), acquireTxnBody("\"\\", "\n", 1), keep}) {
    EXPECT_TRUE(json::parse(body).has_value()) << body;
  }
}

constexpr std::string_view kHeader =
    R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"})";

std::string withHeader(std::string_view rest) { return "{" + std::string(kHeader) + std::string(rest) + "}"; }

TEST(EtcdAnswersTest, GrantAndKeepalive) {
  auto g = parseGrant(withHeader(R"(,"ID":"4111120382757873413","TTL":"10")"));
  ASSERT_TRUE(g.has_value()) << g.error().message;
  EXPECT_EQ(g->id, 4111120382757873413);
  EXPECT_EQ(g->ttl, 10);
  EXPECT_FALSE(parseGrant(withHeader(R"(,"TTL":"10")")).has_value());
  EXPECT_FALSE(parseGrant(withHeader(R"(,"ID":"x1","TTL":"10")")).has_value());

  auto k = parseKeepalive("{\"result\":" + withHeader(R"(,"ID":"4111120382757873413","TTL":"9")") + "}");
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(*k, 9);
  // An unknown (expired, revoked) lease: etcd omits TTL.
  auto gone = parseKeepalive("{\"result\":" + withHeader(R"(,"ID":"123")") + "}");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, 0);
  auto err = parseKeepalive(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})");
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().message, "etcd: etcdserver: no leader (code 14)");
}

TEST(EtcdAnswersTest, TxnSucceededAndFailedWithHolder) {
  auto ok = parseTxn(withHeader(R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}])"));
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_TRUE(ok->succeeded);
  EXPECT_FALSE(ok->kv.present);
  // etcd leaves "succeeded": false out; the failure branch ranged the key.
  auto taken = parseTxn(withHeader(
      R"(,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L2xldmVlL3Rlc3Q=","create_revision":"2","mod_revision":"2","version":"1","value":"bWU=","lease":"4111120382757873413"}],"count":"1"}}])"));
  ASSERT_TRUE(taken.has_value()) << taken.error().message;
  EXPECT_FALSE(taken->succeeded);
  EXPECT_TRUE(taken->kv.present);
  EXPECT_EQ(taken->kv.value, "me");
  EXPECT_EQ(taken->kv.lease, 4111120382757873413);
  // Keep txn failing because the key is gone: the range finds nothing.
  auto gone = parseTxn(withHeader(R"(,"responses":[{"response_range":{"header":{"revision":"3"}}}])"));
  ASSERT_TRUE(gone.has_value());
  EXPECT_FALSE(gone->succeeded);
  EXPECT_FALSE(gone->kv.present);
  auto camel = parseTxn(withHeader(R"(,"responses":[{"responseRange":{"kvs":[{"value":"aGk="}]}}])"));
  ASSERT_TRUE(camel.has_value());
  EXPECT_EQ(camel->kv.value, "hi");
}

TEST(EtcdAnswersTest, RangeAndHostileAnswers) {
  auto r = parseRange(withHeader(R"(,"kvs":[{"key":"aw==","value":"","lease":"5"}],"count":"1")"));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->present);
  EXPECT_EQ(r->value, "");
  EXPECT_EQ(r->lease, 5);
  auto none = parseRange(withHeader(""));
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->present);

  auto bad_json = parseTxn("<html>502 Bad Gateway</html>");
  ASSERT_FALSE(bad_json.has_value());
  EXPECT_NE(bad_json.error().message.find("not JSON"), std::string::npos);
  EXPECT_FALSE(parseTxn("[]").has_value());
  EXPECT_FALSE(parseTxn("{}").has_value());  // no header
  EXPECT_FALSE(parseTxn(withHeader(R"(,"succeeded":"yes")")).has_value());
  EXPECT_FALSE(parseTxn(withHeader(R"(,"responses":{})")).has_value());
  EXPECT_FALSE(parseTxn(withHeader(R"(,"responses":[{"response_range":{"kvs":[{"value":"%%%"}]}}])")).has_value());
  EXPECT_FALSE(parseTxn(withHeader(R"(,"responses":[{"response_range":{"kvs":[{"lease":"1e9"}]}}])")).has_value());
  EXPECT_FALSE(parseRange(withHeader(R"(,"kvs":"x")")).has_value());
  EXPECT_FALSE(parseKeepalive(withHeader("")).has_value());  // no result object
  auto etcd_err = parseTxn(R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  ASSERT_FALSE(etcd_err.has_value());
  EXPECT_EQ(etcd_err.error().message, "etcd: etcdserver: requested lease not found (code 5)");
  EXPECT_EQ(errorText(std::string(5000, 'x')).size(), std::string("unexpected answer from etcd: ").size() + 200);
}

TEST(EtcdLeaseClockTest, HeldOnlyWithinTtlMinusMarginOfTheLastRenewal) {
  LeaseClock c(10000, 2500);
  EXPECT_EQ(c.validMs(), 7500u);
  EXPECT_FALSE(c.held(1000));
  EXPECT_EQ(c.renewalAgeMs(1000), std::nullopt);
  c.renewed(1000);  // the round's keepalive was sent at t=1000 ms
  EXPECT_TRUE(c.held(1000));
  EXPECT_TRUE(c.held(8499));
  EXPECT_FALSE(c.held(8500));  // etcd keeps the key until at least 11000: 2.5 s of margin
  EXPECT_EQ(c.renewalAgeMs(4000), 3000u);
  c.renewed(4000);
  EXPECT_TRUE(c.held(11499));
  EXPECT_FALSE(c.held(11500));
  c.renewed(3000);  // a late answer of an older round never moves the renewal back
  EXPECT_TRUE(c.held(11499));
  c.lost();
  EXPECT_FALSE(c.held(4001));
  EXPECT_FALSE(c.owned());
  c.renewed(20000);
  EXPECT_TRUE(c.held(20000));
  LeaseClock degenerate(1000, 2000);
  degenerate.renewed(5);
  EXPECT_FALSE(degenerate.held(5));
}

TEST(EtcdInstanceIdTest, HostPidRandomAndStable) {
  const std::string& id = instanceId();
  EXPECT_EQ(&id, &instanceId());
  EXPECT_NE(id.find("-" + std::to_string(::getpid()) + "-"), std::string::npos) << id;
  EXPECT_EQ(id.size() - id.rfind('-') - 1, 8u) << id;
}

}  // namespace
}  // namespace levee::companion::failover::etcd
