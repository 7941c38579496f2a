#include "config/policy.h"

#include <array>
#include <bit>
#include <string>

namespace levee::config {

std::string SocketAddress::toString() const {
  // An IPv6 literal is the only host that contains ':'; it needs brackets before the port.
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

namespace {
constexpr std::array<std::string_view, kFallbackReasonCount> kFallbackReasonNames{
    "breaker_open", "no_healthy_upstream", "connect_failure", "reset", "timeout",
    "upstream_5xx", "overflow", "rate_limited", "degraded"};
}  // namespace

uint32_t fallbackReasonIndex(FallbackReason r) {
  return static_cast<uint32_t>(std::countr_zero(static_cast<uint32_t>(r)));
}

std::string_view fallbackReasonName(FallbackReason r) {
  return kFallbackReasonNames[fallbackReasonIndex(r)];
}

}  // namespace levee::config
