#pragma once
// Parsers for the scalar value types of the policy file: durations, byte sizes, socket addresses.
// Pure functions, no I/O; errors carry only a message (the loader adds file, line and path).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "config/policy.h"
#include "proxy/common/result.h"

namespace levee::config {

// "250ms", "3s", "5m", "1h", "1.5s" (a decimal fraction is fine while the result is a whole
// number of milliseconds). A bare number is rejected with a hint: the unit is mandatory.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);

// "65536" (bytes), "512B", "64KiB", "16MB", "1GiB", "1.5MiB". KB/MB/GB/TB are powers of 1000,
// KiB/MiB/GiB/TiB powers of 1024.
Result<uint64_t> parseByteSize(std::string_view text);

// "127.0.0.1:8080", "[::1]:80", and, when allow_dns_name, "app.svc:8080". Port 1..65535.
Result<SocketAddress> parseSocketAddress(std::string_view text, bool allow_dns_name);

}  // namespace levee::config
