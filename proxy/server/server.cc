#include "proxy/server/server.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "config/loader.h"
#include "proxy/common/json.h"
#include "proxy/common/logger.h"
#include "proxy/network/address.h"
#include "proxy/server/policy_json.h"
#include "proxy/server/version.h"

namespace levee::server {
namespace {

std::string hashHex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string endpointKey(const config::SocketAddress& a) { return a.host + ":" + std::to_string(a.port); }

const char* lbName(config::LoadBalancerKind k) {
  switch (k) {
    case config::LoadBalancerKind::LeastRequest: return "least_request";
    case config::LoadBalancerKind::Random: return "random";
    case config::LoadBalancerKind::Hash: return "hash";
    case config::LoadBalancerKind::RoundRobin: break;
  }
  return "round_robin";
}

}  // namespace

Server::Server(Options options, config::Policy policy)
    : options_(std::move(options)),
      concurrency_(options_.concurrency != 0 ? options_.concurrency
                                             : std::max(1u, std::thread::hardware_concurrency())),
      store_(concurrency_ + 1) {
  auto p = std::make_shared<const config::Policy>(std::move(policy));
  snapshot_ = buildSnapshot(p, ++generation_, makeUpstreams(*p), makeRateLimits(*p),
                            [this](const config::Listener& l, const config::Route& r) { return retryStateFor(l, r); });
}

router::RouteRetryStateSharedPtr Server::retryStateFor(const config::Listener& l, const config::Route& r) {
  std::string key = l.name + "|" + r.name;
  const config::RetryBudgetConfig& b = r.retry.budget;
  auto it = retry_states_.find(key);
  if (it != retry_states_.end() && it->second.first.budget == b) {
    return it->second.second;  // budget state survives the reload
  }
  auto st = std::make_shared<router::RouteRetryState>();
  switch (b.kind) {
    case config::RetryBudgetConfig::Kind::Percent:
      st->budget = std::make_shared<common::ConcurrencyRetryBudget>(b.percent, b.min_concurrency);
      break;
    case config::RetryBudgetConfig::Kind::Ratio:
      st->budget = std::make_shared<common::TokenRetryBudget>(b.ratio, b.min_per_second, b.ttl, time_);
      break;
    case config::RetryBudgetConfig::Kind::None:
      break;
  }
  const char* help = "Retries by upstream, route and result (attempted, succeeded, failed).";
  stats::Labels base{{"upstream", r.upstream}, {"route", r.name}};
  auto with = [&](const char* result) {
    stats::Labels lb = base;
    lb.emplace_back("result", result);
    return &store_.counter("levee_upstream_rq_retries_total", help, lb);
  };
  st->attempted = with("attempted");
  st->succeeded = with("succeeded");
  st->failed = with("failed");
  st->budget_exhausted = &store_.counter("levee_retry_budget_exhausted_total",
                                         "Retries refused by the retry budget.", {{"upstream", r.upstream}});
  retry_states_[key] = {r.retry, st};
  return st;
}

std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> Server::makeRateLimits(
    const config::Policy& policy) {
  std::map<std::string, filters::rate_limit::RateLimitStateSharedPtr, std::less<>> out;
  for (const auto& l : policy.listeners) {
    for (const auto& r : l.routes) {
      if (!r.rate_limit.enabled) {
        continue;
      }
      std::string key = l.name + "|" + r.name;
      if (snapshot_) {
        auto it = snapshot_->rate_limits.find(key);
        if (it != snapshot_->rate_limits.end() && it->second->sameConfig(r.rate_limit, l.trust_forwarded)) {
          out.emplace(key, it->second);  // buckets survive the reload
          continue;
        }
      }
      out.emplace(key, std::make_shared<filters::rate_limit::RateLimitState>(l.name, r.name, r.rate_limit,
                                                                             l.trust_forwarded, time_, store_));
    }
  }
  return out;
}

std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> Server::makeUpstreams(const config::Policy& policy) {
  std::map<std::string, upstream::UpstreamSharedPtr, std::less<>> out;
  for (const auto& [name, up] : policy.upstreams) {
    if (snapshot_) {
      auto it = snapshot_->upstreams.find(name);
      if (it != snapshot_->upstreams.end() && it->second->sameResilience(up)) {
        out.emplace(name, it->second);  // breaker and outlier state survive the reload
        continue;
      }
    }
    out.emplace(name, std::make_shared<upstream::UpstreamShared>(up, time_, store_));
  }
  return out;
}

void Server::restartHealthChecks() {
  for (const auto& [name, shared] : snapshot_->upstreams) {
    const config::HealthCheckConfig& hc = snapshot_->policy->upstreams.at(name).health_check;
    upstream::HostHealthSharedPtr h = hosts_ ? hosts_->at(name) : nullptr;
    auto cur = checkers_.find(name);
    // A checker is kept only while it watches the same host set with the same settings.
    if (cur != checkers_.end() && cur->second->health() == h && cur->second->config() == hc) {
      continue;
    }
    checkers_.erase(name);
    if (!hc.enabled || !h) {
      continue;
    }
    upstream::UpstreamSharedPtr sh = shared;
    auto checker = std::make_unique<upstream::HealthChecker>(
        main_, name, hc, h,
        [this, name](size_t, bool healthy, const std::string&) {
          store_.counter("levee_health_check_transitions_total", "Endpoint health changes seen by active checks.",
                         {{"upstream", name}, {"to", healthy ? "healthy" : "unhealthy"}}).inc();
        },
        [sh](size_t i, bool passed) {
          if (passed) {
            sh->onHealthCheckPassed(i);
          }
        });
    checker->start();
    checkers_[name] = std::move(checker);
  }
  // Upstreams that left the policy.
  for (auto it = checkers_.begin(); it != checkers_.end();) {
    if (!snapshot_->upstreams.contains(it->first)) {
      it = checkers_.erase(it);
    } else {
      ++it;
    }
  }
}

Server::~Server() = default;

void Server::registerMetrics() {
  store_.gauge("levee_build_info", "Build information.", {{"version", kVersion}}).set(1);
  reloads_ok_ = &store_.counter("levee_config_reloads_total", "Policy reloads by result.", {{"result", "success"}});
  reloads_failed_ = &store_.counter("levee_config_reloads_total", "Policy reloads by result.", {{"result", "failure"}});
  store_.gaugeCallback("levee_config_hash", "Hash of the running policy file (label), always 1.",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         // Called on the main thread (scrape), where snapshot_ lives.
                         out.push_back({{{"hash", hashHex(snapshot_->policy->content_hash)}}, 1.0});
                       });
  store_.gaugeCallback("levee_draining", "1 while the process drains (SIGTERM or /admin/drain).",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         out.push_back({{}, draining_ ? 1.0 : 0.0});
                       });
  store_.gaugeCallback("levee_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         for (const auto& [name, shared] : snapshot_->upstreams) {
                           if (common::CircuitBreaker* br = shared->breaker()) {
                             auto st = br->state();
                             double v = st == common::CircuitBreaker::State::HalfOpen ? 1
                                        : (st == common::CircuitBreaker::State::Open ||
                                           st == common::CircuitBreaker::State::ForcedOpen) ? 2 : 0;
                             out.push_back({{{"upstream", name}}, v});
                           }
                         }
                       });
  store_.gaugeCallback("levee_circuit_breaker_failure_rate_percent",
                       "Failure rate over the breaker's sliding window.",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         for (const auto& [name, shared] : snapshot_->upstreams) {
                           if (common::CircuitBreaker* br = shared->breaker()) {
                             out.push_back({{{"upstream", name}}, static_cast<double>(br->snapshot().failure_rate_percent)});
                           }
                         }
                       });
  store_.gaugeCallback("levee_upstream_endpoints", "Endpoints by upstream, priority and state.",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         if (!hosts_) {
                           return;
                         }
                         for (const auto& [name, hh] : *hosts_) {
                           std::map<std::pair<uint32_t, std::string>, double> counts;
                           for (size_t i = 0; i < hh->size(); ++i) {
                             uint32_t pr = hh->hosts()->hosts[i]->priority;
                             std::string st = !hh->healthy(i) ? "unhealthy" : (hh->ejected(i) ? "ejected" : "healthy");
                             counts[{pr, "healthy"}] += 0;
                             counts[{pr, "unhealthy"}] += 0;
                             counts[{pr, "ejected"}] += 0;
                             counts[{pr, st}] += 1;
                           }
                           for (const auto& [k, v] : counts) {
                             out.push_back({{{"upstream", name}, {"priority", std::to_string(k.first)}, {"state", k.second}}, v});
                           }
                         }
                       });
  store_.gaugeCallback("levee_workers", "Worker threads.", [this](std::vector<std::pair<stats::Labels, double>>& out) {
    out.push_back({{}, static_cast<double>(concurrency_)});
  });
}

