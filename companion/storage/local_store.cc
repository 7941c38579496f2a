#include "companion/storage/local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "companion/json_value.h"

namespace levee::companion::storage {
namespace {

std::unexpected<Error> sysError(std::string_view what, const std::string& path) {
  return makeError(std::string(what) + " " + path + ": " + std::strerror(errno));
}

Status mkdirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return makeError("mkdir " + path + ": " + ec.message());
  }
  return {};
}

Status fsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return sysError("open", dir);
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) {
    return sysError("fsync", dir);
  }
  return {};
}

Status writeAll(int fd, const unsigned char* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sysError("write", path);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

Result<std::string> readSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return sysError("open", path);
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      ::close(fd);
      return sysError("read", path);
    }
    if (r == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(r));
    if (out.size() > 16 * 1024 * 1024) {
      ::close(fd);
      return makeError(path + ": larger than 16 MiB");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

std::string hexDigest(const unsigned char* md, unsigned len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

Status writeFileAtomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return sysError("open", tmp);
  }
  auto st = writeAll(fd, reinterpret_cast<const unsigned char*>(content.data()), content.size(), tmp);
  if (st && ::fsync(fd) != 0) {
    st = sysError("fsync", tmp);
  }
  ::close(fd);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = sysError("rename", tmp);
    ::unlink(tmp.c_str());
    return err;
  }
  return fsyncDir(std::filesystem::path(path).parent_path().string());
}

Status LocalStore::ensureLayout() const {
  LEVEE_RETURN_IF_ERROR(mkdirs(dir_ + "/sets"));
  LEVEE_RETURN_IF_ERROR(mkdirs(dir_ + "/catalog"));
  return {};
}

Result<std::string> LocalStore::createSetDir(const std::string& id) const {
  LEVEE_RETURN_IF_ERROR(ensureLayout());
  const std::string d = setDir(id);
  if (::mkdir(d.c_str(), 0750) != 0) {
    return sysError("mkdir", d);
  }
  return d;
}

Status LocalStore::writeEntry(const backup::CatalogEntry& entry) const {
  LEVEE_RETURN_IF_ERROR(ensureLayout());
  return writeFileAtomic(dir_ + "/catalog/" + entry.id + ".json", backup::encodeEntry(entry) + "\n");
}

std::vector<backup::CatalogEntry> LocalStore::loadEntries(std::vector<std::string>& problems) const {
  std::vector<backup::CatalogEntry> out;
  const std::string cat = dir_ + "/catalog";
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(cat, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.ends_with(".json")) {
      continue;
    }
    auto text = readSmallFile(it->path().string());
    if (!text) {
      problems.push_back(text.error().message);
      continue;
    }
    auto entry = backup::decodeEntry(*text);
    if (!entry) {
      problems.push_back(it->path().string() + ": " + entry.error().message);
      continue;
    }
    if (entry->id + ".json" != name) {
      problems.push_back(it->path().string() + ": id does not match the file name");
      continue;
    }
    out.push_back(std::move(*entry));
  }
  return out;
}

Status LocalStore::removeSet(const std::string& id) const {
  const std::string entry = dir_ + "/catalog/" + id + ".json";
  if (::unlink(entry.c_str()) != 0 && errno != ENOENT) {
    return sysError("unlink", entry);
  }
  (void)fsyncDir(dir_ + "/catalog");
  std::error_code ec;
  std::filesystem::remove_all(setDir(id), ec);
  if (ec) {
    return makeError("remove " + setDir(id) + ": " + ec.message());
  }
  return {};
}

std::vector<std::string> LocalStore::removeOrphans() const {
  std::vector<std::string> removed;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir_ + "/sets", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string id = it->path().filename().string();
    if (!std::filesystem::exists(dir_ + "/catalog/" + id + ".json")) {
      std::error_code rm;
      std::filesystem::remove_all(it->path(), rm);
      removed.push_back(id);
    }
  }
  return removed;
}

std::optional<int64_t> LocalStore::readLastRun() const {
  auto text = readSmallFile(dir_ + "/schedule.json");
  if (!text) {
    return std::nullopt;
  }
  auto v = JsonValue::parse(*text);
  if (!v || v->find("last_run") == nullptr) {
    return std::nullopt;
  }
  return static_cast<int64_t>(v->getNumber("last_run"));
}

Status LocalStore::writeLastRun(int64_t unix_seconds) const {
  LEVEE_RETURN_IF_ERROR(ensureLayout());
  return writeFileAtomic(dir_ + "/schedule.json",
                         "{\"last_run\":" + std::to_string(unix_seconds) + "}\n");
}

// === impl ArtifactSink ===

ArtifactSink::~ArtifactSink() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
  if (zinit_) {
    deflateEnd(&z_);
  }
  if (md_ != nullptr) {
    EVP_MD_CTX_free(md_);
  }
}

