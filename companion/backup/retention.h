#pragma once
#include <cstdint>
// Retention (policy `companion.backup.retention`): each verified backup is tagged at creation,
// per backup type, with the tiers it opens: `daily` always, `weekly` when it is the first
// backup of its type in its ISO week (UTC), `monthly` when it is the first of its calendar month.
// A backup is kept while it is among the newest N of any of its tiers; the newest backup of each
// tier (of each type) is never expired and cannot be deleted through the API. Pure functions.

#include <string>
#include <vector>

#include "companion/backup/catalog.h"

namespace levee::companion::backup {

struct RetentionPolicy {
  uint32_t daily{7};
  uint32_t weekly{4};
  uint32_t monthly{12};
};

// Tags for a new backup of `type` finished at `finished_at`, given the existing catalog.
std::vector<std::string> tagsFor(const std::vector<CatalogEntry>& existing, const std::string& type,
                                 int64_t finished_at);

// Ids of entries to expire now.
std::vector<std::string> expiredIds(const std::vector<CatalogEntry>& entries,
                                    const RetentionPolicy& policy);

// The tier for which `id` is the newest backup of its type ("daily", ...), or empty when the
// backup is not protected.
std::string protectedTier(const std::vector<CatalogEntry>& entries, const std::string& id);

}  // namespace levee::companion::backup
