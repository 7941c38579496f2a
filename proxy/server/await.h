#pragma once
// `levee await` (README "Lifecycle"): blocks until the local levee's /health/ready answers 200,
// for a Kubernetes postStart hook or an entrypoint wrapper (istio#11130). A short-lived CLI
// process of its own: blocking sockets are fine here (no event loop runs).

#include <cstdint>
#include <iosfwd>
#include <string>

namespace levee::server {

// Polls http://ADDRESS/health/ready every 100 ms (each attempt bounded by 1 s) until it answers
// 200 or `timeout_ms` passes. Writes one line to `out` (ready) or `err` (timeout, with the last
// failure). Returns the exit code: 0 ready, 1 timeout.
int awaitReady(const std::string& address, uint32_t timeout_ms, std::ostream& out, std::ostream& err);

}  // namespace levee::server
