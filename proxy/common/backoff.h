#pragma once
// Retry delays: AWS "full jitter" exponential backoff and the HTTP Retry-After header
// (RFC 9110 section 10.2.3). Pure functions: randomness and the clock are passed in.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proxy/common/time_source.h"

namespace levee::common {

// The delay before retry number `attempt` (1-based; 0 is treated as 1): a value in
// [0, min(max, base * 2^(attempt-1))] chosen by `random` (any uniformly distributed 64-bit
// value; the result is random % (cap + 1)). The doubling saturates at `max`, so any attempt,
// however large, is safe. Negative base or max are treated as 0.
// See https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/.
std::chrono::milliseconds fullJitterBackoff(uint32_t attempt, std::chrono::milliseconds base,
                                            std::chrono::milliseconds max, uint64_t random);

// Parses a Retry-After value into a delay from `now`:
//  - delta-seconds ("120"); values too large to represent are taken as 2^31 seconds
//    (RFC 9111 section 1.2.2);
//  - an HTTP-date in the preferred IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT") or the
//    obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994")
//    forms. A date in the past gives 0; a future date is rounded up to whole milliseconds.
// Surrounding spaces/tabs are ignored; HTTP-dates are case-sensitive (RFC 9110 section 5.6.7).
// Anything else (signs, fractions, unknown names, impossible dates) gives nullopt.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value, SystemTime now);

}  // namespace levee::common
