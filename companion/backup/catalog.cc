#include "companion/backup/catalog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "companion/json_value.h"
#include "proxy/common/json.h"

namespace levee::companion::backup {

uint64_t CatalogEntry::totalSize() const {
  uint64_t total = 0;
  for (const auto& a : artifacts) {
    total += a.size;
  }
  return total;
}

bool CatalogEntry::hasTag(std::string_view tag) const {
  return std::ranges::find(tags, tag) != tags.end();
}

std::string isoTime(int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_seconds t{seconds(unix_seconds)};
  const sys_days d = floor<days>(t);
  const year_month_day ymd(d);
  const hh_mm_ss<seconds> hms(t - d);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

bool isValidId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::ranges::all_of(id, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string encodeEntry(const CatalogEntry& e) {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("id").value(e.id).key("type").value(e.type).key("state").value("verified");
  w.key("trigger").value(e.trigger);
  w.key("started_at").value(e.started_at).key("finished_at").value(e.finished_at);
  w.key("started").value(isoTime(e.started_at)).key("finished").value(isoTime(e.finished_at));
  w.key("size").value(e.totalSize());
  w.key("tags").beginArray();
  for (const auto& t : e.tags) {
    w.value(t);
  }
  w.endArray();
  w.key("tool_versions").beginObject();
  for (const auto& [k, v] : e.tool_versions) {
    w.key(k).value(v);
  }
  w.endObject();
  if (!e.base_backup.empty()) {
    w.key("base_backup").beginObject();
    for (const auto& [k, v] : e.base_backup) {
      w.key(k).value(v);
    }
    w.endObject();
  }
  w.key("artifacts").beginArray();
  for (const auto& a : e.artifacts) {
    w.beginObject();
    w.key("target").value(a.target).key("kind").value(a.kind).key("file").value(a.file);
    w.key("format").value(a.format).key("size").value(a.size).key("raw_size").value(a.raw_size);
    w.key("sha256").value(a.sha256).key("verified").value(a.verified);
    if (!a.row_counts.empty()) {
      w.key("row_counts").beginObject();
      for (const auto& [t, n] : a.row_counts) {
        w.key(t).value(n);
      }
      w.endObject();
    }
    if (!a.counts.empty()) {
      w.key("counts").beginObject();
      for (const auto& [k, n] : a.counts) {
        w.key(k).value(n);
      }
      w.endObject();
    }
    w.endObject();
  }
  w.endArray();
  w.endObject();
  return out;
}

Result<CatalogEntry> decodeEntry(std::string_view text) {
  LEVEE_ASSIGN_OR_RETURN(JsonValue v, JsonValue::parse(text));
  if (!v.isObject()) {
    return makeError("catalog entry is not a JSON object");
  }
  CatalogEntry e;
  e.id = v.getString("id");
  e.type = v.getString("type");
  e.trigger = v.getString("trigger");
  e.started_at = static_cast<int64_t>(v.getNumber("started_at"));
  e.finished_at = static_cast<int64_t>(v.getNumber("finished_at"));
  if (!isValidId(e.id) || e.type.empty()) {
    return makeError("catalog entry without a valid id and type");
  }
  if (const JsonValue* tags = v.find("tags"); tags != nullptr && tags->isArray()) {
    for (const auto& t : tags->items()) {
      if (t.isString()) {
        e.tags.push_back(t.asString());
      }
    }
  }
  if (const JsonValue* tv = v.find("tool_versions"); tv != nullptr && tv->isObject()) {
    for (const auto& [k, val] : tv->members()) {
      if (val.isString()) {
        e.tool_versions[k] = val.asString();
      }
    }
  }
  if (const JsonValue* bb = v.find("base_backup"); bb != nullptr && bb->isObject()) {
    for (const auto& [k, val] : bb->members()) {
      if (val.isString()) {
        e.base_backup[k] = val.asString();
      }
    }
  }
  const JsonValue* arts = v.find("artifacts");
  if (arts == nullptr || !arts->isArray()) {
    return makeError("catalog entry without artifacts");
  }
  for (const auto& av : arts->items()) {
    Artifact a;
    a.target = av.getString("target");
    a.kind = av.getString("kind");
    a.file = av.getString("file");
    a.format = av.getString("format");
    a.size = av.getUint("size");
    a.raw_size = av.getUint("raw_size");
    a.sha256 = av.getString("sha256");
    a.verified = av.getString("verified");
    if (const JsonValue* rc = av.find("row_counts"); rc != nullptr && rc->isObject()) {
      for (const auto& [t, n] : rc->members()) {
        a.row_counts[t] = n.isNumber() ? static_cast<uint64_t>(n.asNumber()) : 0;
      }
    }
    if (const JsonValue* c = av.find("counts"); c != nullptr && c->isObject()) {
      for (const auto& [k, n] : c->members()) {
        a.counts[k] = n.isNumber() ? static_cast<uint64_t>(n.asNumber()) : 0;
      }
    }
    if (a.file.empty() || a.file.find('/') != std::string::npos || a.file.starts_with(".")) {
      return makeError("catalog entry with an invalid artifact file name");
    }
    e.artifacts.push_back(std::move(a));
  }
  return e;
}

}  // namespace levee::companion::backup
