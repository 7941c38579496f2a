#pragma once
// Owns the degradation level on the main thread (DESIGN sections 6 and 7): the policy's level,
// an operator's level set through the admin API (with an optional TTL after which the previous
// one returns, kept across restarts in `degradation.state_file`), and the automatic level
// (`degradation.auto`). Effective level: the operator's when one is set, else the higher of the
// policy's and the automatic one. Published to workers through DegradationState.

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/policy.h"
#include "filters/degradation/degradation_state.h"
#include "proxy/common/time_source.h"
#include "proxy/event/dispatcher.h"

namespace levee::filters::degradation {

class DegradationController {
public:
  DegradationController(event::Dispatcher& main, DegradationState& state, const TimeSource& time);
  ~DegradationController();

  // On load and on every reload.
  void configure(const config::DegradationConfig& config);
  // Startup only (before the workers serve): reads `state_file` if it exists. A file that cannot
  // be read or parsed is reported and ignored (the policy's level applies).
  void restoreFromStateFile();

  // GET /admin/degradation.
  std::string json() const;
  // PUT /admin/degradation with {"level":N,"reason":"...","ttl":"30m"}: 200 and the new state,
  // or 400 and {"error":...}. `audit` gets "level A -> B (reason)".
  int put(std::string_view body, std::string& out, std::string& audit);
  // DELETE /admin/degradation: drops the operator's level (back to policy/automatic).
  int clear(std::string& out, std::string& audit);
  // Every second on the main loop: TTL expiry and the automatic level.
  // `open_breaker_percent`: share of upstreams with a breaker whose breaker is open.
  void tick(double open_breaker_percent);

  uint32_t effective() const { return effective_; }
  uint32_t automaticLevel() const { return auto_level_; }

private:
  struct OperatorLevel {
    uint32_t level{0};
    std::string reason;
    SystemTime set_at;
    std::optional<SystemTime> expires_at;
    std::string source;  // "admin" | "state_file"
  };
  void apply(std::string_view why);
  void persist();
  void writeNext();
  void autoStep(double open_breaker_percent);
  std::string stateJson() const;

  event::Dispatcher& main_;
  DegradationState& state_;
  const TimeSource& time_;
  config::DegradationConfig config_;
  std::optional<OperatorLevel> operator_;
  std::optional<OperatorLevel> previous_;  // restored when operator_'s TTL ends
  uint32_t auto_level_{0};
  MonotonicTime auto_changed_{};
  double last_burn_rate_{0};
  struct Sample {
    MonotonicTime at;
    uint64_t responses;
    uint64_t errors;
  };
  std::deque<Sample> samples_;  // one per tick, bounded by the burn-rate window
  uint32_t effective_{0};
  // State file writes run off the loop, one at a time; a change while one runs is written next.
  bool writing_{false};
  bool dirty_{false};
  std::shared_ptr<bool> alive_;  // guards the write completions against our destruction
};

}  // namespace levee::filters::degradation
