// The failover decision on injected observations and time (no PostgreSQL, no loop).

#include "companion/failover/cluster_state.h"

#include <gtest/gtest.h>

namespace levee::companion::failover {
namespace {

config::PostgresFailoverConfig threeMembers() {
  config::PostgresFailoverConfig c;
  c.enabled = true;
  c.failure_threshold = 3;
  c.max_lag = 1000;
  for (const char* name : {"pg-0", "pg-1", "pg-2"}) {
    config::FailoverMember m;
    m.name = name;
    c.members.push_back(m);
  }
  return c;
}

Observation primary(uint64_t lsn) {
  Observation o;
  o.reachable = true;
  o.current_lsn = lsn;
  return o;
}

Observation replica(uint64_t receive, uint64_t replay) {
  Observation o;
  o.reachable = true;
  o.in_recovery = true;
  o.receive_lsn = receive;
  o.replay_lsn = replay;
  return o;
}

Observation down() {
  Observation o;
  o.error = "connection refused";
  return o;
}

class ClusterStateTest : public ::testing::Test {
protected:
  ClusterState s_{threeMembers()};
  uint64_t now_{1000};

  void round(const Observation& a, const Observation& b, const Observation& c) {
    s_.observe(0, a, now_);
    s_.observe(1, b, now_);
    s_.observe(2, c, now_);
    now_ += 1000;
  }
};

TEST_F(ClusterStateTest, AdoptsTheOnlyPrimaryAndRoutesReplicasWithinMaxLag) {
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);  // nothing checked yet: route nowhere
  round(primary(5000), replica(4900, 4500), replica(4800, 3000));
  EXPECT_EQ(s_.routedPrimary(), 0u);
  EXPECT_EQ(s_.primaryLsn(), 5000u);
  EXPECT_EQ(s_.replayLagBytes(1), 500u);
  EXPECT_EQ(s_.replayLagBytes(2), 2000u);  // replay lag, against the primary's position
  EXPECT_EQ(s_.receiveLagBytes(2), 200u);
  EXPECT_EQ(s_.routedReplicas(1000), std::vector<size_t>{1});
  EXPECT_EQ(s_.routedReplicas(5000), (std::vector<size_t>{1, 2}));
  EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::None);
}

TEST_F(ClusterStateTest, LagInSecondsIsTheAgeOfTheFirstUnreplayedPrimaryPosition) {
  round(primary(5000), replica(5000, 5000), replica(5000, 5000));  // at 1000
  EXPECT_EQ(s_.replayLagMs(1, now_), 0u);
  EXPECT_EQ(s_.replayLagMs(0, now_), std::nullopt);  // the primary itself
  round(primary(6000), replica(6000, 5000), replica(6000, 6000));  // 6000 first seen at 2000
  round(primary(7000), replica(7000, 5500), replica(7000, 7000));  // 7000 first seen at 3000
  // pg-1 replayed 5500: the primary was first seen beyond it (at 6000) at 2000.
  EXPECT_EQ(s_.replayLagMs(1, 4000), 2000u);
  EXPECT_EQ(s_.replayLagMs(2, 4000), 0u);
  // An idle primary: the replica catches up and the lag is 0 however long nothing is written.
  round(primary(7000), replica(7000, 7000), replica(7000, 7000));
  now_ += 600'000;
  EXPECT_EQ(s_.replayLagMs(1, now_), 0u);
  EXPECT_EQ(s_.replayLagBytes(1), 0u);
}

TEST_F(ClusterStateTest, LagInSecondsRestartsOnANewPrimary) {
  round(primary(9000), replica(8000, 8000), replica(7000, 7000));
  for (int i = 0; i < 3; ++i) {
    round(down(), replica(8000, 8000), replica(7000, 7000));
  }
  Decision d = s_.evaluate(true);
  ASSERT_EQ(d.kind, Decision::Kind::Promote);
  ASSERT_EQ(d.target, 1u);
  s_.onPromoteDone(1, true, now_);
  const uint64_t promoted_seen = now_;
  round(down(), primary(8100), replica(8100, 7500));  // below the old primary's 9000
  EXPECT_EQ(s_.replayLagMs(2, promoted_seen + 5000), 5000u);  // the old timeline's 9000 is gone
}

TEST_F(ClusterStateTest, PromotesTheReplicaWithTheHighestReceivedLsnAfterThreshold) {
  round(primary(5000), replica(4900, 4900), replica(4950, 4000));
  for (int i = 0; i < 2; ++i) {
    round(down(), replica(4900, 4900), replica(4950, 4000));
    EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::None) << "check " << i + 1;
    EXPECT_EQ(s_.routedPrimary(), 0u);  // below the threshold: still routed
  }
  round(down(), replica(4900, 4900), replica(4950, 4000));
  Decision d = s_.evaluate(true);
  ASSERT_EQ(d.kind, Decision::Kind::Promote);
  EXPECT_EQ(d.target, 2u);  // highest received LSN, not the best replayed one
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);  // fenced before promoting
  EXPECT_TRUE(s_.members()[0].fenced);
  EXPECT_TRUE(s_.promoting());
  EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::None);  // one promotion at a time
  s_.onPromoteDone(2, true, now_);
  EXPECT_EQ(s_.routedPrimary(), 2u);
  EXPECT_FALSE(s_.promoting());
}

TEST_F(ClusterStateTest, NeverPromotesWithoutTheLeaseAndSaysSoOnce) {
  round(primary(5000), replica(5000, 5000), replica(5000, 5000));
  for (int i = 0; i < 3; ++i) {
    round(down(), replica(5000, 5000), replica(5000, 5000));
  }
  Decision d = s_.evaluate(false);
  EXPECT_EQ(d.kind, Decision::Kind::Refuse);
  EXPECT_EQ(d.reason, "no_lease");
  EXPECT_EQ(s_.evaluate(false).kind, Decision::Kind::None);  // reported once per episode
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);
  // Gaining the lease later promotes.
  EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::Promote);
}