void Server::loadToken() {
  admin_token_.clear();
  const std::string& f = snapshot_->policy->admin.token_file;
  if (f.empty()) {
    return;
  }
  std::ifstream in(f);
  if (!in) {
    LEVEE_LOG(Admin, warn, "admin token_file {} unreadable: mutations refused", f);
    return;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) {
    t.pop_back();
  }
  size_t start = t.find_first_not_of(" \t\r\n");
  admin_token_ = start == std::string::npos ? "" : t.substr(start);
}

Status Server::bindListeners(const config::Policy& policy, const std::vector<std::string>& keys,
                             std::vector<std::vector<ListenerFd>>& per_worker) {
  per_worker.assign(concurrency_, {});
  std::set<std::string> wanted(keys.begin(), keys.end());
  for (const auto& l : policy.listeners) {
    std::string key = listenerKey(l);
    if (!wanted.contains(key)) {
      continue;
    }
    auto addr = network::parseIp(l.address.host, l.address.port);
    if (!addr) {
      return makeError("listener " + l.name + ": address must be an IP literal");
    }
    for (uint32_t w = 0; w < concurrency_; ++w) {
      auto fd = network::createListenFd(*addr);
      if (!fd) {
        for (auto& v : per_worker) {
          for (auto& f : v) {
            ::close(f.fd);
          }
        }
        per_worker.assign(concurrency_, {});
        return makeError("listener " + l.name + ": " + fd.error().message);
      }
      per_worker[w].push_back(ListenerFd{key, *fd});
    }
  }
  return {};
}

