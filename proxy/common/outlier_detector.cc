#include "proxy/common/outlier_detector.h"

#include <algorithm>
#include <limits>

namespace levee::common {
namespace {

using std::chrono::milliseconds;

OutlierParams normalize(OutlierParams p) {
  p.max_ejection_percent = std::min<uint32_t>(p.max_ejection_percent, 100);
  p.base_ejection = std::max(p.base_ejection, milliseconds(0));
  p.max_ejection = std::max(p.max_ejection, p.base_ejection);
  p.interval = std::max(p.interval, milliseconds(0));
  return p;
}

}  // namespace

OutlierDetector::OutlierDetector(OutlierParams params, const TimeSource& time,
                                 size_t endpoint_count)
    : params_(normalize(params)),
      time_(time),
      endpoints_(endpoint_count),
      interval_start_(time.monotonicTime()) {}

void OutlierDetector::setEndpointCount(size_t n) {
  std::lock_guard lock(mu_);
  endpoints_.resize(n);
  ejected_count_ = static_cast<size_t>(
      std::count_if(endpoints_.begin(), endpoints_.end(), [](const EndpointState& e) {
        return e.ejected;
      }));
}

size_t OutlierDetector::endpointCount() const {
  std::lock_guard lock(mu_);
  return endpoints_.size();
}

void OutlierDetector::onResult(size_t endpoint, Result result) {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  expireLocked(now);
  if (endpoint >= endpoints_.size() || endpoints_[endpoint].ejected) {
    return;
  }
  EndpointState& e = endpoints_[endpoint];
  ++e.interval_total;
  switch (result) {
    case Result::Success:
      e.consecutive_5xx = 0;
      e.consecutive_local = 0;
      return;
    case Result::Status5xx:
      ++e.interval_failures;
      ++e.consecutive_5xx;
      if (params_.consecutive_5xx > 0 && e.consecutive_5xx >= params_.consecutive_5xx) {
        tryEjectLocked(endpoint, Cause::Consecutive5xx, now);
      }
      return;
    case Result::LocalFailure:
      ++e.interval_failures;
      ++e.consecutive_local;
      if (params_.consecutive_local > 0 && e.consecutive_local >= params_.consecutive_local) {
        tryEjectLocked(endpoint, Cause::ConsecutiveLocal, now);
      }
      return;
  }
}

void OutlierDetector::tick() {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  expireLocked(now);
  if (now - interval_start_ < params_.interval) {
    return;
  }
  interval_start_ = now;
  if (params_.failure_percentage > 0) {
    // Index order, so which endpoints go first when max_ejection_percent limits is deterministic.
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const EndpointState& e = endpoints_[i];
      if (e.ejected || e.interval_total == 0 ||
          e.interval_total < params_.minimum_requests) {
        continue;
      }
      if (e.interval_failures * 100 >= uint64_t{params_.failure_percentage} * e.interval_total) {
        tryEjectLocked(i, Cause::FailurePercentage, now);
      }
    }
  }
  for (EndpointState& e : endpoints_) {
    e.interval_total = 0;
    e.interval_failures = 0;
  }
}

bool OutlierDetector::isEjected(size_t endpoint) {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  expireLocked(now);
  return endpoint < endpoints_.size() && endpoints_[endpoint].ejected;
}

std::vector<bool> OutlierDetector::ejected() {
  const MonotonicTime now = time_.monotonicTime();
  std::lock_guard lock(mu_);
  expireLocked(now);
  std::vector<bool> out(endpoints_.size());
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    out[i] = endpoints_[i].ejected;
  }
  return out;
}

void OutlierDetector::onHealthCheckPassed(size_t endpoint) {
  std::lock_guard lock(mu_);
  if (endpoint < endpoints_.size() && endpoints_[endpoint].ejected) {
    unejectLocked(endpoints_[endpoint]);
  }
}

uint64_t OutlierDetector::ejectionsTotal() const {
  std::lock_guard lock(mu_);
  return stats_.ejections_total;
}

uint64_t OutlierDetector::ejectionCount(size_t endpoint) const {
  std::lock_guard lock(mu_);
  return endpoint < endpoints_.size() ? endpoints_[endpoint].ejection_count : 0;
}

OutlierDetector::Stats OutlierDetector::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void OutlierDetector::expireLocked(MonotonicTime now) {
  if (ejected_count_ == 0) {
    return;
  }
  for (EndpointState& e : endpoints_) {
    if (e.ejected && now >= e.ejected_until) {
      unejectLocked(e);
    }
  }
}

size_t OutlierDetector::maxEjectedLocked() const {
  // floor(total * percent / 100), always honoured (envoy#3263): with 1 endpoint and 50%, none.
  return endpoints_.size() * params_.max_ejection_percent / 100;
}

bool OutlierDetector::tryEjectLocked(size_t endpoint, Cause cause, MonotonicTime now) {
  if (ejected_count_ + 1 > maxEjectedLocked()) {
    // Counters are kept, so the next failure tries again once capacity frees up.
    ++stats_.ejections_overflow;
    return false;
  }
  EndpointState& e = endpoints_[endpoint];
  ++e.ejection_count;
  // base x ejections, capped; compared before multiplying so a large count cannot overflow.
  const int64_t base = params_.base_ejection.count();
  const int64_t cap = params_.max_ejection.count();
  const auto count = static_cast<int64_t>(
      std::min<uint64_t>(e.ejection_count, std::numeric_limits<int64_t>::max()));
  const int64_t ms = base == 0 ? 0 : (count > cap / base ? cap : base * count);
  e.ejected = true;
  e.ejected_until = now + milliseconds(ms);
  e.consecutive_5xx = 0;
  e.consecutive_local = 0;
  e.interval_total = 0;
  e.interval_failures = 0;
  ++ejected_count_;
  ++stats_.ejections_total;
  switch (cause) {
    case Cause::Consecutive5xx:
      ++stats_.ejections_consecutive_5xx;
      break;
    case Cause::ConsecutiveLocal:
      ++stats_.ejections_consecutive_local;
      break;
    case Cause::FailurePercentage:
      ++stats_.ejections_failure_percentage;
      break;
  }
  return true;
}

void OutlierDetector::unejectLocked(EndpointState& e) {
  e.ejected = false;
  e.consecutive_5xx = 0;
  e.consecutive_local = 0;
  e.interval_total = 0;
  e.interval_failures = 0;
  --ejected_count_;
}

}  // namespace levee::common
