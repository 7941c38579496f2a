#pragma once
// The local backup store (policy `companion.backup.dir`):
//   <dir>/sets/<id>/<artifact files>     the data of one backup set
//   <dir>/catalog/<id>.json              its catalog entry, present only once the set is verified
//   <dir>/schedule.json                  {"last_run": unix seconds} for missed-run detection
// Every function here does blocking file I/O: call them from the thread pool
// (event::queueWork), never from a loop. Errors carry the path and strerror.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <zlib.h>

#include "companion/backup/catalog.h"
#include "proxy/common/result.h"

namespace levee::companion::storage {

class LocalStore {
public:
  explicit LocalStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string setDir(const std::string& id) const { return dir_ + "/sets/" + id; }
  std::string artifactPath(const std::string& id, const std::string& file) const {
    return setDir(id) + "/" + file;
  }

  Status ensureLayout() const;
  Result<std::string> createSetDir(const std::string& id) const;
  // Temp file, fsync, rename, fsync of the directory.
  Status writeEntry(const backup::CatalogEntry& entry) const;
  // Entries that decode; broken files are reported in `problems` (and skipped).
  std::vector<backup::CatalogEntry> loadEntries(std::vector<std::string>& problems) const;
  // Removes the catalog entry first (the set stops existing), then the data.
  Status removeSet(const std::string& id) const;
  // Removes set directories without a catalog entry (jobs interrupted by a crash).
  std::vector<std::string> removeOrphans() const;

  std::optional<int64_t> readLastRun() const;
  Status writeLastRun(int64_t unix_seconds) const;

private:
  std::string dir_;
};

// Atomic small-file write: `path`.tmp, fsync, rename, fsync of the parent directory.
Status writeFileAtomic(const std::string& path, const std::string& content);

// Streams bytes into a file through optional gzip and SHA-256 (of the stored bytes).
// Used from one thread pool thread at a time.
class ArtifactSink {
public:
  ArtifactSink() = default;
  ~ArtifactSink();
  ArtifactSink(const ArtifactSink&) = delete;
  ArtifactSink& operator=(const ArtifactSink&) = delete;

  Status open(const std::string& path, bool gzip);
  Status write(const char* data, size_t n);
  // Flushes, fsyncs and closes.
  Status finish();

  uint64_t storedBytes() const { return stored_; }
  uint64_t rawBytes() const { return raw_; }
  const std::string& sha256() const { return sha_hex_; }

private:
  Status writeStored(const unsigned char* data, size_t n);
  std::string path_;
  int fd_{-1};
  bool gzip_{false};
  bool zinit_{false};
  z_stream z_{};
  EVP_MD_CTX* md_{nullptr};
  uint64_t stored_{0};
  uint64_t raw_{0};
  std::string sha_hex_;
};

struct ReReadResult {
  std::string sha256;
  uint64_t size{0};
  uint64_t raw_size{0};
};
// Re-reads a stored artifact: SHA-256 of its bytes, and when `gzip`, inflates it completely
// (checking the gzip CRC), writing the inflated bytes to `inflate_to` when that is not empty.
Result<ReReadResult> reReadArtifact(const std::string& path, bool gzip, const std::string& inflate_to);

std::string hexDigest(const unsigned char* md, unsigned len);

}  // namespace levee::companion::storage
