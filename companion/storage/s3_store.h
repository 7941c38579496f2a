#pragma once
// Backup sets in an S3 bucket (policy `companion.backup.s3`), and `SetStore`, the one place the
// backup manager asks "where do sets live": the local directory alone, or the local directory
// as the staging area plus the bucket as the source of truth.
//
// Object layout under the policy's prefix:
//   <prefix>sets/<id>/<file>      the artifacts of a set
//   <prefix>catalog/<id>.json     its catalog entry, uploaded last (a listed set is complete)
//
// Every function here blocks (files, network): thread pool only (event::queueWork).

#include <optional>
#include <string>
#include <vector>

#include "companion/backup/catalog.h"
#include "companion/storage/local_store.h"
#include "companion/storage/s3_client.h"
#include "config/policy.h"

namespace levee::companion::storage {

// A secret from `file` (when set) or the environment variable `env`, trailing whitespace trimmed,
// at most 4 KiB. Errors name `what` and the file or variable, never the secret.
Result<std::string> readCredential(const std::string& file, const std::string& env, std::string_view what);

// The client settings of `companion.backup.s3`, with the credentials read from their files or
// environment variables (trailing whitespace trimmed). Errors name the file or variable, never
// the secret.
Result<S3Settings> resolveS3Settings(const config::BackupS3Config& config);

class S3Store {
public:
  S3Store(S3Settings settings, std::string prefix) : client_(std::move(settings)), prefix_(std::move(prefix)) {}

  std::string artifactKey(const std::string& id, const std::string& file) const {
    return prefix_ + "sets/" + id + "/" + file;
  }
  std::string catalogKey(const std::string& id) const { return prefix_ + "catalog/" + id + ".json"; }
  // "s3://bucket/prefix" for messages.
  std::string location() const { return "s3://" + client_.settings().bucket + "/" + prefix_; }

  // Uploads every artifact of `entry` from `local`, each verified (bytes sent = the artifact's
  // sha256 and size, ETag = MD5 of the bytes sent when the ETag is a plain MD5, HEAD size, and
  // the object read back and hashed again), then the catalog entry, read back byte for byte.
  // Returns a one-line summary for the job's notes.
  Result<std::string> uploadSet(const backup::CatalogEntry& entry, const LocalStore& local);
  // Every catalog entry in the bucket (entries that do not decode go to `problems`).
  Result<std::vector<backup::CatalogEntry>> loadEntries(std::vector<std::string>& problems);
  // The catalog entry first (the set stops being listed), then the set's objects.
  Status removeSet(const std::string& id);
  // Removes the objects of sets without a catalog entry (uploads interrupted or failed).
  Result<std::vector<std::string>> removeOrphans(const std::vector<backup::CatalogEntry>& known);
  // GET into `path`; size and sha256 must be the catalog's.
  Status download(const std::string& id, const backup::Artifact& artifact, const std::string& path);

  S3Client& client() { return client_; }

private:
  S3Client client_;
  std::string prefix_;
};

// Where the sets of one `companion.backup` configuration live. Cheap to copy (config only).
class SetStore {
public:
  explicit SetStore(const config::BackupConfig& config) : local_(config.dir), s3_(config.s3) {}

  bool usesS3() const { return s3_.enabled; }
  const LocalStore& local() const { return local_; }

  struct Loaded {
    std::vector<backup::CatalogEntry> entries;
    std::vector<std::string> problems;  // logged, the entry skipped
    std::vector<std::string> orphans;   // unverified sets removed (local and in the bucket)
    std::string error;                  // the catalog could not be read at all
  };
  // The catalog from the source of truth (the bucket when configured) and orphan clean-up.
  Loaded load() const;
  // Makes a verified set listed: local catalog entry, or (S3) upload + verification of the
  // artifacts then the entry, then the staged copy removed unless `keep_local`. Appends a note.
  Status publish(const backup::CatalogEntry& entry, std::vector<std::string>& notes) const;
  // Removes a set everywhere (bucket first: catalog entry, then objects; then the local copy).
  Status removeSet(const std::string& id) const;

  // Restores read artifacts from `restorePath`: the set's local file, or (S3) a file under
  // `<dir>/restore/<restore_id>/` that `fetchForRestore` fills (a hard link to a kept local
  // copy whose sha256 still matches, else a download checked against the catalog).
  std::string restorePath(const std::string& restore_id, const std::string& backup_id, const std::string& file) const;
  Result<std::string> fetchForRestore(const std::string& restore_id, const std::string& backup_id,
                                      const backup::Artifact& artifact) const;
  // Removes `<dir>/restore/<restore_id>/` (S3 only; nothing to do for the local store).
  void cleanupRestore(const std::string& restore_id) const;

private:
  Result<S3Store> s3Store() const;
  LocalStore local_;
  config::BackupS3Config s3_;
};

}  // namespace levee::companion::storage
