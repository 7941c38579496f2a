#include "proxy/server/server.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "config/fault_experiment.h"
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

// Reads admin.token_file (blocking: startup, or the reload job on the thread pool). Returns
// the token with surrounding whitespace removed; empty (mutations refused) when unreadable.
std::string readTokenFile(const std::string& f, std::string* warning) {
  if (f.empty()) {
    return {};
  }
  std::ifstream in(f);
  if (!in) {
    *warning = "admin token_file " + f + " unreadable: mutations refused";
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  size_t start = t.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) {
    return {};
  }
  size_t end = t.find_last_not_of(" \t\r\n");
  return t.substr(start, end - start + 1);
}

std::string isoTime(std::chrono::system_clock::time_point tp) {
  auto t = std::chrono::system_clock::to_time_t(tp);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Debounce of directory events (README "Reload"): a burst of events (an editor's temp file
// and rename, the kubelet's three renames) becomes one reload 300 ms after the last event,
// and at most 2 s after the first even if events keep coming.
constexpr std::chrono::milliseconds kWatchDebounce{300};
constexpr std::chrono::milliseconds kWatchMaxDelay{2000};

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
      store_(concurrency_ + 1),
      sla_(concurrency_ + 1),
      degradation_state_(std::make_unique<filters::degradation::DegradationState>(concurrency_ + 1)) {
  degradation_ = std::make_unique<filters::degradation::DegradationController>(main_, *degradation_state_, time_);
  degradation_->configure(policy.degradation);
  auto p = std::make_shared<const config::Policy>(std::move(policy));
  snapshot_ = buildSnapshot(p, ++generation_, makeUpstreams(*p), makeRateLimits(*p),
                            [this](const config::Listener& l, const config::Route& r) { return retryStateFor(l, r); },
                            [this](const config::Listener& l, const config::Route& r) { return fallbackStateFor(l, r); });
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

router::RouteFallbackStateSharedPtr Server::fallbackStateFor(const config::Listener& l, const config::Route& r) {
  std::string key = l.name + "|" + r.name;
  auto it = fallback_states_.find(key);
  if (it != fallback_states_.end() && it->second->config == r.fallback) {
    return it->second;  // the stale store survives the reload
  }
  auto st = router::makeRouteFallbackState(r.name, r.fallback, time_, store_);
  fallback_states_[key] = st;
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
  // The stale stores of the running snapshot's routes (bounded by their max_bytes/max_entries).
  auto stale_stores = [this](std::vector<std::pair<stats::Labels, double>>& out, bool bytes) {
    std::map<std::string, double> by_route;  // route names repeat across listeners: one series
    for (const auto& table : snapshot_->route_tables) {
      if (!table) {
        continue;
      }
      for (const router::CompiledRoute& cr : table->routes()) {
        if (cr.fallback && cr.fallback->stale) {
          const http::ResponseCache& c = *cr.fallback->stale;
          by_route[cr.route->name] += static_cast<double>(bytes ? c.bytes() : c.entries());
        }
      }
    }
    for (const auto& [route, v] : by_route) {
      out.push_back({{{"route", route}}, v});
    }
  };
  store_.gaugeCallback("levee_fallback_stale_bytes", "Bytes held by a route's stale fallback store.",
                       [stale_stores](std::vector<std::pair<stats::Labels, double>>& out) { stale_stores(out, true); });
  store_.gaugeCallback("levee_fallback_stale_entries", "Responses held by a route's stale fallback store.",
                       [stale_stores](std::vector<std::pair<stats::Labels, double>>& out) { stale_stores(out, false); });
  store_.gaugeCallback("levee_degradation_level", "Effective degradation level (0 normal .. 4 maintenance).",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         out.push_back({{}, static_cast<double>(degradation_->effective())});
                       });
  store_.gaugeCallback("levee_degradation_auto_level", "Level set by automatic degradation (0: none).",
                       [this](std::vector<std::pair<stats::Labels, double>>& out) {
                         out.push_back({{}, static_cast<double>(degradation_->automaticLevel())});
                       });
  sla_.registerGauges(store_, time_);
  companion::failover::registerFailoverMetrics(store_, [this] { return failover_.get(); });
  companion::wal::registerWalMetrics(store_, [this] { return backup_ ? backup_->walArchiver() : nullptr; });
  store_.gaugeCallback("levee_workers", "Worker threads.", [this](std::vector<std::pair<stats::Labels, double>>& out) {
    out.push_back({{}, static_cast<double>(concurrency_)});
  });
}

void Server::loadToken() {
  std::string warning;
  admin_token_ = readTokenFile(snapshot_->policy->admin.token_file, &warning);
  if (!warning.empty()) {
    LEVEE_LOG(Admin, warn, "{}", warning);
  }
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
    // endpoints_from: the members the failover companion routes this role to now.
    std::vector<config::Endpoint> from_failover;
    if (up.endpoints_from.role != config::EndpointsFrom::Role::None && failover_) {
      for (const auto& a : failover_->addressesFor(up.endpoints_from.role)) {
        from_failover.push_back(config::Endpoint{a, 0, 1});
      }
    }
    for (const auto& ep : up.endpoints_from.role == config::EndpointsFrom::Role::None ? up.endpoints
                                                                                       : from_failover) {
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
  degradation_->restoreFromStateFile();
  configureSla();
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
  syncFailover();
  rebuildHostSets();
  for (uint32_t i = 0; i < concurrency_; ++i) {
    workers_.push_back(
        std::make_unique<Worker>(i + 1, store_, access_log_.get(), &sla_, degradation_state_.get()));
    workers_.back()->setFaultRegistry(&faults_);
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
    for (const std::string& id : faults_.expire()) {
      LEVEE_LOG(Admin, info, "audit: fault experiment {} expired (ttl)", id);
    }
    std::erase_if(retired_failover_, [](const auto& f) { return f->idle(); });
  });
  tick_timer_->enableRepeating(std::chrono::milliseconds(100));
  // Degradation: TTL expiry and the automatic level, once a second.
  degradation_timer_ = main_.createTimer([this] { degradation_->tick(openBreakerPercent()); });
  degradation_timer_->enableRepeating(std::chrono::milliseconds(1000));
  restartHealthChecks();
  applyCompanion(policy);

  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGTERM, [this] {
    beginDrain(true, std::nullopt, std::nullopt, "SIGTERM");
  }));
  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGINT, [this] {
    beginDrain(true, std::nullopt, std::nullopt, "SIGINT");
  }));
  signals_.push_back(std::make_unique<event::SignalWatcher>(main_, SIGHUP, [this] {
    LEVEE_LOG(Config, info, "SIGHUP: reloading {}", options_.config_path);
    requestReload("sighup", nullptr);
  }));
  startWatching();
  started_ = true;
  LEVEE_LOG(Main, info, "levee {} ready: service {} with {} worker(s), {} listener(s); probes on {}, admin on {}",
            kVersion, policy.service, concurrency_, policy.listeners.size(), policy.probes.address.toString(),
            policy.admin.address.toString());
  main_.run();
  alive_.reset();  // reload completions still queued on the pool become no-ops
  watcher_.reset();
  debounce_timer_.reset();
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
  degradation_timer_.reset();
  checkers_.clear();
  failover_.reset();  // joins its worker threads (the loop has stopped)
  retired_failover_.clear();
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

