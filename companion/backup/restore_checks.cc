#include "companion/backup/restore_checks.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <utility>

namespace levee::companion::backup {
namespace {

std::vector<std::string_view> lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    std::string_view line = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    out.push_back(line);
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return out;
}

uint64_t toUint(std::string_view s, bool* ok = nullptr) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ok != nullptr) {
    *ok = ec == std::errc() && p == s.data() + s.size() && !s.empty();
  }
  return v;
}

// Splits off the first whitespace-separated token of `s`.
std::string_view token(std::string_view& s) {
  size_t i = s.find_first_not_of(' ');
  if (i == std::string_view::npos) {
    s = {};
    return {};
  }
  s.remove_prefix(i);
  size_t j = s.find(' ');
  std::string_view t = s.substr(0, j);
  s.remove_prefix(j == std::string_view::npos ? s.size() : j);
  return t;
}

std::unexpected<Error> sysError(std::string_view what, const std::string& path) {
  return makeError(std::string(what) + " " + path + ": " + std::strerror(errno));
}

// The names in a directory, without . and ..
Result<std::vector<std::string>> listDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    return sysError("opendir", path);
  }
  std::vector<std::string> children;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      children.emplace_back(e->d_name);
    }
  }
  ::closedir(d);
  return children;
}

Status walk(const std::string& path, TreeCounts& out, std::set<std::pair<dev_t, ino_t>>& seen) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    return sysError("lstat", path);
  }
  ++out.entries;
  if (S_ISREG(st.st_mode)) {
    if (st.st_nlink <= 1 || seen.emplace(st.st_dev, st.st_ino).second) {
      out.bytes += static_cast<uint64_t>(st.st_size);
    }
    return {};
  }
  if (!S_ISDIR(st.st_mode)) {
    return {};
  }
  LEVEE_ASSIGN_OR_RETURN(auto children, listDir(path));
  for (const auto& c : children) {
    if (auto st2 = walk(path + "/" + c, out, seen); !st2) {
      return st2;
    }
  }
  return {};
}

}  // namespace

std::map<std::string, TreeCounts> countTarListing(std::string_view listing, const std::vector<std::string>& paths) {
  std::map<std::string, TreeCounts> out;
  for (std::string_view line : lines(listing)) {
    // "-rw-r--r-- 0/0 5 2026-12-02 03:44 tmp/x/a.txt" (names may hold spaces: the rest of the line)
    std::string_view rest = line;
    const std::string_view mode = token(rest);
    token(rest);  // owner/group
    const std::string_view size = token(rest);
    token(rest);  // date
    token(rest);  // time
    const size_t name_at = rest.find_first_not_of(' ');
    if (mode.empty() || name_at == std::string_view::npos) {
      continue;
    }
    std::string_view name = rest.substr(name_at);
    if (mode[0] == 'l') {
      name = name.substr(0, name.find(" -> "));
    } else if (mode[0] == 'h') {
      name = name.substr(0, name.find(" link to "));
    }
    while (name.size() > 1 && name.back() == '/') {
      name.remove_suffix(1);
    }
    for (const std::string& p : paths) {
      const std::string_view rel = std::string_view(p).substr(1);
      if (name == rel || (name.size() > rel.size() && name.starts_with(rel) && name[rel.size()] == '/')) {
        TreeCounts& c = out[p];
        ++c.entries;
        if (mode[0] == '-') {
          c.bytes += toUint(size);
        }
        break;
      }
    }
  }
  return out;
}

Result<TreeCounts> countTree(const std::string& path) {
  TreeCounts out;
  std::set<std::pair<dev_t, ino_t>> seen;
  if (auto st = walk(path, out, seen); !st) {
    return std::unexpected(st.error());
  }
  return out;
}

Status removeTree(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status{} : Status(sysError("lstat", path));
  }
  if (S_ISDIR(st.st_mode)) {
    LEVEE_ASSIGN_OR_RETURN(auto children, listDir(path));
    for (const auto& c : children) {
      LEVEE_RETURN_IF_ERROR(removeTree(path + "/" + c));
    }
    if (::rmdir(path.c_str()) != 0) {
      return sysError("rmdir", path);
    }
    return {};
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return sysError("unlink", path);
  }
  return {};
}

std::optional<RdbCounts> parseRdbCheck(std::string_view output) {
  RdbCounts c;
  bool have_keys = false;
  for (std::string_view line : lines(output)) {
    if (!line.starts_with("[info] ")) {
      continue;
    }
    std::string_view rest = line.substr(7);
    const std::string_view number = token(rest);
    bool ok = false;
    const uint64_t n = toUint(number, &ok);
    if (!ok) {
      continue;
    }
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    if (rest == "keys read") {
      c.keys = n;
      have_keys = true;
    } else if (rest == "expires") {
      c.expires = n;
    } else if (rest == "already expired") {
      c.already_expired = n;
    }
  }
  if (!have_keys) {
    return std::nullopt;
  }
  return c;
}

std::string infoField(std::string_view info, std::string_view field) {
  for (std::string_view line : lines(info)) {
    if (line.size() > field.size() && line.starts_with(field) && line[field.size()] == ':') {
      return std::string(line.substr(field.size() + 1));
    }
  }
  return {};
}

uint64_t keyspaceKeys(std::string_view info) {
  uint64_t total = 0;
  for (std::string_view line : lines(info)) {
    // db0:keys=2,expires=1,avg_ttl=997704
    if (!line.starts_with("db")) {
      continue;
    }
    const size_t at = line.find(":keys=");
    if (at == std::string_view::npos) {
      continue;
    }
    std::string_view n = line.substr(at + 6);
    n = n.substr(0, n.find(','));
    total += toUint(n);
  }
  return total;
}

bool isLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

std::vector<std::string> archivedPaths(const std::map<std::string, uint64_t>& counts) {
  std::vector<std::string> out;
  for (const auto& [k, v] : counts) {
    if (k.starts_with("entries:/")) {
      out.push_back(k.substr(8));
    }
  }
  return out;
}

}  // namespace levee::companion::backup
