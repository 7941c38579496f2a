#include "filters/fault/fault_config.h"

#include <algorithm>

#include "proxy/common/json.h"
#include "proxy/http/header_map.h"

namespace levee::filters::fault {

bool FaultRule::matches(std::string_view route_name, std::string_view upstream_name,
                        const http::RequestHead& head) const {
  if (!route.empty() && route != route_name) {
    return false;
  }
  if (!upstream.empty() && upstream != upstream_name) {
    return false;
  }
  return std::ranges::all_of(headers, [&](const config::HeaderMatch& m) {
    return head.headers.has(m.name) && head.headers.get(m.name) == m.value;
  });
}

// === impl FaultRegistry ===

FaultRegistry::FaultRegistry(const TimeSource& time)
    : time_(time), rules_(std::make_shared<const ActiveFaults>()), published_(rules_) {}

bool FaultRegistry::add(const config::FaultExperimentSpec& spec, uint32_t max_active,
                        FaultRule& added, std::string& error) {
  if (max_active == 0) {
    error = "fault experiments are disabled (faults.max_active: 0)";
    return false;
  }
  if (rules_->rules.size() >= max_active) {
    error = "max_active (" + std::to_string(max_active) +
            ") experiments already run: delete one or wait for its ttl (faults.max_active)";
    return false;
  }
  FaultRule r;
  r.id = "f-" + std::to_string(next_id_++);
  r.route = spec.route;
  r.upstream = spec.upstream;
  r.headers = spec.headers;
  r.fault = spec.fault;
  r.expires_at = time_.monotonicTime() + spec.ttl;
  r.created_at = time_.systemTime();
  r.expires_at_system = r.created_at + spec.ttl;
  std::vector<FaultRule> next = rules_->rules;
  next.push_back(r);
  publish(std::move(next));
  added = std::move(r);
  return true;
}

bool FaultRegistry::remove(std::string_view id, FaultRule* removed) {
  std::vector<FaultRule> next = rules_->rules;
  auto it = std::ranges::find(next, id, &FaultRule::id);
  if (it == next.end()) {
    return false;
  }
  if (removed != nullptr) {
    *removed = *it;
  }
  next.erase(it);
  publish(std::move(next));
  return true;
}

size_t FaultRegistry::clear() {
  size_t n = rules_->rules.size();
  if (n > 0) {
    publish({});
  }
  return n;
}

std::vector<std::string> FaultRegistry::expire() {
  std::vector<std::string> gone;
  const MonotonicTime now = time_.monotonicTime();
  std::vector<FaultRule> next;
  for (const FaultRule& r : rules_->rules) {
    if (r.expires_at <= now) {
      gone.push_back(r.id);
    } else {
      next.push_back(r);
    }
  }
  if (!gone.empty()) {
    publish(std::move(next));
  }
  return gone;
}

void FaultRegistry::publish(std::vector<FaultRule> rules) {
  auto next = std::make_shared<ActiveFaults>();
  next->version = rules_->version + 1;
  next->rules = std::move(rules);
  rules_ = next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    published_ = rules_;
  }
  version_.store(rules_->version, std::memory_order_release);
}

ActiveFaultsConstSharedPtr FaultRegistry::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

void FaultRegistry::ruleToJson(std::string& out, const FaultRule& r, MonotonicTime now) {
  auto iso = [](SystemTime t) {
    auto tt = std::chrono::system_clock::to_time_t(t);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&tt));
    return std::string(buf);
  };
  auto percent = [](uint32_t ppm) { return static_cast<double>(ppm) / 10000.0; };
  json::Writer w(out);
  w.beginObject().key("id").value(r.id);
  w.key("route").value(r.route).key("upstream").value(r.upstream);
  w.key("header").beginObject();
  for (const auto& h : r.headers) {
    w.key(h.name).value(h.value);
  }
  w.endObject();
  const config::FaultConfig& f = r.fault;
  if (f.delay.count() > 0) {
    w.key("delay").beginObject().key("percent").value(percent(f.delay_ppm));
    w.key("duration_ms").value(static_cast<int64_t>(f.delay.count())).endObject();
  }
  if (f.abort_status != 0) {
    w.key("abort").beginObject().key("percent").value(percent(f.abort_ppm));
    w.key("status").value(f.abort_status).endObject();
  }
  if (f.reset_ppm != 0) {
    w.key("reset").beginObject().key("percent").value(percent(f.reset_ppm)).endObject();
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(r.expires_at - now);
  w.key("created_at").value(iso(r.created_at)).key("expires_at").value(iso(r.expires_at_system));
  w.key("ttl_remaining_ms").value(static_cast<int64_t>(std::max<int64_t>(0, left.count())));
  w.endObject();
}

std::string FaultRegistry::toJson() const {
  std::string out;
  json::Writer w(out);
  w.beginObject().key("faults").beginArray();
  const MonotonicTime now = time_.monotonicTime();
  for (const FaultRule& r : rules_->rules) {
    std::string one;
    ruleToJson(one, r, now);
    w.raw(one);
  }
  w.endArray().key("active").value(static_cast<uint64_t>(rules_->rules.size())).endObject();
  return out;
}

// === impl FaultView ===

const ActiveFaults& FaultView::current() {
  if (registry_ == nullptr) {
    static const ActiveFaults none;
    return none;
  }
  const uint64_t v = registry_->version();
  if (v != seen_ || !cached_) {
    cached_ = registry_->current();
    seen_ = cached_->version;
  }
  return *cached_;
}

}  // namespace levee::filters::fault
