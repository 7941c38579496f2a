#pragma once
// Pure pieces of the Redis and files restores (unit-tested in restore_checks_test.cc): what a
// backup records about its artifacts and what a restore compares against, plus the blocking
// tree walk (thread pool only).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/result.h"

namespace levee::companion::backup {

struct TreeCounts {
  uint64_t entries{0};  // directories, files, symlinks, ... including the top directory
  uint64_t bytes{0};    // sizes of regular files (a hard-linked file counts once)
  bool operator==(const TreeCounts&) const = default;
};

// Per archived directory (absolute paths as in the policy), from a GNU `tar -tv --numeric-owner`
// listing of an archive made with `-C / <paths without the leading slash>`. Paths without an
// entry in the listing are absent from the result.
std::map<std::string, TreeCounts> countTarListing(std::string_view listing, const std::vector<std::string>& paths);

// Walks `path` (lstat, no symlink following). Blocking: thread pool only.
Result<TreeCounts> countTree(const std::string& path);

// Removes `path` recursively (no symlink following); a missing path is fine. Thread pool only.
Status removeTree(const std::string& path);

struct RdbCounts {
  uint64_t keys{0};             // "[info] N keys read"
  uint64_t expires{0};          // "[info] N expires"
  uint64_t already_expired{0};  // "[info] N already expired"
};
// The summary that redis-check-rdb prints; nullopt when "keys read" is missing.
std::optional<RdbCounts> parseRdbCheck(std::string_view output);

// The value of `field` in an INFO reply ("role:master\r\n..."); empty when absent.
std::string infoField(std::string_view info, std::string_view field);
// Sum of keys=N over the dbN lines of INFO keyspace.
uint64_t keyspaceKeys(std::string_view info);

// 127.0.0.0/8, ::1, localhost.
bool isLoopbackHost(std::string_view host);

// The archived directories of a files artifact, from its recorded counts ("entries:<path>");
// empty for backups made before the counts were recorded.
std::vector<std::string> archivedPaths(const std::map<std::string, uint64_t>& counts);

}  // namespace levee::companion::backup
