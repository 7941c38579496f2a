#pragma once
// The faults that may apply to a request: a route's policy `fault` and the run-time experiments
// of /admin/faults (DESIGN sections 5 and 7). The typed `fault` block and the experiment body are
// parsed in config/ (config/loader_fault.cc); this is their immutable, compiled form and the
// registry of experiments shared by all workers.
//
// Threads: FaultRegistry is mutated on the main thread only (admin handlers, the expiry tick).
// Workers read it through a FaultView: one atomic load per request; only when the version
// changed do they copy the published shared_ptr<const ActiveFaults> (under a short mutex that
// the main thread holds only to swap the pointer).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/fault_experiment.h"
#include "config/policy.h"
#include "proxy/common/time_source.h"

namespace levee::http {
struct RequestHead;
}

namespace levee::filters::fault {

// One source of faults: an experiment (id set) or, with an empty id, a route's policy block.
struct FaultRule {
  std::string id;
  std::string route;     // empty: any route
  std::string upstream;  // empty: any upstream
  std::vector<config::HeaderMatch> headers;
  config::FaultConfig fault;
  MonotonicTime expires_at{};
  SystemTime created_at{};
  SystemTime expires_at_system{};

  bool matches(std::string_view route_name, std::string_view upstream_name,
               const http::RequestHead& head) const;
};

// The experiments running at one moment, oldest first. Immutable once published.
struct ActiveFaults {
  uint64_t version{0};
  std::vector<FaultRule> rules;
};
using ActiveFaultsConstSharedPtr = std::shared_ptr<const ActiveFaults>;

class FaultRegistry {
public:
  explicit FaultRegistry(const TimeSource& time);

  // Main thread. Starts an experiment; false (and `error`) when `max_active` already run.
  bool add(const config::FaultExperimentSpec& spec, uint32_t max_active, FaultRule& added,
           std::string& error);
  // Main thread. False when no experiment has this id; else `removed` is the experiment.
  bool remove(std::string_view id, FaultRule* removed = nullptr);
  // Main thread. The kill switch: removes every experiment; returns how many ran.
  size_t clear();
  // Main thread. Removes experiments whose TTL passed; returns their ids.
  std::vector<std::string> expire();
  // Main thread. {"faults":[...],"active":N}
  std::string toJson() const;
  static void ruleToJson(std::string& out, const FaultRule& rule, MonotonicTime now);
  MonotonicTime now() const { return time_.monotonicTime(); }

  // Any thread.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  ActiveFaultsConstSharedPtr current() const;

private:
  void publish(std::vector<FaultRule> rules);

  const TimeSource& time_;
  uint64_t next_id_{1};
  ActiveFaultsConstSharedPtr rules_;  // main thread's view (== published_)
  mutable std::mutex mu_;             // guards published_ (pointer swap/copy only)
  ActiveFaultsConstSharedPtr published_;
  std::atomic<uint64_t> version_{0};
};
using FaultRegistrySharedPtr = std::shared_ptr<FaultRegistry>;

// A worker's cached view of the registry (worker thread only).
class FaultView {
public:
  explicit FaultView(const FaultRegistry* registry) : registry_(registry) {}
  // The active experiments (empty when no registry). Cheap when nothing changed.
  const ActiveFaults& current();

private:
  const FaultRegistry* registry_;
  uint64_t seen_{UINT64_MAX};
  ActiveFaultsConstSharedPtr cached_;
};

}  // namespace levee::filters::fault
