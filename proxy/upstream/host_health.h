#pragma once
// Health of an upstream's hosts, shared by the main loop (active health checks, outlier
// ejection bookkeeping) and every worker (load balancing). Indexed like the HostSet it was
// built for; plain atomics, no locks on the request path.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "proxy/upstream/host.h"

namespace levee::upstream {

class HostHealth {
public:
  explicit HostHealth(HostSetConstSharedPtr hosts)
      : hosts_(std::move(hosts)), healthy_(hosts_->hosts.size()), ejected_(hosts_->hosts.size()) {
    for (auto& h : healthy_) {
      h.store(true, std::memory_order_relaxed);  // healthy until checks say otherwise
    }
    for (auto& e : ejected_) {
      e.store(false, std::memory_order_relaxed);
    }
  }
  const HostSetConstSharedPtr& hosts() const { return hosts_; }
  size_t size() const { return healthy_.size(); }
  bool healthy(size_t i) const { return healthy_[i].load(std::memory_order_relaxed); }
  void setHealthy(size_t i, bool v) const { healthy_[i].store(v, std::memory_order_relaxed); }
  bool ejected(size_t i) const { return ejected_[i].load(std::memory_order_relaxed); }
  void setEjected(size_t i, bool v) const { ejected_[i].store(v, std::memory_order_relaxed); }
  // Usable for traffic: passing health checks and not ejected by outlier detection.
  bool usable(size_t i) const { return healthy(i) && !ejected(i); }
  size_t usableCount() const {
    size_t n = 0;
    for (size_t i = 0; i < size(); ++i) {
      n += usable(i) ? 1 : 0;
    }
    return n;
  }

private:
  HostSetConstSharedPtr hosts_;
  // Mutable: flags are shared state written by the main loop/outlier detector, not config.
  mutable std::vector<std::atomic<bool>> healthy_;
  mutable std::vector<std::atomic<bool>> ejected_;
};
using HostHealthSharedPtr = std::shared_ptr<HostHealth>;

}  // namespace levee::upstream
