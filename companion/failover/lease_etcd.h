#pragma once
// The etcd leader lease (backend etcd): etcd v3's JSON gateway (/v3/...) over plain HTTP with
// libcurl, on one worker thread owned by the lease (each call is bounded by a timeout; the main
// loop only posts rounds and receives their outcome, it never waits).
//
// One round, every ttl/3 (and on confirm()):
//   1. /v3/lease/grant {TTL} when we have no lease, else /v3/lease/keepalive {ID} (TTL 0 in the
//      answer: the lease is gone, grant a new one);
//   2. /v3/kv/txn: when we believe we own the key, compare value == our id and lease == our
//      lease ("keep"); otherwise compare create_revision == 0, then put {key: our id, lease}
//      ("acquire"). The failure branch ranges over the key, so we learn the holder.
// Ownership counts from the monotonic time at which the round's grant/keepalive was *sent*
// (etcd's expiry is at least that plus the TTL), and held() is believed only for
// ttl - margin after it (margin = ttl/4): a levee cut off from etcd stops believing it leads
// before etcd can give the key to another levee. Clean shutdown revokes the lease (the key goes
// with it, so another levee acquires at its next round instead of after the TTL).
//
// Keys and values are base64 in that API; int64 fields are JSON strings.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "companion/failover/lease.h"
#include "proxy/common/result.h"

namespace levee::companion::failover {

namespace etcd {

std::string base64Encode(std::string_view in);
// nullopt for anything that is not canonical padded base64.
std::optional<std::string> base64Decode(std::string_view in);

// Request bodies.
std::string grantBody(int64_t ttl_seconds);
std::string leaseIdBody(int64_t lease_id);  // keepalive and revoke
std::string acquireTxnBody(std::string_view key, std::string_view value, int64_t lease_id);
std::string keepTxnBody(std::string_view key, std::string_view value, int64_t lease_id);
std::string rangeBody(std::string_view key);

struct Grant {
  int64_t id{0};
  int64_t ttl{0};
};
struct KeyValue {
  bool present{false};
  std::string value;  // decoded
  int64_t lease{0};
};
struct Txn {
  bool succeeded{false};
  KeyValue kv;  // from the range in the branch that ran (present only when it ranged the key)
};

// Answers (HTTP 200 bodies). Errors name what was wrong; an etcd error body
// ({"error": ..., "code": N}) becomes "etcd: <error> (code N)".
Result<Grant> parseGrant(std::string_view body);
// The TTL the lease has now; 0 when etcd no longer knows it (expired or revoked).
Result<int64_t> parseKeepalive(std::string_view body);
Result<Txn> parseTxn(std::string_view body);
Result<KeyValue> parseRange(std::string_view body);
// The message of an etcd error body, or a bounded excerpt of an unexpected one.
std::string errorText(std::string_view body);

// The ownership clock (pure; times in ms on a monotonic clock).
class LeaseClock {
public:
  LeaseClock(uint64_t ttl_ms, uint64_t margin_ms) : ttl_ms_(ttl_ms), margin_ms_(margin_ms) {}
  // A round whose first request was sent at `sent_ms` confirmed that we own the key.
  void renewed(uint64_t sent_ms);
  // The backend said that somebody else (or nobody) owns it.
  void lost() { owned_ = false; }
  bool owned() const { return owned_; }
  bool held(uint64_t now_ms) const {
    return owned_ && renewed_ms_ != 0 && now_ms < renewed_ms_ + validMs();
  }
  // How long a renewal is believed: ttl - margin.
  uint64_t validMs() const { return ttl_ms_ > margin_ms_ ? ttl_ms_ - margin_ms_ : 0; }
  std::optional<uint64_t> renewalAgeMs(uint64_t now_ms) const;

private:
  uint64_t ttl_ms_;
  uint64_t margin_ms_;
  bool owned_{false};
  uint64_t renewed_ms_{0};
};

// "<host>-<pid>-<8 hex>": POD_NAME, else HOSTNAME, else gethostname(); fixed for the process.
const std::string& instanceId();

}  // namespace etcd

class EtcdLease final : public LeaderLease {
public:
  EtcdLease(event::Dispatcher& main, const config::PostgresFailoverConfig& config);
  ~EtcdLease() override;
  EtcdLease(const EtcdLease&) = delete;
  EtcdLease& operator=(const EtcdLease&) = delete;

  std::string_view backend() const override { return "etcd"; }
  void start() override;
  bool held() const override;
  void confirm(ConfirmCb cb) override;
  void release() override;
  bool idle() const override;
  void writeStatus(json::Writer& w) const override;

  // What one round found (worker thread -> main loop).
  struct Outcome {
    int64_t lease_id{0};
    bool owned{false};          // the txn confirmed that we own the key
    bool known{false};          // the txn ran (owned and holder are meaningful)
    uint64_t sent_ms{0};        // when the round's grant/keepalive was sent
    std::string holder;         // the key's value ("" when nobody holds it)
    std::string endpoint;       // the endpoint that answered last
    std::string error;          // empty: every call succeeded
  };

private:
  class Worker;
  void tick();
  void startRound();
  void onRound(Outcome out);

  event::Dispatcher& main_;
  std::vector<std::string> endpoints_;
  std::string key_;
  std::string id_;
  uint64_t ttl_ms_;
  etcd::LeaseClock clock_;
  event::TimerPtr timer_;
  std::unique_ptr<Worker> worker_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  bool in_flight_{false};
  bool released_{false};
  int64_t lease_id_{0};
  std::string holder_;
  std::string endpoint_;
  uint64_t rounds_{0};
  uint64_t errors_{0};
  std::string last_error_;
  uint64_t last_error_ms_{0};
  std::vector<ConfirmCb> waiting_;  // confirm() calls for the next round
  std::vector<ConfirmCb> round_;    // confirm() calls answered by the round in flight
};

}  // namespace levee::companion::failover
