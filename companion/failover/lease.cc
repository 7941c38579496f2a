#include "companion/failover/lease.h"

namespace levee::companion::failover {

std::unique_ptr<LeaderLease> makeLease(const config::PostgresFailoverConfig& config) {
  switch (config.lease_backend) {
    case config::PostgresFailoverConfig::LeaseBackend::None:
      break;
  }
  return std::make_unique<NoLease>();
}

}  // namespace levee::companion::failover
