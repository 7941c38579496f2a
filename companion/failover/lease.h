#pragma once
// The leader lease: only the levee holding it may promote (two sidecars watching the same
// cluster must never both promote). Backends: `none` (a single levee: always held) and `etcd`
// (lease_etcd.h: renewed off the loop, held() answered from the last renewal). The interface
// leaves room for Kubernetes Lease objects. Main loop only.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/policy.h"
#include "proxy/common/json.h"
#include "proxy/event/dispatcher.h"

namespace levee::companion::failover {

class LeaderLease {
public:
  using ConfirmCb = std::function<void(bool held, const std::string& error)>;
  virtual ~LeaderLease() = default;
  virtual std::string_view backend() const = 0;
  // Starts acquiring and renewing.
  virtual void start() {}
  // True while this instance holds the lease (conservative: false as soon as the backend may
  // have given it to somebody else).
  virtual bool held() const = 0;
  // Asks the backend again (a fresh round trip, not the cached state) and calls `cb` on the
  // main loop with the answer: called right before promoting. Never calls `cb` after
  // release() or once the lease is destroyed.
  virtual void confirm(ConfirmCb cb) { cb(held(), ""); }
  // Clean shutdown: stops renewing and gives the lease up (asynchronously).
  virtual void release() {}
  // Nothing in flight: the lease may be destroyed on the loop without waiting.
  virtual bool idle() const { return true; }
  // Fields of the status API's "lease" object besides backend and held.
  virtual void writeStatus(json::Writer& w) const { (void)w; }
};

class NoLease final : public LeaderLease {
public:
  std::string_view backend() const override { return "none"; }
  bool held() const override { return true; }
};

std::unique_ptr<LeaderLease> makeLease(event::Dispatcher& main,
                                       const config::PostgresFailoverConfig& config);

}  // namespace levee::companion::failover
