#pragma once
// A lock for the few-dozen-instruction critical sections that every request takes (rate-limit
// buckets, circuit breaker, outlier detector, retry budget). Uncontended, lock + unlock is one
// atomic exchange and one store, against about 70 instructions for a pthread mutex pair; the
// per-request cost of the resilience features is bounded by a throughput bar (bench/).
// Test-and-test-and-set; after a short spin it yields the CPU, so a holder preempted inside its
// section (2 vCPUs, more worker threads than cores) is not starved by spinners. Never hold it
// across I/O, allocation-heavy work or callbacks. Satisfies Lockable (std::lock_guard works).

#include <atomic>
#include <thread>

namespace levee::common {

class SpinLock {
public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) {
        return;
      }
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins >= kSpinsBeforeYield) {
          std::this_thread::yield();
          spins = 0;
        } else {
          pause();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  static constexpr unsigned kSpinsBeforeYield = 64;
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  std::atomic<bool> locked_{false};
};

}  // namespace levee::common
