#include "companion/failover/failover_manager.h"

#include <algorithm>
#include <chrono>

#include "companion/failover/lsn.h"
#include "companion/failover/pg_client.h"
#include "config/units.h"
#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"
#include "proxy/common/logger.h"

namespace levee::companion::failover {
namespace {

constexpr std::string_view kResults[] = {"success", "failed", "no_candidate", "no_lease",
                                         "auto_failover_off", "locked"};

// The promote body: empty, or a JSON object with optional "member" (string) and "force"
// (bool). Returns an error message, or empty.
std::string parsePromoteBody(std::string_view body, std::string& member, bool& force) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return "";  // no body: the best candidate
  }
  auto doc = json::parse(body);
  if (!doc) {
    return doc.error().message;
  }
  const json::Object* obj = doc->object();
  if (obj == nullptr) {
    return "expected a JSON object, got " + std::string(json::typeName(*doc));
  }
  for (const auto& [key, value] : *obj) {
    if (key == "member") {
      const std::string* s = value.string();
      if (s == nullptr || s->empty()) {
        return "\"member\" must be a non-empty string";
      }
      member = *s;
    } else if (key == "force") {
      if (value.boolean() == nullptr) {
        return "\"force\" must be true or false";
      }
      force = *value.boolean();
    } else {
      return "unknown key \"" + key + "\" (expected member, force)";
    }
  }
  return "";
}

std::string refuseDetail(const std::string& code) {
  if (code == "busy") return "a promotion is already in progress";
  if (code == "no_lease") return "this levee does not hold the leader lease";
  if (code == "locked") return "another companion operation (a restore) is in progress";
  if (code == "no_candidate") return "no reachable replica within max_lag";
  if (code == "unknown_member") return "no member with that name";
  if (code == "not_a_reachable_replica") return "the member is not a reachable replica";
  if (code == "lag_above_max_lag") return "the member is further behind than max_lag (force: true overrides)";
  if (code == "primary_healthy")
    return "the primary is healthy; pass \"force\": true to fence it and promote anyway";
  return code;
}

}  // namespace

// === impl MemberWorker ===

MemberWorker::MemberWorker() : thread_([this] { run(); }) {}

MemberWorker::~MemberWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

void MemberWorker::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void MemberWorker::dropQueued() {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.clear();
}

bool MemberWorker::idle() {
  std::lock_guard<std::mutex> lock(mu_);
  return !running_ && jobs_.empty();
}

void MemberWorker::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) {
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      running_ = true;
    }
    job();
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
  }
}

// === impl FailoverManager ===

FailoverManager::FailoverManager(event::Dispatcher& main,
                                 const config::PostgresFailoverConfig& config, stats::Store& store,
                                 OperationLock& lock, ChangeCb on_change)
    : main_(main), state_(config), lease_(makeLease(main, config)), store_(store), lock_(lock),
      on_change_(std::move(on_change)), checking_(config.members.size(), false) {
  for (size_t i = 0; i < config.members.size(); ++i) {
    workers_.push_back(std::make_unique<MemberWorker>());
  }
  for (std::string_view r : kResults) {
    store_.counter("levee_failover_total", "PostgreSQL failovers by result.",
                   {{"result", std::string(r)}});
  }
}

FailoverManager::~FailoverManager() {
  stop();
  workers_.clear();  // joins
}

void FailoverManager::stop() {
  timer_.reset();
  alive_.reset();
  lease_->release();  // etcd: revokes the lease, so that another levee takes over at once
  for (auto& w : workers_) {
    w->dropQueued();
  }
}

bool FailoverManager::idle() const {
  if (!lease_->idle()) {
    return false;
  }
  for (const auto& w : workers_) {
    if (!w->idle()) {
      return false;
    }
  }
  return true;
}

void FailoverManager::start() {
  const auto& c = config();
  LEVEE_LOG(Companion, info,
            "failover: watching {} PostgreSQL member(s) every {} ms (failure_threshold {}, "
            "max_lag {} bytes, lease {}, automatic failover {})",
            c.members.size(), c.check_interval.count(), c.failure_threshold, c.max_lag,
            lease_->backend(), c.auto_failover ? "on" : "off");
  lease_->start();
  timer_ = main_.createTimer([this] { checkAll(); });
  timer_->enableRepeating(c.check_interval);
  checkAll();
}

void FailoverManager::count(std::string_view result) {
  store_.counter("levee_failover_total", "PostgreSQL failovers by result.",
                 {{"result", std::string(result)}})
      .inc();
}

