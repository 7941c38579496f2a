#include "companion/failover/lease.h"

#include "companion/failover/lease_etcd.h"

namespace levee::companion::failover {

std::unique_ptr<LeaderLease> makeLease(event::Dispatcher& main,
                                       const config::PostgresFailoverConfig& config) {
  switch (config.lease_backend) {
    case config::PostgresFailoverConfig::LeaseBackend::Etcd:
      return std::make_unique<EtcdLease>(main, config);
    case config::PostgresFailoverConfig::LeaseBackend::None:
      break;
  }
  return std::make_unique<NoLease>();
}

}  // namespace levee::companion::failover
