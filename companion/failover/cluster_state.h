#pragma once
// The failover decision, with no I/O: what levee believes about each PostgreSQL member, which
// member the L4 routes may use, and when to promote whom. Fed with check results and the time
// by FailoverManager (main loop); tested with injected observations and time.
//
// Invariants:
//  - at most one member is routed as primary, and only one that levee saw as the sole
//    unfenced primary or promoted itself;
//  - a member is promoted only while the lease is held, after the routed primary failed
//    `failure_threshold` consecutive checks (or by an explicit request), and only after the
//    old primary was fenced (no longer routed);
//  - a fenced member is routed again only once it reports being a replica, or, when no other
//    member was promoted meanwhile, once it answers as primary again.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "config/policy.h"

namespace levee::companion::failover {

enum class Role { Unknown, Primary, Replica };
std::string_view roleName(Role role);

// One check of one member.
struct Observation {
  bool reachable{false};
  std::string error;           // when !reachable
  bool in_recovery{false};     // pg_is_in_recovery()
  uint64_t current_lsn{0};     // pg_current_wal_lsn() (primary)
  uint64_t receive_lsn{0};     // pg_last_wal_receive_lsn() (replica; 0 when none)
  uint64_t replay_lsn{0};      // pg_last_wal_replay_lsn() (replica)
};

struct MemberState {
  std::string name;
  bool checked{false};         // at least one check finished
  bool reachable{false};
  Role role{Role::Unknown};    // as last reported (kept while unreachable)
  uint32_t consecutive_failures{0};
  uint64_t current_lsn{0};
  uint64_t receive_lsn{0};
  uint64_t replay_lsn{0};
  uint64_t last_ok_ms{0};
  std::string last_error;
  bool fenced{false};          // not routed: failed (or replaced) primary
  bool replaced{false};        // another member was promoted while this one was fenced
};

// What the manager must do after an observation or a tick.
struct Decision {
  enum class Kind { None, Promote, Refuse };
  Kind kind{Kind::None};
  size_t target{0};
  std::string reason;          // for the log, the API and the failover counter
};

class ClusterState {
public:
  explicit ClusterState(const config::PostgresFailoverConfig& config);

  // One finished check of member `index` at `now_ms`. Returns log lines describing what changed
  // (adoption of a primary, fencing, split brain), in order.
  std::vector<std::string> observe(size_t index, const Observation& obs, uint64_t now_ms);
  // Whether to start an automatic failover now. `holds_lease`: this levee may promote.
  // Returns Promote with a target (after fencing the failed primary), Refuse with the reason
  // ("no_lease", "no_candidate") once per failure episode, or None.
  Decision evaluate(bool holds_lease);
  // An explicit promote request (API). `member` empty: the best candidate. `force`: also when
  // the routed primary is healthy (it is fenced first). Returns Promote or Refuse.
  Decision requestPromote(const std::string& member, bool force, bool holds_lease);
  // The promotion of `target` finished. On success it becomes the routed primary.
  void onPromoteDone(size_t target, bool ok, uint64_t now_ms);

  // Where the L4 routes go.
  std::optional<size_t> routedPrimary() const;
  std::vector<size_t> routedReplicas(uint64_t max_lag) const;
  // WAL bytes member `index` has not replayed yet, against the last known primary position
  // (nullopt: not a replica, or no position known).
  std::optional<uint64_t> replayLagBytes(size_t index) const {
    return lagBytes(index, &MemberState::replay_lsn);
  }
  std::optional<uint64_t> receiveLagBytes(size_t index) const {
    return lagBytes(index, &MemberState::receive_lsn);
  }
  // How long ago, at `now_ms`, the routed primary first stood beyond the position member `index`
  // has replayed: 0 when the replica has replayed everything the primary was seen to write (an
  // idle primary shows no lag, unlike a clock-based lag). Derived from the primary's positions
  // as levee checked them, so it reads up to one check_interval short; a lag older than the
  // history (kHistory positions) reads as the age of the oldest one. nullopt: not a replica, or
  // no routed primary's position known.
  std::optional<uint64_t> replayLagMs(size_t index, uint64_t now_ms) const;
  // The best promotion candidate: a reachable replica with the highest received LSN whose
  // receive lag is within max_lag.
  std::optional<size_t> bestCandidate() const;

  const std::vector<MemberState>& members() const { return members_; }
  bool promoting() const { return promoting_.has_value(); }
  std::optional<size_t> promotingTarget() const { return promoting_; }
  bool splitBrain() const { return split_brain_; }
  uint64_t primaryLsn() const { return primary_lsn_; }
  const config::PostgresFailoverConfig& config() const { return config_; }
  std::optional<size_t> indexOf(const std::string& name) const;

private:
  void fence(size_t index, std::vector<std::string>* log);
  std::vector<std::string> reconcile();
  std::optional<uint64_t> referenceLsn() const;
  std::optional<uint64_t> lagBytes(size_t index, uint64_t MemberState::*lsn) const;
  void notePrimaryPosition(uint64_t now_ms);

  struct Position {
    uint64_t lsn;
    uint64_t first_seen_ms;
  };
  static constexpr size_t kHistory = 4096;  // about an hour at the default 1 s check_interval

  config::PostgresFailoverConfig config_;
  std::vector<MemberState> members_;
  std::optional<size_t> primary_;     // routed primary
  std::optional<size_t> promoting_;   // promotion in flight
  std::optional<size_t> failed_primary_;  // fenced after failing: a failure episode is open
  uint64_t primary_lsn_{0};           // last pg_current_wal_lsn() seen from a primary
  std::deque<Position> primary_history_;  // increasing LSNs of the routed primary, when first seen
  bool failure_reported_{false};      // Refuse already returned for this failure episode
  bool split_brain_{false};
};

}  // namespace levee::companion::failover
