#pragma once
// Synchronous libpq calls for the failover monitor. They block, so they run only on a
// MemberWorker thread, never on an event loop. Every call is bounded by `timeout`
// (connect_timeout, rounded up to libpq's 2 s minimum, and statement_timeout).

#include <chrono>
#include <string>

#include "companion/failover/cluster_state.h"

namespace levee::companion::failover {

// Connects, reads pg_is_in_recovery() and the WAL positions, disconnects.
Observation checkMember(const std::string& dsn, std::chrono::milliseconds timeout);

struct PromoteResult {
  bool ok{false};
  std::string error;  // when !ok
};
// SELECT pg_promote(wait => true, wait_seconds => ...), then confirms that
// pg_is_in_recovery() is false.
PromoteResult promoteMember(const std::string& dsn, std::chrono::milliseconds timeout);

}  // namespace levee::companion::failover
