#pragma once
#include <string>

#include "config/policy.h"

namespace levee::server {
// The effective policy as JSON for GET /admin/config. Secrets are never included (the admin
// token is referenced by file path only; its contents are not read here).
std::string policyToJson(const config::Policy& p);
}  // namespace levee::server
