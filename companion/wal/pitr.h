#pragma once
// Pure pieces of base backups and point-in-time restores (companion/wal/README.md): the restore
// request's target time, the recovery settings written into a prepared data directory, and the
// WAL range a base backup needs. Unit-tested in pitr_test.cc.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/common/result.h"

namespace levee::companion::wal {

struct TargetTime {
  std::string postgres;  // "2026-12-02 04:10:00.123456+00:00": recovery_target_time
  double unix_seconds{0};
};
// "2026-12-02T04:10:00Z", "2026-12-02T04:10:00.123456+01:00" (RFC 3339; 'T' or ' ' between date
// and time; an offset is required, so the time never depends on a server's TimeZone).
Result<TargetTime> parseTargetTime(std::string_view text);

// Paths that go into restore_command (a shell command) and postgresql.auto.conf must not need
// quoting: absolute, [A-Za-z0-9/._+-] only, no "..".
bool isPlainPath(std::string_view path);

// The shell command recovery runs for each file (%f) it needs: a complete segment from the
// archive, else the segment pg_receivewal is still writing (<name>.partial, which holds every
// record flushed so far; recovery stops at its end).
std::string restoreCommand(const std::string& archive_dir);

// Lines appended to the extracted postgresql.auto.conf (later settings win).
std::string recoverySettings(const std::string& archive_dir, const std::optional<TargetTime>& target);

struct WalRange {
  uint32_t timeline{0};
  uint64_t start_lsn{0};
  uint64_t end_lsn{0};
};
// The first "WAL-Ranges" entry of a backup_manifest (pg_basebackup's JSON manifest).
Result<WalRange> manifestWalRange(std::string_view manifest_json);

}  // namespace levee::companion::wal