TEST_F(ClusterStateTest, NoCandidateBeyondMaxLagThenTheOldPrimaryComesBack) {
  round(primary(10000), replica(2000, 2000), replica(1000, 1000));
  for (int i = 0; i < 3; ++i) {
    round(down(), replica(2000, 2000), replica(1000, 1000));
  }
  Decision d = s_.evaluate(true);
  EXPECT_EQ(d.kind, Decision::Kind::Refuse);
  EXPECT_EQ(d.reason, "no_candidate");  // 8000 bytes behind > max_lag 1000: data would be lost
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);
  // Nothing was promoted: the old primary is routed again when it answers.
  round(primary(10100), replica(2000, 2000), replica(1000, 1000));
  EXPECT_EQ(s_.routedPrimary(), 0u);
  EXPECT_FALSE(s_.members()[0].fenced);
}

TEST_F(ClusterStateTest, ReplacedPrimaryComingBackIsSplitBrainAndNotRouted) {
  round(primary(5000), replica(5000, 5000), replica(4000, 4000));
  for (int i = 0; i < 3; ++i) {
    round(down(), replica(5000, 5000), replica(4000, 4000));
  }
  ASSERT_EQ(s_.evaluate(true).target, 1u);
  s_.onPromoteDone(1, true, now_);
  round(down(), primary(5100), replica(5100, 5100));
  EXPECT_FALSE(s_.splitBrain());
  // The old primary restarts as a primary (no recovery configuration).
  std::vector<std::string> log = s_.observe(0, primary(5000), now_);
  EXPECT_TRUE(s_.splitBrain());
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("SPLIT BRAIN"), std::string::npos) << log.back();
  EXPECT_NE(log.back().find("routing writes only to pg-1"), std::string::npos) << log.back();
  EXPECT_EQ(s_.routedPrimary(), 1u);
  EXPECT_TRUE(s_.members()[0].fenced);
  // Rejoined as a replica: unfenced, routed as a replica, split brain over.
  s_.observe(0, replica(5100, 5100), now_);
  EXPECT_FALSE(s_.splitBrain());
  EXPECT_FALSE(s_.members()[0].fenced);
  EXPECT_EQ(s_.routedReplicas(1000), (std::vector<size_t>{0, 2}));
}

TEST_F(ClusterStateTest, TwoPrimariesAtStartRouteToNeither) {
  round(primary(5000), primary(5000), replica(5000, 5000));
  EXPECT_TRUE(s_.splitBrain());
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);
  round(primary(5000), replica(5000, 5000), replica(5000, 5000));
  EXPECT_FALSE(s_.splitBrain());
  EXPECT_EQ(s_.routedPrimary(), 0u);
}

TEST_F(ClusterStateTest, FailedPromotionIsRetried) {
  round(primary(5000), replica(5000, 5000), replica(4000, 4000));
  for (int i = 0; i < 3; ++i) {
    round(down(), replica(5000, 5000), replica(4000, 4000));
  }
  ASSERT_EQ(s_.evaluate(true).kind, Decision::Kind::Promote);
  s_.onPromoteDone(1, false, now_);
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);
  EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::Promote);
}

TEST_F(ClusterStateTest, ManualPromoteRules) {
  round(primary(5000), replica(5000, 5000), replica(1000, 1000));
  EXPECT_EQ(s_.requestPromote("pg-1", false, false).reason, "no_lease");
  EXPECT_EQ(s_.requestPromote("pg-7", false, true).reason, "unknown_member");
  EXPECT_EQ(s_.requestPromote("pg-0", false, true).reason, "not_a_reachable_replica");
  EXPECT_EQ(s_.requestPromote("pg-2", false, true).reason, "lag_above_max_lag");
  EXPECT_EQ(s_.requestPromote("pg-1", false, true).reason, "primary_healthy");
  EXPECT_EQ(s_.routedPrimary(), 0u);  // refusals change nothing
  Decision d = s_.requestPromote("pg-1", true, true);
  ASSERT_EQ(d.kind, Decision::Kind::Promote);
  EXPECT_EQ(d.target, 1u);
  EXPECT_TRUE(s_.members()[0].fenced);
  EXPECT_EQ(s_.requestPromote("", true, true).reason, "busy");
  s_.onPromoteDone(1, true, now_);
  EXPECT_EQ(s_.routedPrimary(), 1u);
}

TEST_F(ClusterStateTest, ManualPromoteWithoutNameTakesTheBestCandidate) {
  round(down(), replica(3000, 3000), replica(3500, 2000));
  EXPECT_EQ(s_.routedPrimary(), std::nullopt);  // never saw a primary: no automatic failover
  EXPECT_EQ(s_.evaluate(true).kind, Decision::Kind::None);
  Decision d = s_.requestPromote("", false, true);
  ASSERT_EQ(d.kind, Decision::Kind::Promote);
  EXPECT_EQ(d.target, 2u);
}

TEST_F(ClusterStateTest, RoutedPrimaryDemotedExternally) {
  round(primary(5000), replica(5000, 5000), replica(5000, 5000));
  round(replica(5000, 5000), primary(5100), replica(5000, 5000));
  EXPECT_EQ(s_.routedPrimary(), 1u);  // the new sole primary is adopted
  EXPECT_FALSE(s_.splitBrain());
}

}  // namespace
}  // namespace levee::companion::failover
