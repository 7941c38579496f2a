#include "companion/wal/pitr.h"

#include <algorithm>
#include <chrono>
#include <charconv>
#include <cstdio>

#include "companion/failover/lsn.h"
#include "companion/json_value.h"

namespace levee::companion::wal {
namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

Result<TargetTime> parseTargetTime(std::string_view s) {
  const auto bad = [&] {
    return makeError("target_time must be an RFC 3339 time with an offset, like 2026-12-02T04:10:00Z or "
                     "2026-12-02T05:10:00.25+01:00");
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, se)) {
    return bad();
  }
  size_t pos = 19;
  std::string frac;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac += s[pos++];
    }
    if (frac.empty() || frac.size() > 6) {
      return bad();
    }
  }
  int off_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
    off_minutes = 0;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return bad();
    }
    off_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
  } else {
    return bad();
  }
  using namespace std::chrono;
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 59) {
    return bad();
  }
  const int64_t day_secs = static_cast<int64_t>(sys_days(ymd).time_since_epoch().count()) * 86400;
  double unix = static_cast<double>(day_secs + h * 3600 + mi * 60 + se - off_minutes * 60);
  std::string frac6 = frac;
  frac6.resize(6, '0');
  if (!frac.empty()) {
    unix += std::stod("0." + frac);
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%s%c%02d:%02d", y, mo, d, h, mi, se,
                frac6.c_str(), off_minutes < 0 ? '-' : '+', std::abs(off_minutes) / 60, std::abs(off_minutes) % 60);
  return TargetTime{buf, unix};
}

bool isPlainPath(std::string_view path) {
  if (path.size() < 2 || path.front() != '/' || path.find("..") != std::string_view::npos) {
    return false;
  }
  return std::ranges::all_of(path, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '.' || c == '_' || c == '+' || c == '-';
  });
}

std::string restoreCommand(const std::string& archive_dir) {
  const std::string a = archive_dir + "/%f";
  return "if test -f " + a + "; then cp " + a + " %p; elif test -f " + a + ".partial; then cp " + a +
         ".partial %p; else exit 1; fi";
}

std::string recoverySettings(const std::string& archive_dir, const std::optional<TargetTime>& target) {
  std::string out = "\n# Added by levee (point-in-time restore); recovery.signal is beside this file.\n";
  out += "restore_command = '" + restoreCommand(archive_dir) + "'\n";
  if (target) {
    out += "recovery_target_time = '" + target->postgres + "'\n";
    out += "recovery_target_inclusive = true\n";
  }
  out += "recovery_target_timeline = 'latest'\n";
  out += "recovery_target_action = 'promote'\n";
  return out;
}

Result<WalRange> manifestWalRange(std::string_view manifest_json) {
  LEVEE_ASSIGN_OR_RETURN(JsonValue v, JsonValue::parse(manifest_json));
  const JsonValue* ranges = v.isObject() ? v.find("WAL-Ranges") : nullptr;
  if (ranges == nullptr || !ranges->isArray() || ranges->items().empty() || !ranges->items()[0].isObject()) {
    return makeError("backup_manifest has no WAL-Ranges");
  }
  const JsonValue& r = ranges->items()[0];
  auto start = failover::parseLsn(r.getString("Start-LSN"));
  auto end = failover::parseLsn(r.getString("End-LSN"));
  const double tli = r.getNumber("Timeline");
  if (!start || !end || *end < *start || tli < 1 || tli > 0xffffffff) {
    return makeError("backup_manifest: invalid WAL-Ranges entry");
  }
  return WalRange{static_cast<uint32_t>(tli), *start, *end};
}

}  // namespace levee::companion::wal
