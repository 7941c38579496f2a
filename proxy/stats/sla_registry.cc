#include "proxy/stats/sla_registry.h"

#include <cmath>

#include "proxy/common/json.h"

namespace levee::stats {
namespace {

using std::chrono::seconds;

constexpr uint32_t kFineBuckets = 30;     // 10 s each: 5 min
constexpr uint32_t kCoarseBuckets = 60;   // 1 min each: 1 h
constexpr uint32_t kOneMinuteBuckets = 6;

// Gauges of one scrape are rendered from one computation of the rows (see registerGauges).
constexpr std::chrono::milliseconds kGaugeCacheFor{1000};

const char* sloName(bool latency) { return latency ? "latency" : "availability"; }

Labels seriesLabels(const SlaSeries& s) {
  return {{"listener", s.listener()}, {"route", s.route()}, {"upstream", s.upstream()}};
}

Labels with(Labels l, std::string name, std::string value) {
  l.emplace_back(std::move(name), std::move(value));
  return l;
}

void writeBudget(json::Writer& w, const sla::Budget& b) {
  w.beginObject().key("allowed_ratio").value(b.allowed).key("burn_rate").value(b.burn_rate);
  w.key("remaining").value(b.remaining).endObject();
}

}  // namespace

// === SlaSeries ===

struct SlaSeries::ThreadRings {
  sla::Ring fine{seconds(10), kFineBuckets};
  sla::Ring coarse{seconds(60), kCoarseBuckets};
};

SlaSeries::SlaSeries(std::string listener, std::string route, std::string upstream,
                     uint32_t thread_slots, const std::atomic<int64_t>& threshold_ns)
    : listener_(std::move(listener)),
      route_(std::move(route)),
      upstream_(std::move(upstream)),
      thread_slots_(thread_slots),
      threshold_ns_(threshold_ns),
      rings_(std::make_unique<std::atomic<ThreadRings*>[]>(size_t{thread_slots} + 1)) {}

SlaSeries::~SlaSeries() {
  for (uint32_t i = 0; i <= thread_slots_; ++i) {
    delete rings_[i].load(std::memory_order_acquire);
  }
}

void SlaSeries::recordInto(ThreadRings& r, MonotonicTime now, int status, double seconds) noexcept {
  const int64_t threshold = threshold_ns_.load(std::memory_order_relaxed);
  const bool slow = threshold > 0 && seconds * 1e9 > static_cast<double>(threshold);
  const bool error = sla::isError(status);
  const size_t bucket = sla::latencyBucketOf(seconds);
  r.fine.record(now, error, slow, bucket);
  r.coarse.record(now, error, slow, bucket);
}

void SlaSeries::record(MonotonicTime now, int status, double seconds) noexcept {
  const uint32_t slot = detail::tls_thread_slot;
  if (slot < thread_slots_) [[likely]] {
    std::atomic<ThreadRings*>& p = rings_[slot];
    ThreadRings* r = p.load(std::memory_order_relaxed);  // this thread is the only writer
    if (r == nullptr) [[unlikely]] {
      r = new ThreadRings();  // once per (series, thread); OOM is fatal by policy
      p.store(r, std::memory_order_release);
    }
    recordInto(*r, now, status, seconds);
    return;
  }
  std::lock_guard lock(shared_mu_);
  std::atomic<ThreadRings*>& p = rings_[thread_slots_];
  ThreadRings* r = p.load(std::memory_order_relaxed);
  if (r == nullptr) {
    r = new ThreadRings();
    p.store(r, std::memory_order_release);
  }
  recordInto(*r, now, status, seconds);
}

std::array<sla::Counts, kSlaWindows> SlaSeries::windows(MonotonicTime now) const {
  std::array<sla::Counts, kSlaWindows> out{};
  for (uint32_t i = 0; i <= thread_slots_; ++i) {
    const ThreadRings* r = rings_[i].load(std::memory_order_acquire);
    if (r == nullptr) {
      continue;
    }
    r->fine.addTo(now, kOneMinuteBuckets, out[0]);
    r->fine.addTo(now, kFineBuckets, out[1]);
    r->coarse.addTo(now, kCoarseBuckets, out[2]);
  }
  return out;
}

// === SlaRegistry ===

SlaRegistry::SlaRegistry(uint32_t thread_slots) : thread_slots_(thread_slots) {}

SlaRegistry::~SlaRegistry() = default;

SlaSeries& SlaRegistry::series(std::string_view listener, std::string_view route,
                               std::string_view upstream) {
  Key key{std::string(listener), std::string(route), std::string(upstream)};
  std::lock_guard lock(mu_);
  auto it = series_.find(key);
  if (it == series_.end()) {
    auto s = std::make_unique<SlaSeries>(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                                         thread_slots_, threshold_ns_);
    it = series_.emplace(std::move(key), std::move(s)).first;
  }
  return *it->second;
}

void SlaRegistry::configure(const sla::Objectives& objectives, const std::vector<Key>& current) {
  for (const auto& [listener, route, upstream] : current) {
    series(listener, route, upstream);
  }
  std::lock_guard lock(mu_);
  objectives_ = objectives;
  current_ = std::set<Key>(current.begin(), current.end());
  const double ns = objectives.hasLatency() ? std::round(objectives.latency_threshold_s * 1e9) : 0;
  threshold_ns_.store(static_cast<int64_t>(ns), std::memory_order_relaxed);
}

std::vector<SlaRegistry::Row> SlaRegistry::rows(MonotonicTime now, sla::Objectives* objectives) const {
  std::vector<std::pair<const SlaSeries*, bool>> list;  // series, in the running policy
  sla::Objectives obj;
  {
    std::lock_guard lock(mu_);
    obj = objectives_;
    list.reserve(series_.size());
    for (const auto& [key, s] : series_) {
      list.emplace_back(s.get(), current_.contains(key));
    }
  }
  if (objectives != nullptr) {
    *objectives = obj;
  }
  std::vector<Row> out;
  out.reserve(list.size());
  for (const auto& [s, current] : list) {
    const auto counts = s->windows(now);
    if (!current && counts[2].requests == 0) {
      continue;  // left the policy and its last hour is empty
    }
    Row row{s, {}};
    for (size_t w = 0; w < kSlaWindows; ++w) {
      row.windows[w] = sla::summarize(counts[w], obj);
    }
    out.push_back(row);
  }
  return out;
}

std::string SlaRegistry::reportJson(MonotonicTime now) const {
  sla::Objectives obj;
  const std::vector<Row> rs = rows(now, &obj);
  std::string out;
  json::Writer w(out);
  w.beginObject().key("slo").beginObject();
  w.key("availability_percent");
  if (obj.hasAvailability()) {
    w.value(obj.availability_percent);
  } else {
    w.null();
  }
  w.key("latency");
  if (obj.hasLatency()) {
    w.beginObject().key("threshold_seconds").value(obj.latency_threshold_s);
    w.key("percent").value(obj.latency_percent).endObject();
  } else {
    w.null();
  }
  w.endObject();
  w.key("windows").beginArray();
  for (std::string_view name : kSlaWindowNames) {
    w.value(name);
  }
  w.endArray();
  w.key("routes").beginArray();
  for (const Row& row : rs) {
    w.beginObject().key("listener").value(row.series->listener());
    w.key("route").value(row.series->route()).key("upstream").value(row.series->upstream());
    w.key("windows").beginObject();
    for (size_t i = 0; i < kSlaWindows; ++i) {
      const sla::Summary& s = row.windows[i];
      w.key(kSlaWindowNames[i]).beginObject();
      w.key("requests").value(s.requests).key("errors").value(s.errors);
      w.key("availability").value(s.availability).key("error_rate").value(s.error_rate);
      w.key("latency_seconds").beginObject().key("p50").value(s.p50).key("p95").value(s.p95);
      w.key("p99").value(s.p99).endObject();
      if (obj.hasLatency()) {
        w.key("slow_requests").value(s.slow);
        w.key("latency_within_threshold").value(s.latency_within_threshold);
      }
      w.key("error_budget").beginObject();
      if (obj.hasAvailability()) {
        w.key("availability");
        writeBudget(w, s.availability_budget);
      }
      if (obj.hasLatency()) {
        w.key("latency");
        writeBudget(w, s.latency_budget);
      }
      w.endObject();
      w.endObject();
    }
    w.endObject().endObject();
  }
  w.endArray().endObject();
  return out;
}

void SlaRegistry::registerGauges(Store& store, const TimeSource& time) {
  // Each family's callback runs during the same render; they share one computation.
  struct Cache {
    MonotonicTime at{};
    bool valid{false};
    std::vector<Row> rows;
    sla::Objectives objectives;
  };
  auto cache = std::make_shared<Cache>();
  auto current = [this, clock = &time, cache]() -> const Cache& {
    const MonotonicTime now = clock->monotonicTime();
    if (!cache->valid || now < cache->at || now - cache->at >= kGaugeCacheFor) {
      cache->rows = rows(now, &cache->objectives);
      cache->at = now;
      cache->valid = true;
    }
    return *cache;
  };
  using Out = std::vector<std::pair<Labels, double>>;
  // Per window, only where the window holds requests (a ratio of nothing is not a number).
  auto perWindow = [current](auto value) {
    return [current, value](Out& out) {
      const Cache& c = current();
      for (const Row& row : c.rows) {
        for (size_t w = 0; w < kSlaWindows; ++w) {
          value(out, with(seriesLabels(*row.series), "window", std::string(kSlaWindowNames[w])),
                row.windows[w], c.objectives);
        }
      }
    };
  };
  store.gaugeCallback(
      "levee_sla_requests", "Requests completed in the SLA window, by route and window.",
      perWindow([](Out& out, Labels l, const sla::Summary& s, const sla::Objectives&) {
        out.emplace_back(std::move(l), static_cast<double>(s.requests));
      }));
  store.gaugeCallback(
      "levee_sla_availability_ratio",
      "Share of requests in the SLA window without a 5xx answer (1 - error rate).",
      perWindow([](Out& out, Labels l, const sla::Summary& s, const sla::Objectives&) {
        if (s.requests > 0) {
          out.emplace_back(std::move(l), s.availability);
        }
      }));
  store.gaugeCallback(
      "levee_sla_latency_seconds",
      "Latency percentiles (50, 95, 99) over the SLA window, within 19% of the true value.",
      perWindow([](Out& out, Labels l, const sla::Summary& s, const sla::Objectives&) {
        if (s.requests == 0) {
          return;
        }
        out.emplace_back(with(l, "percentile", "50"), s.p50);
        out.emplace_back(with(l, "percentile", "95"), s.p95);
        out.emplace_back(with(std::move(l), "percentile", "99"), s.p99);
      }));
  store.gaugeCallback(
      "levee_sla_latency_within_threshold_ratio",
      "Share of requests in the SLA window within metrics.slo.latency.threshold.",
      perWindow([](Out& out, Labels l, const sla::Summary& s, const sla::Objectives& o) {
        if (o.hasLatency() && s.requests > 0) {
          out.emplace_back(std::move(l), s.latency_within_threshold);
        }
      }));
  // One sample per configured objective (slo="availability|latency").
  auto perBudget = [&perWindow](double sla::Budget::*field) {
    return perWindow([field](Out& out, Labels l, const sla::Summary& s, const sla::Objectives& o) {
      if (o.hasAvailability()) {
        out.emplace_back(with(l, "slo", sloName(false)), s.availability_budget.*field);
      }
      if (o.hasLatency()) {
        out.emplace_back(with(std::move(l), "slo", sloName(true)), s.latency_budget.*field);
      }
    });
  };
  store.gaugeCallback(
      "levee_sla_error_budget_remaining_ratio",
      "Error budget left over the SLA window: 1 - burn rate (negative when overspent).",
      perBudget(&sla::Budget::remaining));
  store.gaugeCallback(
      "levee_sla_error_budget_burn_rate",
      "Observed bad share over the SLA window divided by the share the objective allows.",
      perBudget(&sla::Budget::burn_rate));
  store.gaugeCallback(
      "levee_sla_objective_ratio", "The objectives of metrics.slo as ratios, by route.",
      [current](Out& out) {
        const Cache& c = current();
        for (const Row& row : c.rows) {
          if (c.objectives.hasAvailability()) {
            out.emplace_back(with(seriesLabels(*row.series), "slo", sloName(false)),
                             c.objectives.availability_percent / 100.0);
          }
          if (c.objectives.hasLatency()) {
            out.emplace_back(with(seriesLabels(*row.series), "slo", sloName(true)),
                             c.objectives.latency_percent / 100.0);
          }
        }
      });
  store.gaugeCallback(
      "levee_sla_latency_threshold_seconds", "metrics.slo.latency.threshold.", [current](Out& out) {
        const Cache& c = current();
        if (c.objectives.hasLatency()) {
          out.emplace_back(Labels{}, c.objectives.latency_threshold_s);
        }
      });
}

}  // namespace levee::stats