void Server::rebuildHostSets() {
  auto sets = std::make_shared<HostSets>();
  for (const auto& [name, up] : snapshot_->policy->upstreams) {
    auto hs = std::make_shared<upstream::HostSet>();
    for (const auto& ep : up.endpoints) {
      auto add = [&](const sockaddr_storage& ss) {
        auto h = std::make_shared<upstream::Host>();
        h->addr = ss;
        h->address = network::toString(ss);
        h->configured = ep.address.toString();
        h->weight = ep.weight;
        h->priority = ep.priority;
        hs->hosts.push_back(std::move(h));
      };
      if (auto ip = network::parseIp(ep.address.host, ep.address.port)) {
        add(*ip);
      } else {
        auto it = dns_cache_.find(endpointKey(ep.address));
        if (it != dns_cache_.end()) {
          for (const auto& ss : it->second) {
            add(ss);
          }
        }
      }
    }
    // Keep the previous set (and its health flags) when nothing changed, so workers keep
    // their pools and health checks keep their state.
    upstream::HostHealthSharedPtr health;
    if (hosts_) {
      auto old = hosts_->find(name);
      if (old != hosts_->end() && old->second->hosts()->hosts.size() == hs->hosts.size()) {
        bool same = true;
        const auto& oh = old->second->hosts()->hosts;
        for (size_t i = 0; i < hs->hosts.size(); ++i) {
          same = same && oh[i]->address == hs->hosts[i]->address && oh[i]->weight == hs->hosts[i]->weight &&
                 oh[i]->priority == hs->hosts[i]->priority;
        }
        if (same) {
          health = old->second;
        }
      }
    }
    if (!health) {
      health = std::make_shared<upstream::HostHealth>(std::move(hs));
    }
    auto sh = snapshot_->upstreams.find(name);
    if (sh != snapshot_->upstreams.end() && sh->second->health() != health) {
      sh->second->setHealth(health);
    }
    sets->emplace(name, std::move(health));
  }
  hosts_ = std::move(sets);
  if (started_ || !workers_.empty()) {
    restartHealthChecks();
  }
  for (auto& w : workers_) {
    w->updateHosts(hosts_);
  }
}

