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

}  // namespace levee::config::test
