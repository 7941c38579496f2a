#pragma once
// The S3 copy of the WAL archive (`wal_archive` together with `companion.backup.s3`,
// companion/wal/README.md "WAL in the S3 store"). Object layout under the policy's prefix:
//   <prefix>wal/<segment>            complete segments and history files, uploaded in name order
//   <prefix>wal/<segment>.partial    a snapshot of the segment pg_receivewal is still writing
//
// Every function here blocks (files, network): thread pool only (event::queueWork), one call
// at a time per WalBucket.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "companion/storage/s3_client.h"
#include "companion/wal/wal_math.h"
#include "config/policy.h"
#include "proxy/common/result.h"

namespace levee::companion::wal {

class WalBucket {
public:
  explicit WalBucket(config::BackupS3Config config) : config_(std::move(config)) {}

  std::string key(std::string_view name) const { return config_.prefix + "wal/" + std::string(name); }
  // "s3://bucket/prefix/wal/" for messages.
  std::string location() const { return "s3://" + config_.bucket + "/" + config_.prefix + "wal/"; }

  struct PassInput {
    std::string dir;                       // the local archive (pg_receivewal's directory)
    uint64_t archived_lsn{0};              // the archive's flush position, sampled before the pass
    bool snapshot_partial{false};          // upload the .partial this pass (when it changed)
    bool keep_local{false};                // keep uploaded segments in `dir`
    std::optional<uint64_t> prune_before;  // WAL retention: remove the bucket's segments before this segno
  };
  struct PassResult {
    std::string error;                 // the first failure (the pass stopped there)
    std::vector<std::string> added;    // names now in the bucket (the first pass: its listing too)
    std::vector<std::string> removed;  // names pruned from the bucket
    uint32_t uploaded{0};              // files uploaded and verified
    bool snapshot_uploaded{false};     // one of them: a snapshot of the .partial
    uint32_t failed{0};
    uint64_t bytes{0};
    size_t pending{0};                     // complete segments and history files still to upload
    std::optional<PartialSnapshot> partial;  // the snapshot in the bucket
    uint32_t removed_local{0};
  };
  // One pass: (the first time) the bucket's listing; every pending complete segment and history
  // file, oldest first, each verified (the SHA-256 sent as the signed payload hash, the ETag
  // against the MD5 sent, HEAD size) and then, unless `keep_local`, removed from `dir` (history
  // files stay); then, when asked and when it changed, a snapshot of the newest .partial; then
  // the retention prune.
  void pass(const PassInput& in, PassResult& out);

  struct Fetched {
    size_t files{0};
    uint64_t bytes{0};
  };
  // A point-in-time restore: every file of restoreFetchList(from_segno) downloaded into `to`
  // (which exists), each checked against its listed size (PostgreSQL checks every record's CRC).
  Result<Fetched> fetch(uint64_t from_segno, const std::string& to);

private:
  void passSteps(const PassInput& in, PassResult& out);
  Status ensureClient();
  Result<std::vector<storage::S3Object>> listWal();
  Status uploadFile(const std::string& dir, const std::string& name, PassResult& out);
  Status uploadSnapshot(const std::string& dir, const std::string& name, uint64_t archived_lsn, PassResult& out);
  void prune(uint64_t before, PassResult& out);

  config::BackupS3Config config_;
  std::optional<storage::S3Client> client_;
  bool listed_{false};
  std::set<std::string> uploaded_;       // complete segments and history files in the bucket
  std::optional<PartialSnapshot> partial_;
  std::string partial_name_;             // "<segment>.partial" of partial_
};

}  // namespace levee::companion::wal
