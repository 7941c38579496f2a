#pragma once
#include <string>

namespace levee::http {
// A random UUIDv4 string from a per-thread generator (not for security).
std::string generateRequestId();
}  // namespace levee::http
