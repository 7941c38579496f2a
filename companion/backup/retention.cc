#include "companion/backup/retention.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

namespace levee::companion::backup {
namespace {

using namespace std::chrono;

constexpr std::string_view kTiers[] = {"daily", "weekly", "monthly"};

sys_days dayOf(int64_t t) { return floor<days>(sys_seconds(seconds(t))); }

// Monday of the ISO week.
sys_days weekStart(int64_t t) {
  const sys_days d = dayOf(t);
  const unsigned iso = weekday(d).iso_encoding();  // Monday = 1
  return d - days(iso - 1);
}

year_month monthOf(int64_t t) {
  year_month_day ymd(dayOf(t));
  return ymd.year() / ymd.month();
}

// Entries of `type`, newest first.
std::vector<const CatalogEntry*> newestFirst(const std::vector<CatalogEntry>& entries,
                                             const std::string& type) {
  std::vector<const CatalogEntry*> out;
  for (const auto& e : entries) {
    if (e.type == type) {
      out.push_back(&e);
    }
  }
  std::ranges::sort(out, [](const CatalogEntry* a, const CatalogEntry* b) {
    return std::tie(a->finished_at, a->id) > std::tie(b->finished_at, b->id);
  });
  return out;
}

}  // namespace

std::vector<std::string> tagsFor(const std::vector<CatalogEntry>& existing, const std::string& type,
                                 int64_t finished_at) {
  bool first_of_week = true;
  bool first_of_month = true;
  for (const auto& e : existing) {
    if (e.type != type) {
      continue;
    }
    first_of_week = first_of_week && weekStart(e.finished_at) != weekStart(finished_at);
    first_of_month = first_of_month && monthOf(e.finished_at) != monthOf(finished_at);
  }
  std::vector<std::string> tags{"daily"};
  if (first_of_week) {
    tags.emplace_back("weekly");
  }
  if (first_of_month) {
    tags.emplace_back("monthly");
  }
  return tags;
}

std::vector<std::string> expiredIds(const std::vector<CatalogEntry>& entries,
                                    const RetentionPolicy& policy) {
  std::set<std::string> types;
  for (const auto& e : entries) {
    types.insert(e.type);
  }
  std::vector<std::string> out;
  for (const auto& type : types) {
    const auto sorted = newestFirst(entries, type);
    std::set<std::string> keep;
    for (std::string_view tier : kTiers) {
      const uint32_t limit = tier == "daily" ? policy.daily : tier == "weekly" ? policy.weekly : policy.monthly;
      uint32_t seen = 0;
      for (const CatalogEntry* e : sorted) {
        if (e->hasTag(tier) && seen < std::max<uint32_t>(limit, 1)) {
          keep.insert(e->id);
          ++seen;
        }
      }
    }
    for (const CatalogEntry* e : sorted) {
      if (!keep.contains(e->id)) {
        out.push_back(e->id);
      }
    }
  }
  return out;
}

std::string protectedTier(const std::vector<CatalogEntry>& entries, const std::string& id) {
  auto it = std::ranges::find_if(entries, [&](const CatalogEntry& e) { return e.id == id; });
  if (it == entries.end()) {
    return {};
  }
  const auto sorted = newestFirst(entries, it->type);
  for (std::string_view tier : kTiers) {
    for (const CatalogEntry* e : sorted) {
      if (e->hasTag(tier)) {
        if (e->id == id) {
          return std::string(tier);
        }
        break;
      }
    }
  }
  return {};
}

}  // namespace levee::companion::backup