struct Server::ReloadJob {
  std::string path;
  std::string trigger;
  std::optional<std::expected<config::Policy, config::Errors>> loaded;
  std::string token;
  std::string token_warning;
};

void Server::reload(std::function<void(bool ok, std::string body_json)> done) {
  requestReload("admin", std::move(done));
}

void Server::requestReload(std::string trigger, ReloadDone done) {
  if (done) {
    next_waiters_.push_back(std::move(done));
  }
  // An admin or SIGHUP request outranks a watch event in the trigger shown by /admin/config.
  if (next_trigger_.empty() || next_trigger_ == "watch") {
    next_trigger_ = std::move(trigger);
  }
  if (reload_running_) {
    reload_again_ = true;  // runs once more when the current one ends (it may have read the old file)
    return;
  }
  startReload();
}

void Server::startReload() {
  reload_running_ = true;
  reload_again_ = false;
  auto job = std::make_shared<ReloadJob>();
  job->path = options_.config_path;
  job->trigger = std::exchange(next_trigger_, {});
  std::vector<ReloadDone> waiters = std::exchange(next_waiters_, {});
  std::weak_ptr<int> alive = alive_;
  // The thread pool does the blocking part: reading the policy and token files and parsing
  // YAML (STYLE B.10.4). The job touches nothing but itself.
  auto work = [job] {
    job->loaded = config::loadPolicyFile(job->path);
    if (*job->loaded) {
      job->token = readTokenFile((*job->loaded)->admin.token_file, &job->token_warning);
    }
  };
  auto done = [this, alive, job, waiters = std::move(waiters)]() mutable {
    if (alive.expired()) {
      return;  // shutting down
    }
    finishReload(*job, std::move(waiters));
  };
  if (!event::runOffLoop(main_, work, done)) {
    work();  // the pool refused the request (never seen): do it here rather than not at all
    done();
  }
}

