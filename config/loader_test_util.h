#pragma once
// Helpers shared by the loader's tests.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"

namespace levee::config::test {

// Every error as "FILE:LINE:COL: path: message"; empty when the policy loads.
inline std::vector<std::string> errorsOf(std::string_view yaml) {
  auto policy = loadPolicyString(yaml, "p.yaml");
  std::vector<std::string> out;
  if (!policy) {
    for (const Error& e : policy.error()) {
      out.push_back(e.toString());
    }
  }
  return out;
}

// The loaded policy; a failure to load fails the calling test (and returns a default Policy).
inline Policy load(std::string_view yaml) {
  auto policy = loadPolicyString(yaml, "p.yaml");
  EXPECT_TRUE(policy.has_value()) << formatErrors(policy.error());
  return policy.has_value() ? std::move(*policy) : Policy{};
}

// A policy with one listener and one route `r` (upstream `app`): the route keys given to
// withRoute start on line 9, column 9; `top` is appended after the upstreams (line 12 on).
inline constexpr std::string_view kRouteHead = R"(version: 1
service: svc
listeners:
  - name: in
    address: 127.0.0.1:15006
    routes:
      - name: r
        upstream: app
)";

inline constexpr std::string_view kRouteTail = R"(upstreams:
  app:
    endpoints: [{ address: 127.0.0.1:8080 }]
)";

inline std::string withRoute(std::string_view keys, std::string_view top = "") {
  return std::string(kRouteHead) + std::string(keys) + std::string(kRouteTail) + std::string(top);
}

// The errors of `key: <block>` on line 9 of the route (the block starts at column 11 + key size).
inline std::vector<std::string> routeBlockErrors(std::string_view key, std::string_view block) {
  return errorsOf(withRoute("        " + std::string(key) + ": " + std::string(block) + "\n"));
}

// An error on line 9 (where routeBlockErrors puts the block), under the route.
inline std::string routeErrorAt(int column, std::string_view path, std::string_view message) {
  return "p.yaml:9:" + std::to_string(column) + ": listeners[0].routes[0]." + std::string(path) +
         ": " + std::string(message);
}

}  // namespace levee::config::test
