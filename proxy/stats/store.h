#pragma once
// The metrics store (DESIGN section 9, STYLE B.9): counters, gauges and histograms with
// per-thread storage, summed on scrape and rendered in Prometheus text format 0.0.4.
//
// Hot path: every metric holds one cache-line-aligned slot per thread (main thread = slot 0,
// worker i = slot i). A thread only ever writes its own slot, so an increment is a relaxed load
// plus a relaxed store on a line no other thread writes: no lock, no lookup, no RMW.
// Readers (the scrape) sum all slots with relaxed loads.
//
// A thread whose slot is >= the Store's slot count (or that called
// setThreadSlot(kSharedThreadSlot)) falls back to one extra shared slot updated with atomic
// read-modify-write operations: always correct, just slower. Two threads must never share a
// regular slot; threads that do not own a slot (libuv work pool, helpers) must use
// kSharedThreadSlot.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace levee::stats {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A slot id that always selects the shared (atomic RMW) slot of every metric.
inline constexpr uint32_t kSharedThreadSlot = UINT32_MAX;

// Sets this thread's slot. Call once at thread start: 0 for the main thread, i for worker i.
void setThreadSlot(uint32_t slot);
// This thread's slot (0 unless setThreadSlot() was called).
uint32_t threadSlot();

namespace detail {

// Constant-initialized, so reads compile to a plain TLS access (no TLS wrapper call).
extern constinit thread_local uint32_t tls_thread_slot;

inline constexpr size_t kCacheLine = 64;

struct alignas(kCacheLine) U64Slot {
  std::atomic<uint64_t> v{0};
};
struct alignas(kCacheLine) I64Slot {
  std::atomic<int64_t> v{0};
};
// One cache line of words; histograms use a run of these per slot.
struct alignas(kCacheLine) Line {
  static constexpr size_t kWords = kCacheLine / sizeof(uint64_t);
  std::atomic<uint64_t> w[kWords];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int64_t>::is_always_lock_free);
static_assert(sizeof(U64Slot) == kCacheLine && sizeof(I64Slot) == kCacheLine &&
              sizeof(Line) == kCacheLine);

}  // namespace detail

enum class MetricType : uint8_t { Counter, Gauge, Histogram, GaugeCallback };

class Counter {
public:
  // `thread_slots` regular slots plus the shared one.
  explicit Counter(uint32_t thread_slots);
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void inc(uint64_t n = 1) noexcept {
    const uint32_t slot = detail::tls_thread_slot;
    if (slot < thread_slots_) [[likely]] {
      std::atomic<uint64_t>& s = slots_[slot].v;  // single writer: this thread
      s.store(s.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      slots_[thread_slots_].v.fetch_add(n, std::memory_order_relaxed);
    }
  }
  // Sum over all slots (relaxed; exact once writers are quiescent).
  uint64_t value() const;

private:
  std::unique_ptr<detail::U64Slot[]> slots_;
  uint32_t thread_slots_;
};

class Gauge {
public:
  explicit Gauge(uint32_t thread_slots);
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  // Per-thread deltas, summed on scrape: a connection may be added on one thread and removed on
  // another; only the total is meaningful.
  void add(int64_t v) noexcept { addDelta(v); }
  void sub(int64_t v) noexcept { addDelta(-v); }
  // Sets the shared base value. For single-owner gauges that do not use add()/sub(); the value
  // is base + sum of deltas.
  void set(int64_t v) noexcept { base_.store(v, std::memory_order_relaxed); }
  int64_t value() const;

private:
  void addDelta(int64_t v) noexcept {
    const uint32_t slot = detail::tls_thread_slot;
    if (slot < thread_slots_) [[likely]] {
      std::atomic<int64_t>& s = slots_[slot].v;
      // Unsigned arithmetic: wrap-around of the per-slot delta is well defined; the sum over
      // all slots is exact.
      s.store(static_cast<int64_t>(static_cast<uint64_t>(s.load(std::memory_order_relaxed)) +
                                   static_cast<uint64_t>(v)),
              std::memory_order_relaxed);
    } else {
      slots_[thread_slots_].v.fetch_add(v, std::memory_order_relaxed);
    }
  }

  alignas(detail::kCacheLine) std::atomic<int64_t> base_{0};
  std::unique_ptr<detail::I64Slot[]> slots_;
  uint32_t thread_slots_;
};

class Histogram {
public:
  // `bounds`: finite, strictly increasing upper bounds (a trailing +Inf is dropped; +Inf is
  // always implied). Aborts on an invalid layout (a programming error).
  Histogram(uint32_t thread_slots, std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `seconds` in the first bucket with seconds <= bound (Prometheus `le`). NaN is ignored.
  void record(double seconds) noexcept;

  struct Snapshot {
    std::vector<double> bounds;       // without +Inf
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries, the last one is +Inf
    uint64_t count{0};                 // == cumulative.back(), so _count and +Inf always agree
    double sum{0};
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

private:
  std::atomic<uint64_t>& word(uint32_t slot, size_t i) const {
    return lines_[slot * lines_per_slot_ + i / detail::Line::kWords].w[i % detail::Line::kWords];
  }

  // Per slot: words [0, bounds+1) are non-cumulative bucket counts (last = +Inf), then the sum
  // as the bits of a double. The count is the total of the buckets.
  std::vector<double> bounds_;
  size_t sum_word_;
  size_t lines_per_slot_;
  std::unique_ptr<detail::Line[]> lines_;
  uint32_t thread_slots_;
};

class Store {
public:
  explicit Store(uint32_t thread_slots);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  uint32_t threadSlots() const { return thread_slots_; }

  // Idempotent: the same family + labels (in any order) returns the same object, whose address is
  // stable for the Store's lifetime. Thread-safe (mutex): call while config is built or lazily on
  // first use, never per request. Aborts on programming errors: an invalid family or label name,
  // a family reused with another type, a counter family not ending in `_total`, a histogram label
  // named `le`, a histogram series asked for again with different buckets.
  Counter& counter(std::string_view family, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view family, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view family, std::string_view help,
                       const std::vector<double>& buckets, const Labels& labels = {});

  // Scrape-time gauges: the callback appends (labels, value) samples. Registered once per family
  // (a second registration, or a family already used by another metric, aborts). Called from the
  // thread that renders, without the store lock held.
  using GaugeCallback = std::function<void(std::vector<std::pair<Labels, double>>& out)>;
  void gaugeCallback(std::string_view family, std::string_view help, GaugeCallback cb);

  // Text format 0.0.4: families sorted by name, series in creation order. Families without
  // samples are omitted.
  std::string renderPrometheus() const;

  struct Family;  // internal

private:
  Family& familyLocked(std::string_view name, std::string_view help, MetricType type);

  const uint32_t thread_slots_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

}  // namespace levee::stats
