#pragma once
// The body of `POST /admin/faults` (DESIGN section 7): a run-time fault experiment, parsed and
// validated with the same rules (and messages) as a route's `fault` block. Never throws.

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "config/policy.h"

namespace levee::config {

struct FaultExperimentSpec {
  std::string route;                 // empty: any route
  std::string upstream;              // empty: any upstream
  std::vector<HeaderMatch> headers;  // all must match (names lower-cased); empty: any request
  FaultConfig fault;                 // at least one kind set
  Duration ttl{0};                   // faults.default_ttl when the body has none
};

// `body` is a JSON object, e.g. {"route":"orders-read","header":{"x-drill":"1"},
// "delay":{"percent":10,"duration":"2s"},"abort":{"percent":5,"status":503},
// "reset":{"percent":1},"ttl":"10m"}. Targets must name a route / upstream of `policy`; ttl is
// bounded by policy.faults.max_ttl. Errors are "body:LINE:COL: path: message", all of them.
std::expected<FaultExperimentSpec, Errors> parseFaultExperiment(std::string_view body,
                                                                const Policy& policy);

}  // namespace levee::config
