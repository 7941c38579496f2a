#include "companion/storage/s3_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace levee::companion::storage {
namespace {

// "sets/<id>/..." or "catalog/<id>.json" under the prefix -> <id>; empty when not one of ours.
std::string setIdOf(std::string_view key_after_prefix) {
  if (!key_after_prefix.starts_with("sets/")) {
    return {};
  }
  key_after_prefix.remove_prefix(5);
  const size_t slash = key_after_prefix.find('/');
  std::string id(key_after_prefix.substr(0, slash));
  return backup::isValidId(id) ? id : std::string();
}

}  // namespace

Result<std::string> readCredential(const std::string& file, const std::string& env, std::string_view what) {
  std::string value;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      return makeError(std::string(what) + ": cannot read " + file + ": " + std::strerror(errno));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    value = ss.str();
    if (value.size() > 4096) {
      return makeError(std::string(what) + ": " + file + " is larger than 4 KiB");
    }
  } else {
    const char* v = std::getenv(env.c_str());  // the environment is not modified after start
    if (v == nullptr) {
      return makeError(std::string(what) + ": environment variable " + env + " is not set");
    }
    value = v;
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.pop_back();
  }
  if (value.empty()) {
    return makeError(std::string(what) + ": " + (file.empty() ? "environment variable " + env : file) + " is empty");
  }
  return value;
}

Result<S3Settings> resolveS3Settings(const config::BackupS3Config& c) {
  S3Settings s;
  s.endpoint = c.endpoint;
  s.bucket = c.bucket;
  s.region = c.region;
  s.tls_verify = c.tls_verify;
  s.ca_file = c.tls_ca_file;
  s.connect_timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, c.connect_timeout.count()));
  s.stall_timeout_s = static_cast<uint32_t>(std::max<int64_t>(1, c.stall_timeout.count() / 1000));
  s.multipart_part_size = c.multipart_part_size;
  LEVEE_ASSIGN_OR_RETURN(s.access_key_id, readCredential(c.access_key_id_file, c.access_key_id_env, "s3 access key id"));
  LEVEE_ASSIGN_OR_RETURN(s.secret_access_key,
                         readCredential(c.secret_access_key_file, c.secret_access_key_env, "s3 secret access key"));
  return s;
}

// === impl S3Store ===

Result<std::string> S3Store::uploadSet(const backup::CatalogEntry& entry, const LocalStore& local) {
  uint64_t total = 0;
  bool parts_used = false;
  for (const backup::Artifact& a : entry.artifacts) {
    const std::string key = artifactKey(entry.id, a.file);
    const std::string path = local.artifactPath(entry.id, a.file);
    const uint64_t part = client_.settings().multipart_part_size;
    LEVEE_ASSIGN_OR_RETURN(auto sent, a.size > part ? client_.putFileMultipart(key, path, a.sha256, part)
                                                    : client_.putFile(key, path, a.sha256));
    parts_used = parts_used || a.size > part;
    if (sent.bytes != a.size) {
      return makeError("upload of " + a.file + ": sent " + std::to_string(sent.bytes) + " bytes, the artifact has " +
                       std::to_string(a.size));
    }
    LEVEE_ASSIGN_OR_RETURN(auto head, client_.head(key));
    if (!head.exists || head.size != a.size) {
      return makeError("upload of " + a.file + ": HEAD " + key + " reports " +
                       (head.exists ? std::to_string(head.size) + " bytes" : std::string("no object")) + ", expected " +
                       std::to_string(a.size));
    }
    LEVEE_ASSIGN_OR_RETURN(auto back, client_.getDigest(key));
    if (back.bytes != a.size || back.sha256 != a.sha256) {
      return makeError("upload of " + a.file + ": the object read back (" + std::to_string(back.bytes) +
                       " bytes, sha256 " + back.sha256 + ") is not the artifact");
    }
    total += a.size;
  }
  const std::string json = backup::encodeEntry(entry) + "\n";
  const std::string key = catalogKey(entry.id);
  LEVEE_RETURN_IF_ERROR(client_.putString(key, json));
  LEVEE_ASSIGN_OR_RETURN(std::string back, client_.getString(key));
  if (back != json) {
    return makeError("upload of the catalog entry: " + key + " read back differs from what was written");
  }
  return std::to_string(entry.artifacts.size()) + " artifact(s), " + std::to_string(total) + " bytes uploaded to " +
         location() + (parts_used ? " (multipart for the large ones)" : "") +
         " and verified (size, ETag, sha256 read back), catalog entry last";
}