void Server::recordReloadFailure(const std::string& trigger, std::vector<std::string> errors) {
  reloads_failed_->inc();
  last_reload_result_ = "failure";
  last_reload_trigger_ = trigger;
  last_reload_at_ = std::chrono::system_clock::now();
  last_reload_errors_ = std::move(errors);
  std::string joined;
  for (const auto& e : last_reload_errors_) {
    joined += "\n  " + e;
  }
  LEVEE_LOG(Config, warn, "reload ({}) of {} failed; keeping the running policy (hash {}):{}", trigger,
            options_.config_path, hashHex(snapshot_->policy->content_hash), joined);
}

void Server::finishReload(ReloadJob& job, std::vector<ReloadDone> waiters) {
  std::string body;
  bool ok = false;
  json::Writer w(body);
  const std::string before = hashHex(snapshot_->policy->content_hash);
  auto& loaded = *job.loaded;
  if (loaded && job.trigger == "watch" && waiters.empty() && loaded->content_hash == snapshot_->policy->content_hash) {
    // A directory event that did not change the policy's bytes (another file, a touch).
    LEVEE_LOG(Config, debug, "watch: {} unchanged (hash {})", job.path, before);
    ok = true;
  } else if (!loaded) {
    std::vector<std::string> errors;
    for (const auto& e : loaded.error()) {
      errors.push_back(e.toString());
    }
    recordReloadFailure(job.trigger, errors);
    w.beginObject().key("result").value("failure").key("trigger").value(job.trigger);
    w.key("running_hash").value(before).key("errors").beginArray();
    for (const auto& e : errors) {
      w.value(e);
    }
    w.endArray().endObject();
  } else {
    if (loaded->metrics.latency_buckets != snapshot_->policy->metrics.latency_buckets) {
      // A histogram series keeps its bucket layout for the life of the process (Prometheus
      // must not see one series with two layouts): the running buckets stay until a restart.
      LEVEE_LOG(Config, warn,
                "{}: metrics.latency_buckets changed; histogram buckets take effect at the next "
                "restart (the running ones are kept)",
                job.path);
      loaded->metrics.latency_buckets = snapshot_->policy->metrics.latency_buckets;
    }
    auto policy = std::make_shared<const config::Policy>(std::move(*loaded));
    if (!job.token_warning.empty()) {
      LEVEE_LOG(Admin, warn, "{}", job.token_warning);
    }
    std::string error;
    if (!applyPolicy(policy, std::move(job.token), error)) {
      recordReloadFailure(job.trigger, {error});
      w.beginObject().key("result").value("failure").key("trigger").value(job.trigger);
      w.key("running_hash").value(before).key("errors").beginArray().value(error).endArray().endObject();
    } else {
      ok = true;
      reloads_ok_->inc();
      last_reload_result_ = "success";
      last_reload_trigger_ = job.trigger;
      last_reload_at_ = std::chrono::system_clock::now();
      last_reload_errors_.clear();
      LEVEE_LOG(Config, info, "reloaded {} ({}): hash {} -> {}, generation {}", job.path, job.trigger, before,
                hashHex(policy->content_hash), generation_);
      w.beginObject().key("result").value("success").key("trigger").value(job.trigger);
      w.key("before").beginObject().key("hash").value(before).endObject();
      w.key("after").beginObject().key("hash").value(hashHex(policy->content_hash));
      w.key("generation").value(generation_).endObject().endObject();
    }
  }
  reload_running_ = false;
  for (auto& d : waiters) {
    d(ok, body);
  }
  if (reload_again_ || !next_waiters_.empty()) {
    startReload();
  }
}