void Server::resolveDns() {
  std::set<std::pair<std::string, uint16_t>> names;
  for (const auto& [name, up] : snapshot_->policy->upstreams) {
    for (const auto& ep : up.endpoints) {
      if (!network::parseIp(ep.address.host, ep.address.port)) {
        names.insert({ep.address.host, ep.address.port});
      }
    }
  }
  for (const auto& [host, port] : names) {
    std::string key = host + ":" + std::to_string(port);
    dns_->resolve(host, port, [this, key](std::vector<sockaddr_storage> addrs, std::string error) {
      if (!error.empty() || addrs.empty()) {
        // Keep the last good answer: a DNS hiccup must not empty an upstream.
        LEVEE_LOG(Upstream, warn, "dns {}: {}", key, error.empty() ? "no addresses" : error);
        return;
      }
      auto& cur = dns_cache_[key];
      bool changed = cur.size() != addrs.size();
      for (size_t i = 0; !changed && i < addrs.size(); ++i) {
        changed = network::toString(cur[i]) != network::toString(addrs[i]);
      }
      if (changed) {
        cur = std::move(addrs);
        LEVEE_LOG(Upstream, info, "dns {}: {} address(es)", key, cur.size());
        rebuildHostSets();
      }
    });
  }
}

int Server::run() {
  main_.bindToCurrentThread();
  stats::setThreadSlot(0);
  registerMetrics();
  loadToken();
  std::string log_error;
  access_log_ = http::AccessLog::create(snapshot_->policy->access_log.path, &log_error);
  if (!access_log_) {
    LEVEE_LOG(Main, err, "access_log: {}", log_error);
    return 1;
  }
  const config::Policy& policy = *snapshot_->policy;
  std::vector<std::string> keys;
  for (const auto& l : policy.listeners) {
    keys.push_back(listenerKey(l));
  }
  std::vector<std::vector<ListenerFd>> fds;
  if (auto st = bindListeners(policy, keys, fds); !st) {
    LEVEE_LOG(Main, err, "{}", st.error().message);
    return 1;
  }
  auto bindAdmin = [&](const config::SocketAddress& a, std::unique_ptr<admin::AdminServer>& srv,
                       const char* name, admin::AdminServer::Handler h) -> bool {
    auto addr = network::parseIp(a.host, a.port);
    if (!addr) {
      LEVEE_LOG(Main, err, "{}: address must be an IP literal", name);
      return false;
    }
    auto fd = network::createListenFd(*addr);
    std::string err;
    if (!fd) {
      LEVEE_LOG(Main, err, "{}: {}", name, fd.error().message);
      return false;
    }
    srv = std::make_unique<admin::AdminServer>(main_, name, std::move(h));
    if (!srv->listen(*fd, &err)) {
      LEVEE_LOG(Main, err, "{}: {}", name, err);
      return false;
    }
    return true;
  };
  if (!bindAdmin(policy.probes.address, probe_server_, "probes",
                 [this](const admin::AdminRequest& r) { return admin::handleProbe(*this, r); }) ||
      !bindAdmin(policy.admin.address, admin_server_, "admin",
                 [this](const admin::AdminRequest& r) { return admin::handleAdmin(*this, r); })) {
    for (auto& v : fds) {
      for (auto& f : v) {
        ::close(f.fd);
      }
    }
    return 1;
  }
  dns_ = std::make_unique<event::DnsResolver>(main_);
  rebuildHostSets();
  for (uint32_t i = 0; i < concurrency_; ++i) {
    workers_.push_back(std::make_unique<Worker>(i + 1, store_, access_log_.get()));
    workers_.back()->start(snapshot_, hosts_, std::move(fds[i]));
  }
  resolveDns();
  uint64_t refresh_ms = 30000;
  for (const auto& [n, up] : policy.upstreams) {
    refresh_ms = std::min<uint64_t>(refresh_ms, static_cast<uint64_t>(std::max<int64_t>(1000, up.dns_refresh.count())));
  }
  dns_timer_ = main_.createTimer([this] { resolveDns(); });
  dns_timer_->enableRepeating(std::chrono::milliseconds(refresh_ms));
  // Breaker probe deadlines (no stuck half-open), outlier intervals and un-ejections.
  tick_timer_ = main_.createTimer([this] {
    for (auto& [name, shared] : snapshot_->upstreams) {
      shared->tick();
    }
  });
  tick_timer_->enableRepeating(std::chrono::milliseconds(100));
  restartHealthChecks();
  applyCompanion(policy);

  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGTERM, [this] {
    LEVEE_LOG(Main, info, "SIGTERM: draining");
    startDrain();
  }));
  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGINT, [this] {
    LEVEE_LOG(Main, info, "SIGINT: draining");
    startDrain();
  }));
  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGHUP, [this] {
    std::string body;
    reload(body);
  }));
  listeners_bound_ = true;
  started_ = true;
  LEVEE_LOG(Main, info, "levee {} ready: service {} with {} worker(s), {} listener(s); probes on {}, admin on {}",
            kVersion, policy.service, concurrency_, policy.listeners.size(), policy.probes.address.toString(),
            policy.admin.address.toString());
  main_.run();
  // Tear down in dependency order: workers (and their connections) first.
  for (auto& w : workers_) {
    w->stop();
  }
  for (auto& w : workers_) {
    w->join();
  }
  workers_.clear();
  signals_.clear();
  dns_timer_.reset();
  tick_timer_.reset();
  checkers_.clear();
  drain_timer_.reset();
  drain_delay_timer_.reset();
  backup_.reset();  // kills running backup children before the loop closes
  dns_.reset();
  probe_server_.reset();
  admin_server_.reset();
  main_.shutdown();
  access_log_.reset();
  LEVEE_LOG(Main, info, "levee stopped");
  return 0;
}

