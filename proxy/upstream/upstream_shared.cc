#include "proxy/upstream/upstream_shared.h"

#include <algorithm>
#include <random>

#include "proxy/common/logger.h"

namespace levee::upstream {
namespace {

common::CircuitBreakerParams breakerParams(const config::CircuitBreakerConfig& c) {
  common::CircuitBreakerParams p;
  p.consecutive_failures = c.consecutive_failures;
  p.failure_rate_threshold_percent = c.failure_rate_threshold_percent;
  p.failure_rate_minimum_requests = c.failure_rate_minimum_requests;
  p.failure_rate_window = c.failure_rate_window;
  p.slow_call_duration = c.slow_call_duration;
  p.slow_call_threshold_percent = c.slow_call_threshold_percent;
  p.open_for = c.open_for;
  p.max_open_for = c.max_open_for;
  p.half_open_permitted = c.half_open_permitted;
  p.half_open_successes_to_close = c.half_open_successes_to_close;
  p.half_open_max_wait = c.half_open_max_wait;
  p.shadow = c.shadow;
  return p;
}

common::OutlierParams outlierParams(const config::OutlierDetectionConfig& c) {
  common::OutlierParams p;
  p.consecutive_5xx = c.consecutive_failures;
  p.consecutive_local = c.consecutive_local_failures;
  p.interval = c.interval;
  p.failure_percentage = c.failure_percentage;
  p.minimum_requests = c.minimum_requests;
  p.base_ejection = c.base_ejection;
  p.max_ejection = c.max_ejection;
  p.max_ejection_percent = c.max_ejection_percent;
  return p;
}

}  // namespace

UpstreamShared::UpstreamShared(const config::Upstream& config, const TimeSource& time, stats::Store& store)
    : config_(config), store_(store) {
  const stats::Labels labels{{"upstream", config_.name}};
  if (config_.circuit_breaker.enabled) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    breaker_ = std::make_unique<common::CircuitBreaker>(
        breakerParams(config_.circuit_breaker), time, [rng] { return (*rng)(); },
        [this](common::CircuitBreaker::State from, common::CircuitBreaker::State to, std::string_view cause) {
          onTransition(from, to, cause);
        });
    rejected_ = &store_.counter("levee_circuit_breaker_rejected_total",
                                "Requests refused (mode enforce) or that would have been refused (shadow).",
                                {{"upstream", config_.name}, {"mode", "enforce"}});
    shadow_rejected_ = &store_.counter("levee_circuit_breaker_rejected_total",
                                       "Requests refused (mode enforce) or that would have been refused (shadow).",
                                       {{"upstream", config_.name}, {"mode", "shadow"}});
  }
  if (config_.outlier_detection.enabled) {
    outlier_ = std::make_unique<common::OutlierDetector>(outlierParams(config_.outlier_detection), time);
    ejections_ = &store_.counter("levee_outlier_ejections_total", "Endpoints ejected by outlier detection.", labels);
  }
}

bool UpstreamShared::sameResilience(const config::Upstream& other) const {
  return config_.circuit_breaker == other.circuit_breaker &&
         config_.outlier_detection == other.outlier_detection;
}

void UpstreamShared::setHealth(HostHealthSharedPtr h) {
  if (outlier_ && h) {
    outlier_->setEndpointCount(h->size());
  }
  std::atomic_store(&health_, std::move(h));
}

void UpstreamShared::onTransition(common::CircuitBreaker::State from, common::CircuitBreaker::State to,
                                  std::string_view cause) {
  LEVEE_LOG(Upstream, warn, "circuit breaker {}: {} -> {} ({})", config_.name, common::toString(from),
            common::toString(to), cause);
  store_
      .counter("levee_circuit_breaker_transitions_total", "Circuit breaker state transitions.",
               {{"upstream", config_.name}, {"to", std::string(common::toString(to))}})
      .inc();
}

bool UpstreamShared::isBreakerFailure(AttemptOutcome outcome, int status) const {
  const config::FailureOn& f = config_.circuit_breaker.failure_on;
  switch (outcome) {
    case AttemptOutcome::ConnectFailure:
      return f.connect_failure;
    case AttemptOutcome::Reset:
      return f.reset;
    case AttemptOutcome::Timeout:
      return f.timeout;
    case AttemptOutcome::Response:
      break;
  }
  if (status >= 500 && f.status_5xx) {
    return true;
  }
  return std::find(f.statuses.begin(), f.statuses.end(), status) != f.statuses.end();
}

void UpstreamShared::recordHostResult(const HostHealth& health, size_t index, AttemptOutcome outcome, int status) {
  if (!outlier_ || index >= outlier_->endpointCount()) {
    return;
  }
  common::OutlierDetector::Result r = common::OutlierDetector::Result::Success;
  if (outcome != AttemptOutcome::Response) {
    r = common::OutlierDetector::Result::LocalFailure;
  } else if (status >= 500) {
    r = common::OutlierDetector::Result::Status5xx;
  }
  outlier_->onResult(index, r);
  if (r != common::OutlierDetector::Result::Success) {
    syncEjections(health);
  }
}

void UpstreamShared::syncEjections(const HostHealth& health) {
  std::vector<bool> ej = outlier_->ejected();
  for (size_t i = 0; i < ej.size() && i < health.size(); ++i) {
    if (health.ejected(i) != ej[i]) {
      health.setEjected(i, ej[i]);
      LEVEE_LOG(Upstream, warn, "upstream {}: host {} {}", config_.name, health.hosts()->hosts[i]->address,
                ej[i] ? "ejected (outlier)" : "returned from ejection");
    }
  }
  // Count new ejections exactly once, whichever thread sees them first.
  uint64_t total = outlier_->ejectionsTotal();
  uint64_t prev = ejections_reported_.load();
  while (total > prev) {
    if (ejections_reported_.compare_exchange_weak(prev, total)) {
      ejections_->inc(total - prev);
      break;
    }
  }
}

void UpstreamShared::tick() {
  if (breaker_) {
    breaker_->tick();
  }
  if (outlier_) {
    outlier_->tick();
    if (HostHealthSharedPtr h = health()) {
      syncEjections(*h);
    }
  }
}

void UpstreamShared::countRejected(bool shadow) {
  stats::Counter* c = shadow ? shadow_rejected_ : rejected_;
  if (c != nullptr) {
    c->inc();
  }
}

void UpstreamShared::onHealthCheckPassed(size_t index) {
  if (outlier_ && index < outlier_->endpointCount()) {
    outlier_->onHealthCheckPassed(index);
    if (HostHealthSharedPtr h = health()) {
      syncEjections(*h);
    }
  }
}

}  // namespace levee::upstream