bool Server::applyPolicy(config::PolicyConstSharedPtr policy, std::string token, std::string& error) {
  // Listeners new in this policy (or moved to another address) get sockets now; a bind
  // failure rejects the whole reload. Unchanged listeners keep their sockets and connections;
  // the workers close the ones that left.
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
    error = st.error().message;
    return false;
  }
  const config::Policy& old = *snapshot_->policy;
  if (!(old.admin.address == policy->admin.address) || !(old.probes.address == policy->probes.address)) {
    LEVEE_LOG(Config, warn, "admin/probes addresses changed: they take effect at the next restart");
  }
  snapshot_ = buildSnapshot(policy, ++generation_, makeUpstreams(*policy), makeRateLimits(*policy),
                            [this](const config::Listener& l, const config::Route& r) { return retryStateFor(l, r); },
                            [this](const config::Listener& l, const config::Route& r) { return fallbackStateFor(l, r); });
  admin_token_ = std::move(token);
  degradation_->configure(policy->degradation);
  configureSla();
  syncFailover();
  rebuildHostSets();
  restartHealthChecks();
  applyCompanion(*policy);
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->applySnapshot(snapshot_, std::move(fds[i]));
  }
  resolveDns();
  return true;
}

void Server::startWatching() {
  std::filesystem::path p(options_.config_path);
  std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  auto w = event::DirWatcher::create(main_, dir, [this](const std::string& name) { onWatchEvent(name); });
  if (!w) {
    LEVEE_LOG(Config, warn, "not watching {} ({}); reload with SIGHUP or POST /admin/reload", dir,
              w.error().message);
    return;
  }
  watcher_ = std::move(*w);
  debounce_timer_ = main_.createTimer([this] { requestReload("watch", nullptr); });
  LEVEE_LOG(Config, info, "watching {} for policy changes", dir);
}

void Server::onWatchEvent(const std::string& name) {
  LEVEE_LOG(Config, debug, "watch: event on \"{}\"", name);
  auto now = std::chrono::steady_clock::now();
  if (!debounce_timer_->enabled()) {
    first_event_at_ = now;
  }
  auto cap = std::chrono::duration_cast<std::chrono::milliseconds>(first_event_at_ + kWatchMaxDelay - now);
  debounce_timer_->enable(std::clamp(cap, std::chrono::milliseconds(0), kWatchDebounce));
}

bool Server::listenersBound() const {
  return !workers_.empty() &&
         std::all_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->listening(); });
}