void FailoverManager::checkAll() {
  const auto& c = config();
  for (size_t i = 0; i < c.members.size(); ++i) {
    if (checking_[i]) {
      continue;  // the previous check is still running (bounded by check_timeout)
    }
    checking_[i] = true;
    std::weak_ptr<int> alive = alive_;
    event::Dispatcher* main = &main_;
    workers_[i]->submit([this, i, alive, main, dsn = c.members[i].dsn, timeout = c.check_timeout] {
      Observation obs = checkMember(dsn, timeout);
      // `this` is used only on the main loop, after checking that it is still alive.
      main->post([this, i, alive, obs = std::move(obs)]() mutable {
        if (alive.expired()) {
          return;
        }
        onObservation(i, std::move(obs));
      });
    });
  }
}

void FailoverManager::onObservation(size_t index, Observation obs) {
  checking_[index] = false;
  const uint64_t now = main_.nowMs();
  const auto routed_before = state_.routedPrimary();
  if (routed_before == index && !obs.reachable && first_failure_ms_ == 0) {
    first_failure_ms_ = now;
  }
  for (const std::string& line : state_.observe(index, obs, now)) {
    if (line.starts_with("SPLIT BRAIN")) {
      LEVEE_LOG(Companion, critical, "failover: {}", line);
    } else {
      LEVEE_LOG(Companion, warn, "failover: {}", line);
    }
  }
  if (state_.routedPrimary() && state_.members()[*state_.routedPrimary()].consecutive_failures == 0) {
    first_failure_ms_ = 0;
  }
  decide();
  publishIfChanged();
}

void FailoverManager::decide() {
  const auto before = state_.routedPrimary();
  Decision d = state_.evaluate(lease_->held());
  if (before && !state_.routedPrimary()) {
    const auto& m = state_.members()[*before];
    promote_from_ = m.name;
    LEVEE_LOG(Companion, err,
              "failover: primary {} failed {} consecutive check(s) (threshold {}): fenced, no "
              "new sessions, open sessions closed",
              m.name, m.consecutive_failures, config().failure_threshold);
    last_ = Last{};
    last_->from = m.name;
    last_->result = "in_progress";
    last_->detected_ms = main_.nowMs();
    last_->first_failure_ms = first_failure_ms_ != 0 ? first_failure_ms_ : main_.nowMs();
    publishIfChanged();  // fence before promoting
  }
  switch (d.kind) {
    case Decision::Kind::None:
      return;
    case Decision::Kind::Refuse:
      LEVEE_LOG(Companion, err, "failover: not promoting after the failure of {}: {} ({})",
                state_.members()[d.target].name, d.reason, refuseDetail(d.reason));
      count(d.reason);
      if (last_) {
        last_->result = d.reason;
        last_->reason = refuseDetail(d.reason);
      }
      return;
    case Decision::Kind::Promote:
      startPromotion(d, false);
      return;
  }
}

void FailoverManager::startPromotion(const Decision& d, bool manual) {
  const auto& member = config().members[d.target];
  if (!lease_->held()) {  // checked again right before acting
    state_.onPromoteDone(d.target, false, main_.nowMs());
    LEVEE_LOG(Companion, err, "failover: lease lost before promoting {}: not promoting", member.name);
    count("no_lease");
    return;
  }
  auto guard = lock_.tryAcquire("failover promote " + member.name);
  if (!guard) {
    // A restore runs: never promote under it. The failure episode goes on; evaluate() tries
    // again at every check and the promotion happens once the restore released the lock.
    state_.onPromoteDone(d.target, false, main_.nowMs());
    if (!lock_refusal_reported_) {
      lock_refusal_reported_ = true;
      LEVEE_LOG(Companion, err,
                "failover: NOT promoting {} now: {} is in progress (companion operation lock); "
                "deferred, retried at every check until it finished",
                member.name, lock_.holder());
      count("locked");
    }
    if (last_) {
      last_->result = "locked";
      last_->reason = lock_.holder() + " is in progress";
    }
    return;
  }
  lock_refusal_reported_ = false;
  op_guard_.emplace(std::move(*guard));
  promote_started_ms_ = main_.nowMs();
  promote_manual_ = manual;
  promote_reason_ = d.reason;
  if (!last_ || last_->result != "in_progress") {
    last_ = Last{};
    last_->detected_ms = promote_started_ms_;
    last_->first_failure_ms = promote_started_ms_;
    last_->from = promote_from_;
  }
  last_->result = "in_progress";
  last_->target = member.name;
  last_->manual = manual;
  last_->reason = d.reason;
  // The lease once more, from the backend (etcd: a fresh keepalive and txn), not the cache.
  std::weak_ptr<int> alive = alive_;
  const size_t target = d.target;
  lease_->confirm([this, alive, target](bool held, const std::string& error) {
    if (!alive.expired()) {
      onLeaseConfirmed(target, held, error);
    }
  });
}