Status ArtifactSink::open(const std::string& path, bool gzip) {
  path_ = path;
  gzip_ = gzip;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    return sysError("open", path);
  }
  md_ = EVP_MD_CTX_new();
  if (md_ == nullptr || EVP_DigestInit_ex(md_, EVP_sha256(), nullptr) != 1) {
    return makeError("EVP_DigestInit_ex(sha256) failed");
  }
  if (gzip_) {
    // windowBits 15 + 16: a gzip wrapper (so `gunzip` reads the files too); level 1 for speed.
    if (deflateInit2(&z_, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return makeError("deflateInit2 failed");
    }
    zinit_ = true;
  }
  return {};
}

Status ArtifactSink::writeStored(const unsigned char* data, size_t n) {
  if (EVP_DigestUpdate(md_, data, n) != 1) {
    return makeError("EVP_DigestUpdate failed");
  }
  stored_ += n;
  return writeAll(fd_, data, n, path_);
}

Status ArtifactSink::write(const char* data, size_t n) {
  raw_ += n;
  if (!gzip_) {
    return writeStored(reinterpret_cast<const unsigned char*>(data), n);
  }
  unsigned char out[65536];
  z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  z_.avail_in = static_cast<uInt>(n);
  do {
    z_.next_out = out;
    z_.avail_out = sizeof(out);
    if (deflate(&z_, Z_NO_FLUSH) == Z_STREAM_ERROR) {
      return makeError("deflate failed");
    }
    LEVEE_RETURN_IF_ERROR(writeStored(out, sizeof(out) - z_.avail_out));
  } while (z_.avail_out == 0);
  return {};
}

Status ArtifactSink::finish() {
  if (gzip_) {
    unsigned char out[65536];
    int rc = Z_OK;
    z_.next_in = nullptr;
    z_.avail_in = 0;
    do {
      z_.next_out = out;
      z_.avail_out = sizeof(out);
      rc = deflate(&z_, Z_FINISH);
      if (rc == Z_STREAM_ERROR) {
        return makeError("deflate failed");
      }
      LEVEE_RETURN_IF_ERROR(writeStored(out, sizeof(out) - z_.avail_out));
    } while (rc != Z_STREAM_END);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_DigestFinal_ex(md_, md, &len) != 1) {
    return makeError("EVP_DigestFinal_ex failed");
  }
  sha_hex_ = hexDigest(md, len);
  if (::fsync(fd_) != 0) {
    return sysError("fsync", path_);
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    return sysError("close", path_);
  }
  return {};
}

Result<ReReadResult> reReadArtifact(const std::string& path, bool gzip, const std::string& inflate_to) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return sysError("open", path);
  }
  int out_fd = -1;
  if (!inflate_to.empty()) {
    out_fd = ::open(inflate_to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out_fd < 0) {
      ::close(fd);
      return sysError("open", inflate_to);
    }
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  z_stream z{};
  bool zinit = gzip && inflateInit2(&z, 15 + 16) == Z_OK;
  auto cleanup = [&] {
    ::close(fd);
    if (out_fd >= 0) {
      ::close(out_fd);
    }
    EVP_MD_CTX_free(md);
    if (zinit) {
      inflateEnd(&z);
    }
  };
  if (md == nullptr || EVP_DigestInit_ex(md, EVP_sha256(), nullptr) != 1 || (gzip && !zinit)) {
    cleanup();
    return makeError("digest/inflate init failed");
  }
  ReReadResult res;
  std::vector<unsigned char> buf(1 << 20);
  std::vector<unsigned char> out(1 << 20);
  bool stream_end = !gzip;
  while (true) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      auto err = sysError("read", path);
      cleanup();
      return err;
    }
    if (r == 0) {
      break;
    }
    res.size += static_cast<uint64_t>(r);
    EVP_DigestUpdate(md, buf.data(), static_cast<size_t>(r));
    if (!gzip) {
      continue;
    }
    z.next_in = buf.data();
    z.avail_in = static_cast<uInt>(r);
    while (z.avail_in > 0 && !stream_end) {
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      int rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        cleanup();
        return makeError(path + ": corrupt gzip data (" + (z.msg != nullptr ? z.msg : "inflate error") + ")");
      }
      const size_t produced = out.size() - z.avail_out;
      res.raw_size += produced;
      if (out_fd >= 0) {
        auto st = writeAll(out_fd, out.data(), produced, inflate_to);
        if (!st) {
          cleanup();
          return std::unexpected(st.error());
        }
      }
      stream_end = rc == Z_STREAM_END;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, digest, &len);
  res.sha256 = hexDigest(digest, len);
  if (!gzip) {
    res.raw_size = res.size;
  }
  cleanup();
  if (!stream_end) {
    return makeError(path + ": truncated gzip data");
  }
  return res;
}

}  // namespace levee::companion::storage