bool Server::reload(std::string& body_json) {
  const std::string& path = options_.config_path;
  auto loaded = config::loadPolicyFile(path);
  json::Writer w(body_json);
  if (!loaded) {
    reloads_failed_->inc();
    last_reload_result_ = "failure";
    last_reload_error_ = config::formatErrors(loaded.error());
    LEVEE_LOG(Config, warn, "reload of {} failed; keeping the running policy:\n{}", path, last_reload_error_);
    w.beginObject().key("result").value("failure").key("errors").beginArray();
    for (const auto& e : loaded.error()) {
      w.value(e.toString());
    }
    w.endArray().endObject();
    return false;
  }
  auto policy = std::make_shared<const config::Policy>(std::move(*loaded));
  // Listeners new in this policy get sockets now; a bind failure rejects the reload.
  std::set<std::string> current;
  for (const auto& l : snapshot_->policy->listeners) {
    current.insert(listenerKey(l));
  }
  std::vector<std::string> new_keys;
  for (const auto& l : policy->listeners) {
    if (!current.contains(listenerKey(l))) {
      new_keys.push_back(listenerKey(l));
    }
  }
  std::vector<std::vector<ListenerFd>> fds;
  if (auto st = bindListeners(*policy, new_keys, fds); !st) {
    reloads_failed_->inc();
    last_reload_result_ = "failure";
    last_reload_error_ = st.error().message;
    LEVEE_LOG(Config, warn, "reload of {} failed; keeping the running policy: {}", path, last_reload_error_);
    w.beginObject().key("result").value("failure").key("errors").beginArray().value(last_reload_error_);
    w.endArray().endObject();
    return false;
  }
  snapshot_ = buildSnapshot(policy, ++generation_, makeUpstreams(*policy), makeRateLimits(*policy),
                            [this](const config::Listener& l, const config::Route& r) { return retryStateFor(l, r); });
  loadToken();
  rebuildHostSets();
  restartHealthChecks();
  applyCompanion(*policy);
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->applySnapshot(snapshot_, std::move(fds[i]));
  }
  resolveDns();
  reloads_ok_->inc();
  last_reload_result_ = "success";
  last_reload_error_.clear();
  LEVEE_LOG(Config, info, "reloaded {} (hash {}, generation {})", path, hashHex(policy->content_hash), generation_);
  w.beginObject().key("result").value("success").key("hash").value(hashHex(policy->content_hash));
  w.key("generation").value(generation_).endObject();
  return true;
}

