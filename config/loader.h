#pragma once
// Policy loader (DESIGN section 5): YAML file -> validated config::Policy, or every error of the
// file with its location. Never throws. docs/policy.md is the reference of the accepted keys.

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy.h"
#include "proxy/common/result.h"

namespace levee::config {

using Errors = std::vector<levee::Error>;

// Reads, parses and validates. All errors of the file in one pass (schema errors first, then
// cross-validation), each with FILE:LINE:COL (1-based) and its YAML path
// (`listeners[0].routes[2].timeout`). Fills Policy::source_file and Policy::content_hash.
std::expected<Policy, Errors> loadPolicyFile(const std::string& path);
std::expected<Policy, Errors> loadPolicyString(std::string_view yaml, const std::string& file_name);

// One error per line, "FILE:LINE:COL: yaml.path: message".
std::string formatErrors(const Errors& errors);

}  // namespace levee::config