void FailoverManager::abortPromotion(size_t target, std::string_view result, const std::string& why) {
  op_guard_.reset();
  state_.onPromoteDone(target, false, main_.nowMs());
  LEVEE_LOG(Companion, err, "failover: not promoting {}: {}", config().members[target].name, why);
  count(result);
  if (last_) {
    last_->result = std::string(result);
    last_->error = why;
  }
  publishIfChanged();
}

void FailoverManager::onLeaseConfirmed(size_t target, bool held, const std::string& error) {
  if (!held || !lease_->held()) {
    abortPromotion(target, "no_lease",
                   "the " + std::string(lease_->backend()) + " lease could not be confirmed right "
                   "before promoting" + (error.empty() ? std::string() : ": " + error));
    return;
  }
  const auto& member = config().members[target];
  const auto lag = state_.receiveLagBytes(target);
  LEVEE_LOG(Companion, warn,
            "failover: promoting {} ({}; lease {} confirmed; received LSN {}, {} bytes behind the "
            "last known primary position): SELECT pg_promote(wait => true)",
            member.name, promote_reason_, lease_->backend(),
            formatLsn(state_.members()[target].receive_lsn), lag ? std::to_string(*lag) : std::string("?"));
  std::weak_ptr<int> alive = alive_;
  event::Dispatcher* main = &main_;
  workers_[target]->submit(
      [this, target, alive, main, dsn = member.dsn, timeout = config().check_timeout] {
        PromoteResult r = promoteMember(dsn, timeout);
        main->post([this, target, alive, r = std::move(r)] {
          if (alive.expired()) {
            return;
          }
          onPromoted(target, r.ok, r.error);
        });
      });
}

void FailoverManager::onPromoted(size_t target, bool ok, const std::string& error) {
  op_guard_.reset();
  const uint64_t now = main_.nowMs();
  state_.onPromoteDone(target, ok, now);
  const std::string& name = config().members[target].name;
  if (last_) {
    last_->finished_ms = now;
    last_->result = ok ? "success" : "failed";
    last_->error = error;
  }
  if (ok) {
    const uint64_t detect = last_ ? now - last_->detected_ms : 0;
    LEVEE_LOG(Companion, warn,
              "failover: {} left recovery and is the primary now; writes routed to it ({} ms "
              "after the failure was declared)",
              name, detect);
    count("success");
    first_failure_ms_ = 0;
  } else {
    LEVEE_LOG(Companion, err, "failover: promoting {} failed: {}; will retry", name, error);
    count("failed");
  }
  publishIfChanged();
}

void FailoverManager::publishIfChanged() {
  std::string view = "p:";
  if (auto p = state_.routedPrimary()) {
    view += std::to_string(*p);
  }
  view += " r:";
  for (size_t i : state_.routedReplicas(config().max_lag)) {
    view += std::to_string(i) + ",";
  }
  if (view == published_) {
    return;
  }
  published_ = view;
  on_change_();
}

std::vector<config::SocketAddress> FailoverManager::addressesFor(
    config::EndpointsFrom::Role role) const {
  std::vector<config::SocketAddress> out;
  if (role == config::EndpointsFrom::Role::Primary) {
    if (auto p = state_.routedPrimary()) {
      out.push_back(config().members[*p].address);
    }
  } else if (role == config::EndpointsFrom::Role::Replica) {
    for (size_t i : state_.routedReplicas(config().max_lag)) {
      out.push_back(config().members[i].address);
    }
  }
  return out;
}

