#pragma once
// Injected time: production uses the real clocks, tests a SimulatedTimeSource they advance.

#include <chrono>

namespace levee {

using MonotonicTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;

class TimeSource {
public:
  virtual ~TimeSource() = default;
  virtual MonotonicTime monotonicTime() const = 0;
  virtual SystemTime systemTime() const = 0;
};

class RealTimeSource final : public TimeSource {
public:
  MonotonicTime monotonicTime() const override { return std::chrono::steady_clock::now(); }
  SystemTime systemTime() const override { return std::chrono::system_clock::now(); }
};

class SimulatedTimeSource final : public TimeSource {
public:
  MonotonicTime monotonicTime() const override { return mono_; }
  SystemTime systemTime() const override { return sys_; }
  void advance(std::chrono::nanoseconds d) {
    mono_ += d;
    sys_ += std::chrono::duration_cast<SystemTime::duration>(d);
  }

private:
  MonotonicTime mono_{std::chrono::seconds(1000)};
  SystemTime sys_{std::chrono::seconds(1700000000)};
};

}  // namespace levee
