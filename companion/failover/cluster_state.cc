#include "companion/failover/cluster_state.h"

#include <algorithm>

#include "companion/failover/lsn.h"

namespace levee::companion::failover {

std::string_view roleName(Role role) {
  switch (role) {
    case Role::Primary:
      return "primary";
    case Role::Replica:
      return "replica";
    case Role::Unknown:
      break;
  }
  return "unknown";
}

ClusterState::ClusterState(const config::PostgresFailoverConfig& config) : config_(config) {
  for (const auto& m : config_.members) {
    MemberState s;
    s.name = m.name;
    members_.push_back(std::move(s));
  }
}

std::optional<size_t> ClusterState::indexOf(const std::string& name) const {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].name == name) {
      return i;
    }
  }
  return std::nullopt;
}

std::vector<std::string> ClusterState::observe(size_t index, const Observation& obs,
                                               uint64_t now_ms) {
  std::vector<std::string> log;
  MemberState& m = members_.at(index);
  m.checked = true;
  if (!obs.reachable) {
    if (m.reachable || m.consecutive_failures == 0) {
      log.push_back("member " + m.name + " unreachable: " + obs.error);
    }
    m.reachable = false;
    ++m.consecutive_failures;
    m.last_error = obs.error;
  } else {
    if (!m.reachable && m.consecutive_failures > 0) {
      log.push_back("member " + m.name + " reachable again after " +
                    std::to_string(m.consecutive_failures) + " failed check(s)");
    }
    const Role role = obs.in_recovery ? Role::Replica : Role::Primary;
    if (m.role != role && m.role != Role::Unknown) {
      log.push_back("member " + m.name + " changed role from " + std::string(roleName(m.role)) +
                    " to " + std::string(roleName(role)));
    }
    m.reachable = true;
    m.consecutive_failures = 0;
    m.last_error.clear();
    m.role = role;
    m.current_lsn = obs.current_lsn;
    m.receive_lsn = obs.receive_lsn;
    m.replay_lsn = obs.replay_lsn;
    m.last_ok_ms = now_ms;
    if (primary_ == index && role == Role::Primary) {
      primary_lsn_ = obs.current_lsn;
    }
    if (m.fenced && role == Role::Replica) {
      m.fenced = false;
      m.replaced = false;
      log.push_back("member " + m.name + " rejoined as a replica: no longer fenced");
    }
  }
  auto more = reconcile();
  log.insert(log.end(), more.begin(), more.end());
  notePrimaryPosition(now_ms);
  return log;
}

void ClusterState::notePrimaryPosition(uint64_t now_ms) {
  if (!primary_ || primary_lsn_ == 0) {
    return;
  }
  if (!primary_history_.empty() && primary_lsn_ < primary_history_.back().lsn) {
    primary_history_.clear();  // a new timeline (promoted member): the old positions do not apply
  }
  if (primary_history_.empty() || primary_lsn_ > primary_history_.back().lsn) {
    primary_history_.push_back({primary_lsn_, now_ms});
    if (primary_history_.size() > kHistory) {
      primary_history_.pop_front();
    }
  }
}

std::optional<uint64_t> ClusterState::replayLagMs(size_t index, uint64_t now_ms) const {
  const MemberState& m = members_.at(index);
  if (m.role != Role::Replica || !m.checked || primary_history_.empty()) {
    return std::nullopt;
  }
  // The first position the primary was seen at beyond what the replica has replayed.
  auto it = std::ranges::upper_bound(primary_history_, m.replay_lsn, {}, &Position::lsn);
  if (it == primary_history_.end()) {
    return 0;
  }
  return now_ms > it->first_seen_ms ? now_ms - it->first_seen_ms : 0;
}

std::vector<std::string> ClusterState::reconcile() {
  std::vector<std::string> log;
  if (primary_) {
    const MemberState& p = members_[*primary_];
    if (p.reachable && p.role == Role::Replica) {
      log.push_back("routed primary " + p.name + " is in recovery now: not routed as primary");
      primary_.reset();
    }
  }
  std::vector<size_t> unfenced;
  std::vector<size_t> all;
  for (size_t i = 0; i < members_.size(); ++i) {
    const MemberState& m = members_[i];
    if (m.reachable && m.role == Role::Primary) {
      all.push_back(i);
      if (!m.fenced) {
        unfenced.push_back(i);
      }
    }
  }
  // Adopt only from a complete view: every member checked at least once (two primaries at
  // startup must not race into "the first one to answer").
  const bool complete = std::ranges::all_of(members_, [](const MemberState& m) { return m.checked; });
  if (!primary_ && !promoting_ && complete) {
    if (unfenced.size() == 1) {
      primary_ = unfenced[0];
      primary_lsn_ = members_[unfenced[0]].current_lsn;
      failed_primary_.reset();
      failure_reported_ = false;
      log.push_back("routing writes to " + members_[unfenced[0]].name + " (the only primary)");
    } else if (unfenced.empty() && all.size() == 1 && !members_[all[0]].replaced) {
      MemberState& back = members_[all[0]];
      back.fenced = false;
      primary_ = all[0];
      primary_lsn_ = back.current_lsn;
      failed_primary_.reset();
      failure_reported_ = false;
      log.push_back("fenced primary " + back.name +
                    " answers again and nothing was promoted meanwhile: routing writes to it");
    }
  }
  const bool split = all.size() > 1;
  if (split && !split_brain_) {
    std::string names;
    for (size_t i : all) {
      names += (names.empty() ? "" : ", ") + members_[i].name;
    }
    log.push_back("SPLIT BRAIN: " + std::to_string(all.size()) + " members report primary (" +
                  names + "); " +
                  (primary_ ? "routing writes only to " + members_[*primary_].name
                            : std::string("routing writes to none of them")) +
                  ". Demote or stop the others.");
  } else if (!split && split_brain_) {
    log.push_back("split brain over: at most one member reports primary");
  }
  split_brain_ = split;
  return log;
}