Result<std::vector<backup::CatalogEntry>> S3Store::loadEntries(std::vector<std::string>& problems) {
  LEVEE_ASSIGN_OR_RETURN(auto objects, client_.list(prefix_ + "catalog/"));
  std::vector<backup::CatalogEntry> out;
  const std::string under = prefix_ + "catalog/";
  for (const S3Object& o : objects) {
    if (!o.key.starts_with(under)) {
      continue;  // the server answered more than was asked for
    }
    std::string_view name = std::string_view(o.key).substr(under.size());
    if (!name.ends_with(".json") || name.find('/') != std::string_view::npos) {
      continue;
    }
    auto text = client_.getString(o.key);
    if (!text) {
      problems.push_back(text.error().message);
      continue;
    }
    auto entry = backup::decodeEntry(*text);
    if (!entry) {
      problems.push_back(location() + "catalog/" + std::string(name) + ": " + entry.error().message);
      continue;
    }
    if (entry->id + ".json" != name) {
      problems.push_back(location() + "catalog/" + std::string(name) + ": id does not match the object name");
      continue;
    }
    out.push_back(std::move(*entry));
  }
  return out;
}

Status S3Store::removeSet(const std::string& id) {
  LEVEE_RETURN_IF_ERROR(client_.remove(catalogKey(id)));
  const std::string under = prefix_ + "sets/" + id + "/";
  LEVEE_ASSIGN_OR_RETURN(auto objects, client_.list(under));
  for (const S3Object& o : objects) {
    if (o.key.starts_with(under)) {
      LEVEE_RETURN_IF_ERROR(client_.remove(o.key));
    }
  }
  return {};
}

Result<std::vector<std::string>> S3Store::removeOrphans(const std::vector<backup::CatalogEntry>& known) {
  std::set<std::string> ids;
  for (const auto& e : known) {
    ids.insert(e.id);
  }
  LEVEE_ASSIGN_OR_RETURN(auto objects, client_.list(prefix_ + "sets/"));
  std::set<std::string> removed;
  for (const S3Object& o : objects) {
    if (!o.key.starts_with(prefix_)) {
      continue;
    }
    const std::string id = setIdOf(std::string_view(o.key).substr(prefix_.size()));
    if (id.empty() || ids.contains(id)) {
      continue;
    }
    LEVEE_RETURN_IF_ERROR(client_.remove(o.key));
    removed.insert(id);
  }
  return std::vector<std::string>(removed.begin(), removed.end());
}

Status S3Store::download(const std::string& id, const backup::Artifact& artifact, const std::string& path) {
  LEVEE_ASSIGN_OR_RETURN(auto got, client_.getToFile(artifactKey(id, artifact.file), path));
  if (got.bytes != artifact.size || got.sha256 != artifact.sha256) {
    ::unlink(path.c_str());
    return makeError(location() + "sets/" + id + "/" + artifact.file + ": downloaded " + std::to_string(got.bytes) +
                     " bytes with sha256 " + got.sha256 + ", the catalog says " + std::to_string(artifact.size) +
                     " bytes, " + artifact.sha256 + " (the stored backup changed since it was verified)");
  }
  return {};
}

// === impl SetStore ===

Result<S3Store> SetStore::s3Store() const {
  LEVEE_ASSIGN_OR_RETURN(auto settings, resolveS3Settings(s3_));
  return S3Store(std::move(settings), s3_.prefix);
}

