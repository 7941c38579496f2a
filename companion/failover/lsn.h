#pragma once
// PostgreSQL WAL positions (pg_lsn): "16/B374D848" is the 64-bit byte position 0x16B374D848.
// Lag is measured in WAL bytes, never in clock time (an idle primary writes no WAL, so a
// replica's last-replay timestamp grows without the replica being behind).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace levee::companion::failover {

// "X/Y" with X and Y hexadecimal (up to 8 digits each), as PostgreSQL prints pg_lsn.
std::optional<uint64_t> parseLsn(std::string_view text);
std::string formatLsn(uint64_t lsn);
// How many bytes `behind` is behind `ahead` (0 when it is not behind).
inline uint64_t lsnLag(uint64_t ahead, uint64_t behind) { return ahead > behind ? ahead - behind : 0; }

}  // namespace levee::companion::failover