bool Server::ready(std::string& components) {
  bool draining = draining_.load();
  bool ok = started_ && listeners_bound_ && !draining;
  json::Writer w(components);
  w.beginObject();
  // probes.ready_requires: each named upstream needs at least one usable endpoint.
  // Liveness never depends on an upstream.
  for (const auto& name : snapshot_->policy->probes.ready_requires) {
    size_t usable = 0;
    if (hosts_) {
      auto it = hosts_->find(name);
      if (it != hosts_->end()) {
        usable = it->second->usableCount();
      }
    }
    w.key("upstream:" + name).value(usable > 0 ? "healthy" : "unhealthy");
    ok = ok && usable > 0;
  }
  w.key("config").value(snapshot_ ? "healthy" : "unhealthy");
  w.key("listeners").value(listeners_bound_ ? "healthy" : "unhealthy");
  w.key("lifecycle").value(draining ? "draining" : (started_ ? "running" : "starting"));
  w.endObject();
  return ok;
}

std::string Server::metricsText() { return store_.renderPrometheus(); }

void Server::applyCompanion(const config::Policy& policy) {
  const config::BackupConfig& backup = policy.companion.backup;
  if (!backup.enabled) {
    if (backup_ && companion_lock_.held()) {
      // Dropping the manager mid-restore would skip the restore's cleanup (temporary database,
      // connections to the live one): keep it until a later reload.
      LEVEE_LOG(Main, warn, "backup: companion.backup removed from the policy, but {} runs: kept for now",
                companion_lock_.holder());
      return;
    }
    if (backup_) {
      LEVEE_LOG(Main, warn, "backup: companion.backup removed from the policy: backups stop");
    }
    backup_.reset();
    return;
  }
  if (!backup_) {
    backup_ = std::make_unique<companion::backup::BackupManager>(main_, store_, companion_lock_, time_);
  }
  backup_->configure(backup);
}

admin::AdminResponse Server::companionApi(const admin::AdminRequest& req) {
  const std::string& p = req.path;
  if (p == "/api/v1/backup" || p.starts_with("/api/v1/backup/")) {
    if (!backup_) {
      return admin::jsonError(404, "companion.backup is not configured in the policy");
    }
    companion::backup::ApiResponse r = backup_->handle(req.method, p, req.body);
    admin::AdminResponse out;
    out.status = r.status;
    out.body = std::move(r.body) + "\n";
    if (r.status == 405) {
      out.headers.emplace_back("allow", p.ends_with("/create") || p.find("/restore/") != std::string::npos
                                            ? "POST" : (p.ends_with("/list") ? "GET, HEAD" : "GET, HEAD, DELETE"));
    }
    return out;
  }
  return admin::jsonError(404, "not found");
}

std::string Server::configJson() {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("source").value(snapshot_->policy->source_file);
  w.key("hash").value(hashHex(snapshot_->policy->content_hash));
  w.key("generation").value(snapshot_->generation);
  auto t = std::chrono::system_clock::to_time_t(snapshot_->loaded_at);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  w.key("loaded_at").value(buf);
  w.key("last_reload").beginObject().key("result").value(last_reload_result_);
  w.key("error").value(last_reload_error_).endObject();
  w.key("policy").raw(policyToJson(*snapshot_->policy));
  w.endObject();
  return out;
}

std::string Server::clustersJson() {
  std::string out;
  json::Writer w(out);
  w.beginObject().key("upstreams").beginArray();
  for (const auto& [name, up] : snapshot_->policy->upstreams) {
    w.beginObject().key("name").value(name);
    w.key("protocol").value(up.protocol == config::UpstreamProtocol::Tcp ? "tcp" : "http1");
    w.key("load_balancer").value(lbName(up.load_balancer));
    w.key("endpoints").beginArray();
    for (const auto& ep : up.endpoints) {
      w.beginObject().key("address").value(ep.address.toString());
      w.key("priority").value(ep.priority).key("weight").value(ep.weight);
      w.key("resolved").beginArray();
      if (hosts_) {
        auto it = hosts_->find(name);
        if (it != hosts_->end()) {
          const upstream::HostHealth& hh = *it->second;
          for (size_t i = 0; i < hh.size(); ++i) {
            const auto& h = hh.hosts()->hosts[i];
            if (h->configured != ep.address.toString()) {
              continue;
            }
            w.beginObject().key("address").value(h->address);
            w.key("health").value(hh.healthy(i) ? "healthy" : "unhealthy");
            w.key("ejected").value(hh.ejected(i));
            w.key("state").value(!hh.healthy(i) ? "unhealthy" : (hh.ejected(i) ? "ejected" : "healthy"));
            w.endObject();
          }
        }
      }
      w.endArray();
      w.endObject();
    }
    w.endArray();
    w.key("health_check").value(up.health_check.enabled);
    w.key("outlier_detection").value(up.outlier_detection.enabled);
    w.key("failover").beginObject().key("min_healthy_percent").value(up.failover.min_healthy_percent);
    w.key("panic_threshold_percent").value(up.failover.panic_threshold_percent).endObject();
    w.endObject();
  }
  w.endArray().endObject();
  return out;
}