void ClusterState::fence(size_t index, std::vector<std::string>* log) {
  members_[index].fenced = true;
  if (primary_ == index) {
    primary_.reset();
  }
  failed_primary_ = index;
  if (log != nullptr) {
    log->push_back("fenced " + members_[index].name + ": no new sessions, open ones closed");
  }
}

std::optional<uint64_t> ClusterState::referenceLsn() const {
  if (primary_lsn_ > 0) {
    return primary_lsn_;
  }
  std::optional<uint64_t> best;
  for (const MemberState& m : members_) {
    if (m.reachable && m.role == Role::Replica) {
      best = std::max(best.value_or(0), m.receive_lsn);
    }
  }
  return best;
}

std::optional<uint64_t> ClusterState::lagBytes(size_t index, uint64_t MemberState::*lsn) const {
  const MemberState& m = members_.at(index);
  auto ref = referenceLsn();
  if (m.role != Role::Replica || !m.checked || !ref) {
    return std::nullopt;
  }
  return lsnLag(*ref, m.*lsn);
}

std::optional<size_t> ClusterState::bestCandidate() const {
  std::optional<size_t> best;
  for (size_t i = 0; i < members_.size(); ++i) {
    const MemberState& m = members_[i];
    if (!m.reachable || m.role != Role::Replica || m.fenced) {
      continue;
    }
    auto lag = receiveLagBytes(i);
    if (!lag || *lag > config_.max_lag) {
      continue;
    }
    if (!best || m.receive_lsn > members_[*best].receive_lsn) {
      best = i;
    }
  }
  return best;
}

Decision ClusterState::evaluate(bool holds_lease) {
  Decision d;
  if (promoting_) {
    return d;
  }
  if (primary_ && members_[*primary_].consecutive_failures >= config_.failure_threshold) {
    fence(*primary_, nullptr);
  }
  if (!failed_primary_ || primary_) {
    return d;
  }
  const MemberState& failed = members_[*failed_primary_];
  const std::string why = "primary " + failed.name + " failed " +
                          std::to_string(failed.consecutive_failures) + " consecutive check(s)";
  auto refuse = [&](std::string reason) {
    if (failure_reported_) {
      return Decision{};
    }
    failure_reported_ = true;
    return Decision{Decision::Kind::Refuse, *failed_primary_, std::move(reason)};
  };
  if (!config_.auto_failover) {
    return refuse("auto_failover_off");
  }
  if (!holds_lease) {
    return refuse("no_lease");
  }
  auto candidate = bestCandidate();
  if (!candidate) {
    return refuse("no_candidate");
  }
  promoting_ = candidate;
  return Decision{Decision::Kind::Promote, *candidate, why};
}

Decision ClusterState::requestPromote(const std::string& member, bool force, bool holds_lease) {
  auto refuse = [](std::string reason) {
    return Decision{Decision::Kind::Refuse, 0, std::move(reason)};
  };
  if (promoting_) {
    return refuse("busy");
  }
  if (!holds_lease) {
    return refuse("no_lease");
  }
  std::optional<size_t> target;
  if (member.empty()) {
    target = bestCandidate();
    if (!target) {
      return refuse("no_candidate");
    }
  } else {
    target = indexOf(member);
    if (!target) {
      return refuse("unknown_member");
    }
    const MemberState& m = members_[*target];
    if (!m.reachable || m.role != Role::Replica) {
      return refuse("not_a_reachable_replica");
    }
    auto lag = receiveLagBytes(*target);
    if (!force && (!lag || *lag > config_.max_lag)) {
      return refuse("lag_above_max_lag");
    }
  }
  if (primary_) {
    const MemberState& p = members_[*primary_];
    if (p.reachable && p.consecutive_failures == 0 && !force) {
      return refuse("primary_healthy");
    }
    fence(*primary_, nullptr);
  }
  promoting_ = target;
  return Decision{Decision::Kind::Promote, *target, "requested through the admin API"};
}

void ClusterState::onPromoteDone(size_t target, bool ok, uint64_t now_ms) {
  promoting_.reset();
  if (!ok) {
    return;  // evaluate() tries again (the failure episode goes on)
  }
  for (MemberState& m : members_) {
    if (m.fenced) {
      m.replaced = true;
    }
  }
  MemberState& t = members_[target];
  t.role = Role::Primary;
  t.fenced = false;
  t.last_ok_ms = now_ms;
  primary_ = target;
  failed_primary_.reset();
  failure_reported_ = false;
}

std::optional<size_t> ClusterState::routedPrimary() const { return primary_; }

std::vector<size_t> ClusterState::routedReplicas(uint64_t max_lag) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < members_.size(); ++i) {
    const MemberState& m = members_[i];
    if (!m.reachable || m.role != Role::Replica || m.fenced) {
      continue;
    }
    auto lag = replayLagBytes(i);
    if (lag && *lag <= max_lag) {
      out.push_back(i);
    }
  }
  return out;
}

}  // namespace levee::companion::failover
