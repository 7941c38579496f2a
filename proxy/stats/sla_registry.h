#pragma once
// The SLA report (GET /admin/sla, levee_sla_* gauges): rolling availability, error rate,
// latency quantiles and error budgets per (listener, route, upstream) over 1m, 5m and 1h.
//
// Recording happens on the worker threads at stream completion and is lock-free: every series
// keeps one pair of rings (sla_window.h) per thread slot (the Store's slots: main thread 0,
// worker i = i), allocated the first time that thread records into the series, and written only
// by that thread. The main thread merges all slots when it renders a report or a scrape.
// Memory is fixed per (series, thread that served it): 30 buckets of 10 s (the 1m and 5m
// windows) plus 60 buckets of 1 min (the 1h window), 296 bytes each, about 26 KiB.
//
// Windows: "1m" = the current 10 s bucket and the 5 before it (50-60 s of history), "5m" = 30
// buckets of 10 s (290-300 s), "1h" = 60 buckets of 1 min (59-60 min).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "proxy/common/time_source.h"
#include "proxy/stats/sla_window.h"
#include "proxy/stats/store.h"

namespace levee::stats {

inline constexpr size_t kSlaWindows = 3;
inline constexpr std::array<std::string_view, kSlaWindows> kSlaWindowNames{"1m", "5m", "1h"};

class SlaSeries {
public:
  // `threshold_ns`: the latency objective's threshold, owned by the registry (0: none).
  SlaSeries(std::string listener, std::string route, std::string upstream, uint32_t thread_slots,
            const std::atomic<int64_t>& threshold_ns);
  ~SlaSeries();
  SlaSeries(const SlaSeries&) = delete;
  SlaSeries& operator=(const SlaSeries&) = delete;

  // Any thread, normally a worker at stream completion. Lock-free once this thread has recorded
  // into this series before (the first call allocates the thread's rings). A thread without a
  // slot of its own (kSharedThreadSlot) takes a mutex.
  void record(MonotonicTime now, int status, double seconds) noexcept;

  // Any thread. The 1m, 5m and 1h windows ending at `now`, merged over all threads.
  std::array<sla::Counts, kSlaWindows> windows(MonotonicTime now) const;

  const std::string& listener() const { return listener_; }
  const std::string& route() const { return route_; }
  const std::string& upstream() const { return upstream_; }

private:
  struct ThreadRings;
  void recordInto(ThreadRings& r, MonotonicTime now, int status, double seconds) noexcept;

  std::string listener_, route_, upstream_;
  uint32_t thread_slots_;
  const std::atomic<int64_t>& threshold_ns_;
  // thread_slots_ + 1 entries; the last is the shared slot, written under shared_mu_.
  std::unique_ptr<std::atomic<ThreadRings*>[]> rings_;
  std::mutex shared_mu_;
};

class SlaRegistry {
public:
  explicit SlaRegistry(uint32_t thread_slots);
  ~SlaRegistry();
  SlaRegistry(const SlaRegistry&) = delete;
  SlaRegistry& operator=(const SlaRegistry&) = delete;

  // Idempotent and thread-safe (mutex): call when a route's stats are set up, never per
  // request. The series lives as long as the registry.
  SlaSeries& series(std::string_view listener, std::string_view route, std::string_view upstream);

  using Key = std::tuple<std::string, std::string, std::string>;  // listener, route, upstream
  // Main thread, at startup and on every reload: the objectives, and the routes of the running
  // policy (registered now, so they are reported before their first request). Series of routes
  // that left the policy are still reported while their 1h window holds requests.
  void configure(const sla::Objectives& objectives, const std::vector<Key>& current);

  // GET /admin/sla body at `now`.
  std::string reportJson(MonotonicTime now) const;

  // Registers the levee_sla_* gauge families on `store` (once); their callbacks read `time`.
  // The registry and `time` must outlive every render of `store`.
  void registerGauges(Store& store, const TimeSource& time);

  struct Row {
    const SlaSeries* series;
    std::array<sla::Summary, kSlaWindows> windows;
  };
  // The reported rows at `now`, in (listener, route, upstream) order, and the objectives.
  std::vector<Row> rows(MonotonicTime now, sla::Objectives* objectives = nullptr) const;

private:
  const uint32_t thread_slots_;
  std::atomic<int64_t> threshold_ns_{0};
  mutable std::mutex mu_;
  std::map<Key, std::unique_ptr<SlaSeries>> series_;
  std::set<Key> current_;
  sla::Objectives objectives_;
};

}  // namespace levee::stats