std::string FailoverManager::statusJson() const {
  std::string out;
  json::Writer w(out);
  const auto& c = config();
  const uint64_t now = main_.nowMs();
  w.beginObject();
  w.key("lease").beginObject().key("backend").value(lease_->backend());
  w.key("held").value(lease_->held());
  lease_->writeStatus(w);
  w.endObject();
  w.key("operation_lock");
  if (lock_.held()) {
    w.value(lock_.holder());
  } else {
    w.null();
  }
  w.key("auto_failover").value(c.auto_failover);
  w.key("check_interval_ms").value(static_cast<int64_t>(c.check_interval.count()));
  w.key("failure_threshold").value(c.failure_threshold);
  w.key("max_lag_bytes").value(c.max_lag);
  w.key("primary");
  if (auto p = state_.routedPrimary()) {
    w.value(c.members[*p].name);
  } else {
    w.null();
  }
  w.key("promoting");
  if (auto t = state_.promotingTarget()) {
    w.value(c.members[*t].name);
  } else {
    w.null();
  }
  w.key("split_brain").value(state_.splitBrain());
  w.key("primary_lsn").value(formatLsn(state_.primaryLsn()));
  const auto replicas = state_.routedReplicas(c.max_lag);
  w.key("members").beginArray();
  for (size_t i = 0; i < state_.members().size(); ++i) {
    const MemberState& m = state_.members()[i];
    w.beginObject().key("name").value(m.name).key("address").value(c.members[i].address.toString());
    w.key("checked").value(m.checked).key("reachable").value(m.reachable);
    w.key("role").value(roleName(m.role)).key("fenced").value(m.fenced);
    const bool routed_replica = std::find(replicas.begin(), replicas.end(), i) != replicas.end();
    w.key("routed").value(state_.routedPrimary() == i ? "primary" : routed_replica ? "replica" : "none");
    w.key("consecutive_failures").value(m.consecutive_failures);
    w.key("current_lsn").value(formatLsn(m.current_lsn));
    w.key("receive_lsn").value(formatLsn(m.receive_lsn));
    w.key("replay_lsn").value(formatLsn(m.replay_lsn));
    w.key("replay_lag_bytes");
    if (auto lag = state_.replayLagBytes(i)) {
      w.value(*lag);
    } else {
      w.null();
    }
    w.key("receive_lag_bytes");
    if (auto lag = state_.receiveLagBytes(i)) {
      w.value(*lag);
    } else {
      w.null();
    }
    w.key("last_ok_ms_ago");
    if (m.last_ok_ms != 0) {
      w.value(now - m.last_ok_ms);
    } else {
      w.null();
    }
    w.key("last_error").value(m.last_error);
    w.endObject();
  }
  w.endArray();
  w.key("last_failover");
  if (last_) {
    w.beginObject().key("result").value(last_->result).key("manual").value(last_->manual);
    w.key("from").value(last_->from).key("target").value(last_->target);
    w.key("reason").value(last_->reason).key("error").value(last_->error);
    if (last_->finished_ms != 0) {
      w.key("detection_to_writable_ms").value(last_->finished_ms - last_->detected_ms);
      w.key("first_failure_to_writable_ms").value(last_->finished_ms - last_->first_failure_ms);
    }
    w.endObject();
  } else {
    w.null();
  }
  w.endObject();
  return out;
}

int FailoverManager::promote(std::string_view body, std::string& out_json) {
  json::Writer w(out_json);
  std::string member;
  bool force = false;
  if (std::string err = parsePromoteBody(body, member, force); !err.empty()) {
    w.beginObject().key("error").value("bad request body: " + err).endObject();
    return 400;
  }
  if (lock_.held() && !state_.promoting()) {
    LEVEE_LOG(Companion, warn, "failover: promote request refused: {} is in progress", lock_.holder());
    w.beginObject().key("error").value("locked");
    w.key("detail").value(lock_.holder() + " is in progress (companion operation lock)").endObject();
    return 409;
  }
  const auto before = state_.routedPrimary();
  Decision d = state_.requestPromote(member, force, lease_->held());
  if (d.kind != Decision::Kind::Promote) {
    LEVEE_LOG(Companion, warn, "failover: promote request{} refused: {}",
              member.empty() ? "" : " for " + member, refuseDetail(d.reason));
    w.beginObject().key("error").value(d.reason).key("detail").value(refuseDetail(d.reason)).endObject();
    return d.reason == "unknown_member" ? 404 : 409;
  }
  promote_from_ = before ? config().members[*before].name : "";
  if (before && !state_.routedPrimary()) {
    LEVEE_LOG(Companion, warn, "failover: manual promote: fenced primary {} first",
              config().members[*before].name);
  }
  last_.reset();
  publishIfChanged();  // fence before promoting
  startPromotion(d, true);
  w.beginObject().key("result").value("promoting").key("target").value(config().members[d.target].name);
  w.key("fenced");
  if (before) {
    w.value(config().members[*before].name);
  } else {
    w.null();
  }
  w.endObject();
  return 202;
}