SetStore::Loaded SetStore::load() const {
  Loaded out;
  if (auto st = local_.ensureLayout(); !st) {
    out.error = st.error().message;
    return out;
  }
  if (!s3_.enabled) {
    out.entries = local_.loadEntries(out.problems);
    out.orphans = local_.removeOrphans();
    return out;
  }
  auto store = s3Store();
  if (!store) {
    out.error = store.error().message;
    return out;
  }
  auto entries = store->loadEntries(out.problems);
  if (!entries) {
    out.error = "reading the catalog in " + store->location() + ": " + entries.error().message;
    return out;
  }
  out.entries = std::move(*entries);
  if (auto orphans = store->removeOrphans(out.entries)) {
    for (const auto& id : *orphans) {
      out.orphans.push_back(store->location() + "sets/" + id);
    }
  } else {
    out.problems.push_back("removing unverified sets in " + store->location() + ": " + orphans.error().message);
  }
  // Staged sets that are not in the bucket's catalog (a job interrupted before its upload).
  std::set<std::string> ids;
  for (const auto& e : out.entries) {
    ids.insert(e.id);
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(local_.dir() + "/sets", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string id = it->path().filename().string();
    if (!ids.contains(id)) {
      std::error_code rm;
      std::filesystem::remove_all(it->path(), rm);
      out.orphans.push_back(id);
    }
  }
  std::filesystem::remove_all(local_.dir() + "/restore", ec);  // downloads of interrupted restores
  return out;
}

Status SetStore::publish(const backup::CatalogEntry& entry, std::vector<std::string>& notes) const {
  if (!s3_.enabled) {
    return local_.writeEntry(entry);
  }
  LEVEE_ASSIGN_OR_RETURN(auto store, s3Store());
  auto uploaded = store.uploadSet(entry, local_);
  if (!uploaded) {
    return makeError("upload to " + store.location() + " failed: " + uploaded.error().message);
  }
  notes.push_back("s3: " + *uploaded);
  if (!s3_.keep_local) {
    std::error_code ec;
    std::filesystem::remove_all(local_.setDir(entry.id), ec);
    notes.push_back(ec ? "s3: the staged copy could not be removed: " + ec.message()
                       : std::string("s3: the staged local copy was removed (keep_local: false)"));
  }
  return {};
}

Status SetStore::removeSet(const std::string& id) const {
  Status bucket;
  if (s3_.enabled) {
    auto store = s3Store();
    bucket = store ? store->removeSet(id) : Status(std::unexpected(store.error()));
  }
  Status staged = local_.removeSet(id);  // the staged copy goes even when the bucket failed
  return bucket ? staged : bucket;
}

std::string SetStore::restorePath(const std::string& restore_id, const std::string& backup_id,
                                  const std::string& file) const {
  if (!s3_.enabled) {
    return local_.artifactPath(backup_id, file);
  }
  return local_.dir() + "/restore/" + restore_id + "/" + file;
}

Result<std::string> SetStore::fetchForRestore(const std::string& restore_id, const std::string& backup_id,
                                              const backup::Artifact& artifact) const {
  const std::string path = restorePath(restore_id, backup_id, artifact.file);
  if (!s3_.enabled) {
    return std::string("local copy");
  }
  std::error_code ec;
  std::filesystem::create_directories(local_.dir() + "/restore/" + restore_id, ec);
  if (ec) {
    return makeError("mkdir " + local_.dir() + "/restore/" + restore_id + ": " + ec.message());
  }
  ::unlink(path.c_str());
  const std::string kept = local_.artifactPath(backup_id, artifact.file);
  if (auto reread = reReadArtifact(kept, false, "");
      reread && reread->sha256 == artifact.sha256 && reread->size == artifact.size &&
      ::link(kept.c_str(), path.c_str()) == 0) {
    return std::string("the kept local copy (sha256 matches the catalog)");
  }
  LEVEE_ASSIGN_OR_RETURN(auto store, s3Store());
  LEVEE_RETURN_IF_ERROR(store.download(backup_id, artifact, path));
  return "downloaded from " + store.location() + "sets/" + backup_id + "/" + artifact.file + " (sha256 checked)";
}

void SetStore::cleanupRestore(const std::string& restore_id) const {
  if (s3_.enabled) {
    std::error_code ec;
    std::filesystem::remove_all(local_.dir() + "/restore/" + restore_id, ec);
  }
}

}  // namespace levee::companion::storage