bool Server::ready(std::string& components) {
  bool draining = draining_.load();
  bool bound = listenersBound();
  bool ok = started_ && bound && !draining;
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
  w.key("listeners").value(bound ? "healthy" : "unhealthy");
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
  w.key("loaded_at").value(isoTime(snapshot_->loaded_at));
  // The last reload attempt; a failed one leaves hash/generation/loaded_at above unchanged.
  w.key("last_reload").beginObject().key("result").value(last_reload_result_);
  if (last_reload_result_ != "none") {
    w.key("trigger").value(last_reload_trigger_).key("at").value(isoTime(last_reload_at_));
  }
  w.key("errors").beginArray();
  for (const auto& e : last_reload_errors_) {
    w.value(e);
  }
  w.endArray();
  std::string first = last_reload_errors_.empty() ? "" : last_reload_errors_.front();
  w.key("error").value(first).endObject();
  w.key("watching").value(watcher_ != nullptr);
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

double Server::openBreakerPercent() const {
  uint32_t with = 0;
  uint32_t open = 0;
  for (const auto& [name, shared] : snapshot_->upstreams) {
    if (common::CircuitBreaker* br = shared->breaker()) {
      ++with;
      auto st = br->state();
      open += (st == common::CircuitBreaker::State::Open || st == common::CircuitBreaker::State::ForcedOpen) ? 1 : 0;
    }
  }
  return with == 0 ? 0.0 : 100.0 * open / with;
}

std::string Server::degradationJson() { return degradation_->json(); }

int Server::setDegradation(std::string_view body, std::string& body_json) {
  std::string change;
  int status = degradation_->put(body, body_json, change);
  if (status == 200) {
    LEVEE_LOG(Admin, info, "audit: degradation {}", change);
  }
  return status;
}

int Server::clearDegradation(std::string& body_json) {
  std::string change;
  int status = degradation_->clear(body_json, change);
  LEVEE_LOG(Admin, info, "audit: degradation {}", change);
  return status;
}
void Server::configureSla() {
  const config::Policy& p = *snapshot_->policy;
  const config::SloConfig& slo = p.metrics.slo;
  const stats::sla::Objectives objectives{
      slo.availability_percent, std::chrono::duration<double>(slo.latency_threshold).count(),
      slo.latency_percent};
  std::vector<stats::SlaRegistry::Key> routes;
  for (const auto& l : p.listeners) {
    if (l.protocol != config::ListenerProtocol::Http) {
      continue;
    }
    for (const auto& r : l.routes) {
      routes.emplace_back(l.name, r.name, r.upstream);
    }
  }
  sla_.configure(objectives, routes);
}

std::string Server::slaJson() { return sla_.reportJson(time_.monotonicTime()); }

int Server::createFault(const std::string& body, std::string& out) {
  json::Writer w(out);
  auto spec = config::parseFaultExperiment(body, *snapshot_->policy);
  if (!spec) {
    w.beginObject().key("error").value(spec.error().front().toString()).key("errors").beginArray();
    for (const auto& e : spec.error()) {
      w.value(e.toString());
    }
    w.endArray().endObject();
    return 400;
  }
  filters::fault::FaultRule rule;
  std::string error;
  if (!faults_.add(*spec, snapshot_->policy->faults.max_active, rule, error)) {
    w.beginObject().key("error").value(error).endObject();
    return 409;
  }
  std::string rule_json;
  filters::fault::FaultRegistry::ruleToJson(rule_json, rule, faults_.now());
  LEVEE_LOG(Admin, info, "audit: fault experiment {} started: {}", rule.id, rule_json);
  w.beginObject().key("id").value(rule.id).key("fault").raw(rule_json).endObject();
  return 201;
}

int Server::deleteFault(const std::string& id, std::string& out) {
  json::Writer w(out);
  if (id.empty()) {
    size_t n = faults_.clear();
    LEVEE_LOG(Admin, info, "audit: fault kill switch: {} experiment(s) removed", n);
    w.beginObject().key("deleted").value(static_cast<uint64_t>(n)).key("active").value(0).endObject();
    return 200;
  }
  filters::fault::FaultRule removed;
  if (!faults_.remove(id, &removed)) {
    w.beginObject().key("error").value("no fault experiment \"" + id + "\"").endObject();
    return 404;
  }
  std::string before;
  filters::fault::FaultRegistry::ruleToJson(before, removed, faults_.now());
  LEVEE_LOG(Admin, info, "audit: fault experiment {} deleted (was {})", id, before);
  w.beginObject().key("deleted").value(id).endObject();
  return 200;
}

void Server::syncFailover() {
  const config::PostgresFailoverConfig& c = snapshot_->policy->companion.failover_postgres;
  if (failover_ && c.enabled && failover_->config() == c) {
    return;  // unchanged: keep its view of the cluster
  }
  if (failover_) {
    failover_->stop();
    retired_failover_.push_back(std::move(failover_));
  }
  if (!c.enabled) {
    return;
  }
  failover_ = std::make_unique<companion::failover::FailoverManager>(main_, c, store_, companion_lock_, [this] {
    if (started_ || !workers_.empty()) {
      rebuildHostSets();
    }
  });
  failover_->start();
}

int Server::failoverStatus(std::string& body) {
  return failover_ ? (body = failover_->statusJson(), 200) : admin::AdminContext::failoverStatus(body);
}

int Server::failoverPromote(const std::string& request_body, std::string& body) {
  return failover_ ? failover_->promote(request_body, body)
                   : admin::AdminContext::failoverPromote(request_body, body);
}

int Server::failoverRoleHealth(std::string_view role, std::string_view query, std::string& body) {
  return failover_ ? failover_->roleHealth(role, query, body)
                   : admin::AdminContext::failoverRoleHealth(role, query, body);
}

void Server::audit(const admin::AdminRequest& req, int status, std::string_view detail) {
  const char* outcome = status < 300 ? "ok" : (status == 401 || status == 403) ? "denied" : "refused";
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) {
    detail.remove_suffix(1);
  }
  LEVEE_LOG(Admin, info, "audit: peer={} method={} path={} status={} outcome={} detail={}", req.peer, req.method,
            req.path, status, outcome, detail);
}

