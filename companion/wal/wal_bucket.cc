#include "companion/wal/wal_bucket.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "companion/storage/local_store.h"
#include "companion/storage/s3_store.h"

namespace levee::companion::wal {
namespace {

std::vector<std::string> dirNames(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return names;
}

// The whole file, read at once: the .partial changes while pg_receivewal writes, so the bytes
// hashed for the signature must be the bytes sent.
Result<std::string> readWhole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return makeError("open " + path + ": " + std::strerror(errno));
  }
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    out.reserve(static_cast<size_t>(st.st_size));
  }
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  const int err = errno;
  ::close(fd);
  if (n < 0) {
    return makeError("read " + path + ": " + std::strerror(err));
  }
  return out;
}

}  // namespace

Status WalBucket::ensureClient() {
  if (!client_) {
    LEVEE_ASSIGN_OR_RETURN(auto settings, storage::resolveS3Settings(config_));
    client_.emplace(std::move(settings));
  }
  return {};
}

Result<std::vector<storage::S3Object>> WalBucket::listWal() {
  LEVEE_RETURN_IF_ERROR(ensureClient());
  const std::string under = key("");
  LEVEE_ASSIGN_OR_RETURN(auto objects, client_->list(under));
  std::erase_if(objects, [&](const storage::S3Object& o) { return !o.key.starts_with(under); });
  for (auto& o : objects) {
    o.key.erase(0, under.size());
  }
  return objects;
}

Status WalBucket::uploadFile(const std::string& dir, const std::string& name, PassResult& out) {
  const std::string path = dir + "/" + name;
  auto local = storage::reReadArtifact(path, false, "");
  if (!local) {
    return makeError("read " + path + ": " + local.error().message);
  }
  const std::string k = key(name);
  LEVEE_ASSIGN_OR_RETURN(auto sent, client_->putFile(k, path, local->sha256));
  LEVEE_ASSIGN_OR_RETURN(auto head, client_->head(k));
  if (sent.bytes != local->size || !head.exists || head.size != local->size) {
    return makeError("upload of " + name + ": sent " + std::to_string(sent.bytes) + " bytes, HEAD reports " +
                     (head.exists ? std::to_string(head.size) + " bytes" : std::string("no object")) +
                     ", the file has " + std::to_string(local->size));
  }
  uploaded_.insert(name);
  out.added.push_back(name);
  ++out.uploaded;
  out.bytes += local->size;
  if (partial_name_ == name + ".partial") {  // superseded by the complete segment
    (void)client_->remove(key(partial_name_));
    partial_name_.clear();
  }
  return {};
}

Status WalBucket::uploadSnapshot(const std::string& dir, const std::string& name, uint64_t archived_lsn,
                                 PassResult& out) {
  auto id = parseSegmentName(name);
  LEVEE_ASSIGN_OR_RETURN(std::string bytes, readWhole(dir + "/" + name));
  const std::string k = key(name);
  LEVEE_RETURN_IF_ERROR(client_->putString(k, bytes));
  LEVEE_ASSIGN_OR_RETURN(auto head, client_->head(k));
  if (!head.exists || head.size != bytes.size()) {
    return makeError("upload of " + name + ": HEAD reports " +
                     (head.exists ? std::to_string(head.size) + " bytes" : std::string("no object")) + ", sent " +
                     std::to_string(bytes.size()));
  }
  if (!partial_name_.empty() && partial_name_ != name) {
    (void)client_->remove(key(partial_name_));  // an older snapshot
  }
  partial_name_ = name;
  partial_ = PartialSnapshot{id->segno, archived_lsn};
  ++out.uploaded;
  out.snapshot_uploaded = true;
  out.bytes += bytes.size();
  return {};
}

void WalBucket::prune(uint64_t before, PassResult& out) {
  auto objects = listWal();
  if (!objects) {
    out.error = "WAL retention: list " + location() + ": " + objects.error().message;
    return;
  }
  std::vector<std::string> names;
  for (const auto& o : *objects) {
    names.push_back(o.key);
  }
  for (const auto& name : prunableSegments(names, before)) {
    if (auto st = client_->remove(key(name)); !st) {
      out.error = "WAL retention: delete " + key(name) + ": " + st.error().message;
      return;
    }
    uploaded_.erase(name);
    if (name == partial_name_) {
      partial_name_.clear();
      partial_.reset();
    }
    out.removed.push_back(name);
  }
}

void WalBucket::pass(const PassInput& in, PassResult& out) {
  passSteps(in, out);
  out.partial = partial_name_.empty() ? std::nullopt : partial_;
}

void WalBucket::passSteps(const PassInput& in, PassResult& out) {
  if (auto st = ensureClient(); !st) {
    out.error = st.error().message;
    return;
  }
  if (!listed_) {
    auto objects = listWal();
    if (!objects) {
      out.error = "list " + location() + ": " + objects.error().message;
      return;
    }
    for (const auto& o : *objects) {
      auto id = parseSegmentName(o.key);
      if ((id && !id->partial) || isHistoryFileName(o.key)) {
        uploaded_.insert(o.key);
        out.added.push_back(o.key);
      }
    }
    listed_ = true;
  }
  const std::vector<std::string> names = dirNames(in.dir);
  const std::vector<std::string> pending = pendingUploads(names, uploaded_);
  out.pending = pending.size();
  for (const auto& name : pending) {
    if (auto st = uploadFile(in.dir, name, out); !st) {
      ++out.failed;
      out.error = st.error().message;
      return;  // in order: nothing newer goes up before this one
    }
    --out.pending;
    if (!in.keep_local && !isHistoryFileName(name) && ::unlink((in.dir + "/" + name).c_str()) == 0) {
      ++out.removed_local;
    }
  }
  if (in.snapshot_partial) {
    std::string newest;
    for (const auto& name : names) {
      if (auto id = parseSegmentName(name); id && id->partial && name > newest) {
        newest = name;
      }
    }
    const bool changed = !newest.empty() && (newest != partial_name_ || !partial_ || partial_->lsn != in.archived_lsn);
    if (changed && !uploaded_.contains(newest.substr(0, newest.size() - std::string_view(".partial").size()))) {
      if (auto st = uploadSnapshot(in.dir, newest, in.archived_lsn, out); !st) {
        ++out.failed;
        out.error = st.error().message;
        return;
      }
    }
  }
  if (in.prune_before) {
    prune(*in.prune_before, out);
  }
}

Result<WalBucket::Fetched> WalBucket::fetch(uint64_t from_segno, const std::string& to) {
  LEVEE_ASSIGN_OR_RETURN(auto objects, listWal());
  std::vector<std::string> names;
  for (const auto& o : objects) {
    names.push_back(o.key);
  }
  Fetched f;
  for (const auto& name : restoreFetchList(names, from_segno)) {
    const uint64_t size = std::ranges::find(objects, name, &storage::S3Object::key)->size;
    LEVEE_ASSIGN_OR_RETURN(auto got, client_->getToFile(key(name), to + "/" + name));
    if (got.bytes != size) {
      return makeError("download of " + key(name) + ": " + std::to_string(got.bytes) + " bytes, listed with " +
                       std::to_string(size));
    }
    ++f.files;
    f.bytes += got.bytes;
  }
  return f;
}

}  // namespace levee::companion::wal