std::string Server::circuitBreakersJson() {
  std::string out;
  json::Writer w(out);
  w.beginObject().key("circuit_breakers").beginArray();
  for (const auto& [name, shared] : snapshot_->upstreams) {
    common::CircuitBreaker* br = shared->breaker();
    if (br == nullptr) {
      continue;
    }
    auto s = br->snapshot();
    w.beginObject().key("upstream").value(name);
    w.key("state").value(common::toString(s.state)).key("forced").value(s.forced);
    w.key("mode").value(s.shadow ? "shadow" : "enforce");
    w.key("consecutive_failures").value(s.consecutive_failures);
    w.key("window").beginObject().key("requests").value(s.window.total).key("failures").value(s.window.failures);
    w.key("slow").value(s.window.slow).endObject();
    w.key("failure_rate_percent").value(s.failure_rate_percent);
    w.key("slow_call_rate_percent").value(s.slow_call_rate_percent);
    w.key("probes_in_flight").value(s.probes_in_flight);
    w.key("open_for_ms").value(static_cast<int64_t>(s.open_for.count()));
    w.key("time_until_half_open_ms").value(static_cast<int64_t>(s.time_until_half_open.count()));
    w.key("rejected_total").value(s.rejected_total).key("would_block_total").value(s.would_block_total);
    w.key("transitions_total").value(s.transitions_total);
    w.endObject();
  }
  w.endArray().endObject();
  return out;
}

int Server::circuitBreakerAction(const std::string& upstream, const std::string& action, std::string& body) {
  json::Writer w(body);
  auto it = snapshot_->upstreams.find(upstream);
  if (it == snapshot_->upstreams.end() || it->second->breaker() == nullptr) {
    w.beginObject().key("error").value("no circuit breaker for upstream \"" + upstream + "\"").endObject();
    return 404;
  }
  common::CircuitBreaker* br = it->second->breaker();
  auto before = common::toString(br->state());
  if (action == "open") {
    br->forceOpen();
  } else if (action == "close") {
    br->forceClose();
  } else {
    br->reset();
  }
  w.beginObject().key("upstream").value(upstream).key("action").value(action);
  w.key("before").value(before).key("after").value(common::toString(br->state())).endObject();
  return 200;
}

void Server::audit(const admin::AdminRequest& req, int status) {
  LEVEE_LOG(Admin, info, "audit: peer={} {} {} -> {}", req.peer, req.method, req.path, status);
}

void Server::startDrain() {
  if (draining_.exchange(true)) {
    return;
  }
  drain_started_ = std::chrono::steady_clock::now();
  const auto& d = snapshot_->policy->drain;
  LEVEE_LOG(Main, info, "draining: readiness off now, listeners close in {} ms, exit within {} ms",
            d.delay.count(), d.grace.count());
  drain_delay_timer_ = main_.createTimer([this] {
    for (auto& w : workers_) {
      w->drain();
    }
    drain_timer_ = main_.createTimer([this] { onDrainTick(); });
    drain_timer_->enableRepeating(std::chrono::milliseconds(50));
  });
  drain_delay_timer_->enable(d.delay);
}

void Server::onDrainTick() {
  uint64_t active = 0;
  for (auto& w : workers_) {
    active += w->activeConnections();
  }
  auto elapsed = std::chrono::steady_clock::now() - drain_started_;
  if (active == 0 || elapsed >= snapshot_->policy->drain.grace) {
    if (active != 0) {
      LEVEE_LOG(Main, warn, "drain grace over with {} connection(s) open: closing them", active);
    }
    shutdown();
  }
}

void Server::shutdown() {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  if (drain_timer_) {
    drain_timer_->disable();  // may be the running callback: disarm, don't destroy
  }
  main_.exit();
}

}  // namespace levee::server