int Server::drain(const admin::DrainRequest& request, std::string& body) {
  const char* before = !draining_ ? "running" : (exit_requested_ ? "draining_to_exit" : "draining");
  beginDrain(request.exit, request.delay, request.grace, request.exit ? "POST /admin/quit" : "POST /admin/drain");
  json::Writer w(body);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - drain_started_);
  w.beginObject().key("result").value("draining").key("before").value(before);
  w.key("after").value(exit_requested_ ? "draining_to_exit" : "draining");
  w.key("exit").value(exit_requested_);
  w.key("grace_left_ms").value(static_cast<int64_t>(std::max(drain_grace_ - elapsed, std::chrono::milliseconds(0)).count()));
  w.endObject();
  return 202;
}

void Server::beginDrain(bool exit, std::optional<std::chrono::milliseconds> delay,
                        std::optional<std::chrono::milliseconds> grace, const char* why) {
  exit_requested_ = exit_requested_ || exit;
  if (draining_.exchange(true)) {
    LEVEE_LOG(Main, info, "{}: already draining{}", why, exit_requested_ ? "; exiting when done" : "");
    return;  // the first request's timing stands; the grace is counted from its start
  }
  drain_started_ = std::chrono::steady_clock::now();
  const auto& d = snapshot_->policy->drain;
  auto delay_ms = delay.value_or(d.delay);
  drain_grace_ = std::max(grace.value_or(d.grace), delay_ms);
  LEVEE_LOG(Main, info, "{}: draining: readiness off and Connection: close on inbound now, inbound listeners close in {} ms, {} within {} ms",
            why, delay_ms.count(), exit_requested_ ? "exit" : "drained", drain_grace_.count());
  for (auto& w : workers_) {
    w->drain(Worker::DrainPhase::CloseAfterResponse);
  }
  drain_delay_timer_ = main_.createTimer([this] {
    LEVEE_LOG(Main, info, "drain: inbound listeners stop accepting");
    for (auto& w : workers_) {
      w->drain(Worker::DrainPhase::StopAccepting);
    }
    drain_timer_ = main_.createTimer([this] { onDrainTick(); });
    drain_timer_->enableRepeating(std::chrono::milliseconds(50));
  });
  drain_delay_timer_->enable(delay_ms);
}

void Server::onDrainTick() {
  if (!exit_requested_) {
    return;  // POST /admin/drain: stay up drained (outbound keeps serving) until asked to exit
  }
  uint64_t active = 0;
  for (auto& w : workers_) {
    active += w->activeConnections();
  }
  auto elapsed = std::chrono::steady_clock::now() - drain_started_;
  if (active == 0 || elapsed >= drain_grace_) {
    if (active != 0) {
      LEVEE_LOG(Main, warn, "drain grace over with {} connection(s) open: closing them", active);
    } else {
      LEVEE_LOG(Main, info, "drained: no connection left");
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
