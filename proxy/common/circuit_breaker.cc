#include "proxy/common/circuit_breaker.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "proxy/common/assert.h"

namespace levee::common {
namespace {

using std::chrono::milliseconds;

// Degenerate values that would make the state machine stick are lifted to the smallest sane
// value here, once, so the hot path needs no special cases (config validation should already
// have rejected them).
CircuitBreakerParams normalize(CircuitBreakerParams p) {
  p.half_open_permitted = std::max<uint32_t>(p.half_open_permitted, 1);
  p.half_open_successes_to_close = std::max<uint32_t>(p.half_open_successes_to_close, 1);
  if (p.half_open_max_wait <= milliseconds(0)) {
    p.half_open_max_wait = CircuitBreaker::kDefaultHalfOpenMaxWait;
  }
  p.open_for = std::max(p.open_for, milliseconds(0));
  p.max_open_for = std::max(p.max_open_for, p.open_for);
  p.jitter_percent = std::min<uint32_t>(p.jitter_percent, 100);
  p.failure_rate_minimum_requests = std::max<uint32_t>(p.failure_rate_minimum_requests, 1);
  return p;
}

bool slowTriggerEnabled(const CircuitBreakerParams& p) {
  return p.slow_call_duration > milliseconds(0) && p.slow_call_threshold_percent > 0;
}

uint32_t percentOf(uint64_t part, uint64_t total) {
  return total == 0 ? 0 : static_cast<uint32_t>(part * 100 / total);
}

}  // namespace

std::string_view toString(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::Closed:
      return "closed";
    case CircuitBreaker::State::Open:
      return "open";
    case CircuitBreaker::State::HalfOpen:
      return "half_open";
    case CircuitBreaker::State::ForcedOpen:
      return "forced_open";
    case CircuitBreaker::State::ForcedClosed:
      return "forced_closed";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(CircuitBreakerParams params, const TimeSource& time,
                               RandomFn random, TransitionCallback on_transition)
    : params_(normalize(params)),
      time_(time),
      random_(std::move(random)),
      on_transition_(std::move(on_transition)),
      window_(params_.failure_rate_window, params_.window_buckets),
      open_for_(params_.open_for) {
  probes_.reserve(params_.half_open_permitted);
}

CircuitBreaker::Admission CircuitBreaker::admit() {
  const MonotonicTime now = time_.monotonicTime();
  Pending pending;
  Admission admission;
  {
    std::lock_guard lock(mu_);
    expireLocked(now, pending);
    admission.generation = generation_;
    bool refuse = false;
    switch (state_) {
      case State::Closed:
      case State::ForcedClosed:
        break;
      case State::Open:
      case State::ForcedOpen:
        refuse = true;
        break;
      case State::HalfOpen:
        if (probes_.size() < params_.half_open_permitted) {
          admission.probe = true;
          admission.ticket = next_ticket_++;
          probes_.push_back(Probe{admission.ticket, now + params_.half_open_max_wait});
        } else {
          refuse = true;
        }
        break;
    }
    if (!refuse) {
      admission.allowed = true;
    } else if (params_.shadow) {
      admission.allowed = true;
      admission.would_block = true;
      ++would_block_total_;
    } else {
      ++rejected_total_;
    }
  }
  notify(pending);
  return admission;
}

void CircuitBreaker::onResult(const Admission& admission, bool failure, milliseconds duration) {
  if (!admission.allowed) {
    return;
  }
  const bool slow =
      params_.slow_call_duration > milliseconds(0) && duration >= params_.slow_call_duration;
  const MonotonicTime now = time_.monotonicTime();
  Pending pending;
  {
    std::lock_guard lock(mu_);
    // A probe finishing after its deadline has already timed out: expire first, so its result
    // lands in a new generation and is ignored.
    expireLocked(now, pending);
    if (admission.generation == generation_) {
      switch (state_) {
        case State::Closed:
          onClosedResultLocked(failure, slow, now, pending);
          break;
        case State::ForcedClosed:
          // Keep the metrics visible to operators, but never trip.
          window_.record(now, failure, slow);
          consecutive_failures_ = failure ? consecutive_failures_ + 1 : 0;
          break;
        case State::HalfOpen:
          if (admission.probe) {
            // With the slow-call trigger on, a slow probe is a failed probe: closing on slow
            // successes would re-trip at once and flap.
            const bool failed = failure || (slow && slowTriggerEnabled(params_));
            onProbeResultLocked(admission.ticket, failed, now, pending);
          }
          break;
        case State::Open:
        case State::ForcedOpen:
          break;  // shadow-mode would-block admissions: nothing to learn
      }
    }
  }
  notify(pending);
}

void CircuitBreaker::tick() {
  const MonotonicTime now = time_.monotonicTime();
  Pending pending;
  {
    std::lock_guard lock(mu_);
    expireLocked(now, pending);
  }
  notify(pending);
}

void CircuitBreaker::forceOpen() {
  Pending pending;
  {
    std::lock_guard lock(mu_);
    if (state_ != State::ForcedOpen) {
      transitionLocked(State::ForcedOpen, "forced_open", pending);
    }
  }
  notify(pending);
}

void CircuitBreaker::forceClose() {
  Pending pending;
  {
    std::lock_guard lock(mu_);
    if (state_ != State::ForcedClosed) {
      transitionLocked(State::ForcedClosed, "forced_close", pending);
    }
  }
  notify(pending);
}

void CircuitBreaker::reset() {
  Pending pending;
  {
    std::lock_guard lock(mu_);
    if (state_ != State::Closed) {
      transitionLocked(State::Closed, "reset", pending);
    } else {
      // Already closed: no transition to report, but the counters still start over.
      ++generation_;
      consecutive_failures_ = 0;
      window_.reset();
    }
    open_for_ = params_.open_for;
  }
  notify(pending);
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

CircuitBreaker::Snapshot CircuitBreaker::snapshot() const {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  Snapshot s;
  s.state = state_;
  s.forced = state_ == State::ForcedOpen || state_ == State::ForcedClosed;
  s.shadow = params_.shadow;
  s.consecutive_failures = consecutive_failures_;
  s.window = window_.totals(now);
  s.failure_rate_percent = percentOf(s.window.failures, s.window.total);
  s.slow_call_rate_percent = percentOf(s.window.slow, s.window.total);
  s.probes_in_flight = static_cast<uint32_t>(probes_.size());
  s.probe_successes = probe_successes_;
  s.open_for = open_for_;
  if (state_ == State::Open && open_until_ > now) {
    s.time_until_half_open = std::chrono::ceil<milliseconds>(open_until_ - now);
  }
  s.rejected_total = rejected_total_;
  s.would_block_total = would_block_total_;
  s.transitions_total = transitions_total_;
  s.opened_total = opened_total_;
  return s;
}

void CircuitBreaker::transitionLocked(State to, std::string_view cause, Pending& pending) {
  LEVEE_ASSERT(pending.count < std::size(pending.items), "too many transitions in one call");
  const State from = state_;
  state_ = to;
  // A new era: results of admissions made before this point no longer count.
  ++generation_;
  ++transitions_total_;
  consecutive_failures_ = 0;
  window_.reset();
  probes_.clear();
  probe_successes_ = 0;
  if (to == State::Closed) {
    open_for_ = params_.open_for;
  }
  if (pending.count < std::size(pending.items)) {
    pending.items[pending.count++] = Transition{from, to, cause};
  }
}

void CircuitBreaker::openLocked(std::string_view cause, MonotonicTime now, Pending& pending) {
  if (state_ == State::HalfOpen) {
    // A consecutive re-open: back off exponentially, capped (before jitter).
    open_for_ = std::min(open_for_ * 2, params_.max_open_for);
  }
  transitionLocked(State::Open, cause, pending);
  open_until_ = now + jitteredLocked(open_for_);
  ++opened_total_;
}

void CircuitBreaker::expireLocked(MonotonicTime now, Pending& pending) {
  if (state_ == State::Open && now >= open_until_) {
    transitionLocked(State::HalfOpen, "open_timeout", pending);
    return;
  }
  if (state_ == State::HalfOpen) {
    // resilience4j#903: a probe that never reports must not hold the breaker half-open forever.
    const bool expired = std::any_of(probes_.begin(), probes_.end(),
                                     [now](const Probe& p) { return now >= p.deadline; });
    if (expired) {
      openLocked("probe_timeout", now, pending);
    }
  }
}

void CircuitBreaker::onClosedResultLocked(bool failure, bool slow, MonotonicTime now,
                                          Pending& pending) {
  window_.record(now, failure, slow);
  consecutive_failures_ = failure ? consecutive_failures_ + 1 : 0;
  if (params_.consecutive_failures > 0 && consecutive_failures_ >= params_.consecutive_failures) {
    openLocked("consecutive_failures", now, pending);
    return;
  }
  const bool rate_on = params_.failure_rate_threshold_percent > 0;
  const bool slow_on = slowTriggerEnabled(params_);
  if (!rate_on && !slow_on) {
    return;
  }
  const WindowTotals t = window_.totals(now);
  if (t.total < params_.failure_rate_minimum_requests) {
    return;
  }
  // Compare without division: failures / total >= threshold / 100.
  if (rate_on && t.failures * 100 >= uint64_t{params_.failure_rate_threshold_percent} * t.total) {
    openLocked("failure_rate", now, pending);
  } else if (slow_on && t.slow * 100 >= uint64_t{params_.slow_call_threshold_percent} * t.total) {
    openLocked("slow_call_rate", now, pending);
  }
}

void CircuitBreaker::onProbeResultLocked(uint64_t ticket, bool failed, MonotonicTime now,
                                         Pending& pending) {
  const auto it = std::find_if(probes_.begin(), probes_.end(),
                               [ticket](const Probe& p) { return p.ticket == ticket; });
  if (it == probes_.end()) {
    return;  // unknown or already expired ticket
  }
  probes_.erase(it);
  if (failed) {
    openLocked("probe_failed", now, pending);
    return;
  }
  if (++probe_successes_ >= params_.half_open_successes_to_close) {
    transitionLocked(State::Closed, "probes_succeeded", pending);
  }
}

milliseconds CircuitBreaker::jitteredLocked(milliseconds d) {
  const int64_t range = d.count() * params_.jitter_percent / 100;
  if (range <= 0 || !random_) {
    return d;
  }
  const auto span = static_cast<uint64_t>(2 * range + 1);
  const auto offset = static_cast<int64_t>(random_() % span) - range;
  return d + milliseconds(offset);
}

void CircuitBreaker::notify(const Pending& pending) const {
  if (!on_transition_) {
    return;
  }
  for (uint32_t i = 0; i < pending.count; ++i) {
    on_transition_(pending.items[i].from, pending.items[i].to, pending.items[i].cause);
  }
}

}  // namespace levee::common