int FailoverManager::roleHealth(std::string_view role, std::string_view query,
                                std::string& out_json) const {
  json::Writer w(out_json);
  const auto& c = config();
  if (role == "primary") {
    auto p = state_.routedPrimary();
    const bool ok = p && state_.members()[*p].reachable;
    w.beginObject().key("role").value("primary").key("member");
    if (p) {
      w.value(c.members[*p].name).key("address").value(c.members[*p].address.toString());
    } else {
      w.null();
    }
    w.key("healthy").value(ok).endObject();
    return ok ? 200 : 503;
  }
  uint64_t max_lag = c.max_lag;
  // query: "lag=16MB" (other parameters are ignored, as Patroni does)
  for (size_t pos = 0; pos < query.size();) {
    size_t amp = query.find('&', pos);
    std::string_view part = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    if (part.starts_with("lag=")) {
      auto parsed = config::parseByteSize(part.substr(4));
      if (!parsed) {
        w.beginObject().key("error").value("lag: " + parsed.error().message).endObject();
        return 400;
      }
      max_lag = *parsed;
    }
    if (amp == std::string_view::npos) {
      break;
    }
    pos = amp + 1;
  }
  const auto replicas = state_.routedReplicas(max_lag);
  w.beginObject().key("role").value("replica").key("max_lag_bytes").value(max_lag);
  w.key("members").beginArray();
  for (size_t i : replicas) {
    w.beginObject().key("name").value(c.members[i].name);
    w.key("replay_lag_bytes").value(state_.replayLagBytes(i).value_or(0)).endObject();
  }
  w.endArray().key("healthy").value(!replicas.empty()).endObject();
  return replicas.empty() ? 503 : 200;
}

void FailoverManager::collect(std::string_view family,
                              std::vector<std::pair<stats::Labels, double>>& out) const {
  for (size_t i = 0; i < state_.members().size(); ++i) {
    const MemberState& m = state_.members()[i];
    if (family == "levee_db_replication_lag_bytes") {
      if (auto lag = state_.replayLagBytes(i)) {
        out.push_back({{{"member", m.name}}, static_cast<double>(*lag)});
      }
    } else if (family == "levee_db_replication_lag_seconds") {
      if (auto lag = state_.replayLagMs(i, main_.nowMs())) {
        out.push_back({{{"member", m.name}}, static_cast<double>(*lag) / 1000.0});
      }
    } else if (family == "levee_db_member_up") {
      out.push_back({{{"member", m.name}}, m.reachable ? 1.0 : 0.0});
    } else if (family == "levee_db_member_role") {
      for (Role r : {Role::Primary, Role::Replica, Role::Unknown}) {
        out.push_back({{{"member", m.name}, {"role", std::string(roleName(r))}}, m.role == r ? 1.0 : 0.0});
      }
    } else if (family == "levee_db_member_fenced") {
      out.push_back({{{"member", m.name}}, m.fenced ? 1.0 : 0.0});
    } else if (family == "levee_db_member_routed_primary") {
      out.push_back({{{"member", m.name}}, state_.routedPrimary() == i ? 1.0 : 0.0});
    }
  }
  if (family == "levee_db_split_brain") {
    out.push_back({{}, state_.splitBrain() ? 1.0 : 0.0});
  } else if (family == "levee_failover_lease_held") {
    out.push_back({{{"backend", std::string(lease_->backend())}}, lease_->held() ? 1.0 : 0.0});
  }
}

void registerFailoverMetrics(stats::Store& store, std::function<const FailoverManager*()> get) {
  struct Family {
    std::string_view name;
    std::string_view help;
  };
  static constexpr Family kFamilies[] = {
      {"levee_db_replication_lag_bytes",
       "WAL bytes a replica has not replayed, against the last known primary position."},
      {"levee_db_replication_lag_seconds",
       "Seconds since the primary was first seen beyond the position a replica has replayed (0: caught up)."},
      {"levee_db_member_up", "1 when the last check of the PostgreSQL member succeeded."},
      {"levee_db_member_role", "Role the member last reported (1 for its role)."},
      {"levee_db_member_fenced", "1 while levee routes nothing to the member (failed primary)."},
      {"levee_db_member_routed_primary", "1 for the member the role: primary routes go to."},
      {"levee_db_split_brain", "1 while more than one member reports being primary."},
      {"levee_failover_lease_held", "1 while this levee holds the failover leader lease (may promote)."},
  };
  for (const Family& f : kFamilies) {
    store.gaugeCallback(f.name, f.help,
                        [get, name = f.name](std::vector<std::pair<stats::Labels, double>>& out) {
                          if (const FailoverManager* m = get()) {
                            m->collect(name, out);
                          }
                        });
  }
}

}  // namespace levee::companion::failover
