#pragma once
// The degradation level every worker reads (DESIGN section 6), and the response counts the
// main thread's automatic degradation turns into a burn rate. Written by the main thread
// (DegradationController), read by workers with one relaxed load per request.

#include <atomic>
#include <cstdint>
#include <string_view>

#include "proxy/stats/store.h"

namespace levee::filters::degradation {

inline constexpr uint32_t kMaxLevel = 4;
// "normal", "shed_noncore", "read_only", "cached_static", "maintenance".
std::string_view levelName(uint32_t level);

class DegradationState {
public:
  explicit DegradationState(uint32_t thread_slots) : total_(thread_slots), errors_(thread_slots) {}
  DegradationState(const DegradationState&) = delete;
  DegradationState& operator=(const DegradationState&) = delete;

  uint32_t level() const noexcept { return level_.load(std::memory_order_relaxed); }
  void setLevel(uint32_t level) noexcept { level_.store(level, std::memory_order_relaxed); }

  // Burn-rate input, recorded at stream completion while automatic degradation watches it
  // (per-thread counter slots: no contention). Responses levee shed itself are not recorded,
  // or degradation would feed its own trigger.
  bool recording() const noexcept { return recording_.load(std::memory_order_relaxed); }
  void setRecording(bool on) noexcept { recording_.store(on, std::memory_order_relaxed); }
  void recordResponse(int status) noexcept {
    total_.inc();
    if (status >= 500) {
      errors_.inc();
    }
  }
  uint64_t responses() const { return total_.value(); }
  uint64_t errors() const { return errors_.value(); }

private:
  std::atomic<uint32_t> level_{0};
  std::atomic<bool> recording_{false};
  stats::Counter total_;
  stats::Counter errors_;
};

}  // namespace levee::filters::degradation
