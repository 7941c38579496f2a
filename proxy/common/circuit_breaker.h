#pragma once
// The per-upstream circuit breaker state machine (issue "upstream resilience"). Pure: no I/O,
// no timers of its own. Time comes from an injected TimeSource, jitter from an injected random
// source. One instance is shared by all worker threads; it is synchronized internally by one
// mutex held only for a few field updates (the transition callback runs after it is released).

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>
#include <vector>

#include "proxy/common/sliding_window.h"
#include "proxy/common/spin_lock.h"
#include "proxy/common/time_source.h"

namespace levee::common {

// Mirrors config::CircuitBreakerConfig (proxy/common stays below config). 0 disables a trigger.
struct CircuitBreakerParams {
  uint32_t consecutive_failures{0};
  uint32_t failure_rate_threshold_percent{0};
  uint32_t failure_rate_minimum_requests{20};  // also the minimum for the slow-call trigger
  std::chrono::milliseconds failure_rate_window{10000};
  std::chrono::milliseconds slow_call_duration{0};
  uint32_t slow_call_threshold_percent{0};
  std::chrono::milliseconds open_for{30000};
  std::chrono::milliseconds max_open_for{300000};  // below open_for: open_for never grows
  uint32_t half_open_permitted{3};                 // concurrent probes; 0 is treated as 1
  uint32_t half_open_successes_to_close{2};        // 0 is treated as 1
  std::chrono::milliseconds half_open_max_wait{10000};  // 0: kDefaultHalfOpenMaxWait
  bool shadow{false};
  uint32_t jitter_percent{10};  // open duration +/- this percent (capped at 100)
  uint32_t window_buckets{10};  // resolution of failure_rate_window (not in the policy)
};

class CircuitBreaker {
public:
  // Forced* are operator overrides (admin); they are left only by reset() or the other force.
  enum class State { Closed, Open, HalfOpen, ForcedOpen, ForcedClosed };

  using RandomFn = std::function<uint64_t()>;
  // Invoked after the mutex is released, exactly once per transition, on the thread that caused
  // it. Transitions caused concurrently on two threads may be reported in either order.
  using TransitionCallback = std::function<void(State from, State to, std::string_view cause)>;

  static constexpr std::chrono::milliseconds kDefaultHalfOpenMaxWait{10000};

  struct Admission {
    bool allowed{false};      // send the request (always true in shadow mode)
    bool probe{false};        // a half-open probe; its result decides the state
    uint64_t ticket{0};       // identifies the probe; 0 when not a probe
    bool would_block{false};  // shadow mode: the breaker would have refused this request
    uint64_t generation{0};   // state era the admission belongs to; stale results are ignored
  };

  struct Snapshot {
    State state{State::Closed};
    bool forced{false};
    bool shadow{false};
    uint32_t consecutive_failures{0};
    WindowTotals window;
    uint32_t failure_rate_percent{0};    // floor(failures * 100 / total); 0 when empty
    uint32_t slow_call_rate_percent{0};  // floor(slow * 100 / total); 0 when empty
    uint32_t probes_in_flight{0};
    uint32_t probe_successes{0};
    std::chrono::milliseconds open_for{0};               // current un-jittered open duration
    std::chrono::milliseconds time_until_half_open{0};   // Open only; else 0
    uint64_t rejected_total{0};     // admissions refused (never in shadow mode)
    uint64_t would_block_total{0};  // shadow mode: admissions that would have been refused
    uint64_t transitions_total{0};
    uint64_t opened_total{0};       // transitions into Open (trips and re-opens)
  };

  // `random` is only ever invoked under the breaker's mutex, so it needs no synchronization of
  // its own; it must not block or call back into the breaker. `time` must outlive the breaker.
  CircuitBreaker(CircuitBreakerParams params, const TimeSource& time, RandomFn random,
                 TransitionCallback on_transition = {});

  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to send one request. Every admission with allowed == true must be followed by exactly
  // one onResult() (or be abandoned: an abandoned probe times out after half_open_max_wait).
  Admission admit();

  // Reports how an admitted request ended. Results for refused admissions, for admissions made
  // in another state era, or for probes that already timed out are ignored.
  void onResult(const Admission& admission, bool failure, std::chrono::milliseconds duration);

  // Periodic housekeeping: Open -> HalfOpen when open_for elapsed, and probes older than
  // half_open_max_wait count as failures (re-open). admit() performs the same checks lazily.
  void tick();

  void forceOpen();   // cause "forced_open"
  void forceClose();  // cause "forced_close"
  void reset();       // back to Closed, counters cleared, open_for back to base; cause "reset"

  State state() const;
  Snapshot snapshot() const;

private:
  struct Probe {
    uint64_t ticket;
    MonotonicTime deadline;
  };
  struct Transition {
    State from;
    State to;
    std::string_view cause;
  };
  // Transitions collected under the lock, reported after it is released.
  struct Pending {
    Transition items[2];
    uint32_t count{0};
  };

  void transitionLocked(State to, std::string_view cause, Pending& pending);
  void openLocked(std::string_view cause, MonotonicTime now, Pending& pending);
  // Open -> HalfOpen on timeout, HalfOpen -> Open on an expired probe.
  void expireLocked(MonotonicTime now, Pending& pending);
  void onClosedResultLocked(bool failure, bool slow, MonotonicTime now, Pending& pending);
  void onProbeResultLocked(uint64_t ticket, bool failure, MonotonicTime now, Pending& pending);
  std::chrono::milliseconds jitteredLocked(std::chrono::milliseconds d);
  void notify(const Pending& pending) const;

  const CircuitBreakerParams params_;
  const TimeSource& time_;
  RandomFn random_;
  const TransitionCallback on_transition_;

  mutable SpinLock mu_;
  State state_{State::Closed};
  uint64_t generation_{1};
  uint32_t consecutive_failures_{0};
  SlidingWindow window_;
  std::chrono::milliseconds open_for_;  // current, before jitter
  MonotonicTime open_until_{};
  std::vector<Probe> probes_;  // capacity half_open_permitted, reserved once
  uint32_t probe_successes_{0};
  uint64_t next_ticket_{1};
  uint64_t rejected_total_{0};
  uint64_t would_block_total_{0};
  uint64_t transitions_total_{0};
  uint64_t opened_total_{0};
};

std::string_view toString(CircuitBreaker::State state);

}  // namespace levee::common
