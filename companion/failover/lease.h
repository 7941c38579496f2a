#pragma once
// The leader lease: only the levee holding it may promote (two sidecars watching the same
// cluster must never both promote). Backends: `none` (a single levee: always held). The
// interface leaves room for etcd and Kubernetes Lease objects, which renew asynchronously on
// the main loop and answer held() from their last renewal.

#include <memory>
#include <string_view>

#include "config/policy.h"

namespace levee::companion::failover {

class LeaderLease {
public:
  virtual ~LeaderLease() = default;
  virtual std::string_view backend() const = 0;
  // Main loop: true while this instance holds the lease (checked right before promoting).
  virtual bool held() const = 0;
};

class NoLease final : public LeaderLease {
public:
  std::string_view backend() const override { return "none"; }
  bool held() const override { return true; }
};

std::unique_ptr<LeaderLease> makeLease(const config::PostgresFailoverConfig& config);

}  // namespace levee::companion::failover
