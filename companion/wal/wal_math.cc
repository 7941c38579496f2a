#include "companion/wal/wal_math.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace levee::companion::wal {

std::string segmentName(uint32_t timeline, uint64_t lsn, uint64_t segment_size) {
  const uint64_t per_log = 0x100000000ull / segment_size;
  const uint64_t segno = lsn / segment_size;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%08X%08X%08X", timeline, static_cast<unsigned>(segno / per_log),
                static_cast<unsigned>(segno % per_log));
  return buf;
}

std::optional<SegmentId> parseSegmentName(std::string_view name, uint64_t segment_size) {
  SegmentId id;
  if (name.ends_with(".partial")) {
    id.partial = true;
    name.remove_suffix(8);
  }
  if (name.size() != 24) {
    return std::nullopt;
  }
  uint32_t parts[3];
  for (int i = 0; i < 3; ++i) {
    std::string_view hex = name.substr(static_cast<size_t>(i) * 8, 8);
    for (char c : hex) {
      if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
        return std::nullopt;
      }
    }
    std::from_chars(hex.data(), hex.data() + 8, parts[i], 16);
  }
  const uint64_t per_log = 0x100000000ull / segment_size;
  if (parts[0] == 0 || parts[2] >= per_log) {
    return std::nullopt;
  }
  id.timeline = parts[0];
  id.segno = static_cast<uint64_t>(parts[1]) * per_log + parts[2];
  return id;
}

std::vector<std::string> prunableSegments(const std::vector<std::string>& names, uint64_t keep_from_segno,
                                          uint64_t segment_size) {
  std::vector<std::string> out;
  for (const auto& name : names) {
    if (auto id = parseSegmentName(name, segment_size); id && id->segno < keep_from_segno) {
      out.push_back(name);
    }
  }
  return out;
}

bool isHistoryFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".history";
  if (name.size() != 8 + kSuffix.size() || !name.ends_with(kSuffix)) {
    return false;
  }
  return std::ranges::all_of(name.substr(0, 8), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
  });
}

std::vector<std::string> pendingUploads(const std::vector<std::string>& names, const std::set<std::string>& uploaded,
                                        uint64_t segment_size) {
  std::vector<std::string> out;
  for (const auto& name : names) {
    auto id = parseSegmentName(name, segment_size);
    if (((id && !id->partial) || isHistoryFileName(name)) && !uploaded.contains(name)) {
      out.push_back(name);
    }
  }
  std::ranges::sort(out);  // upper-case hex: name order is (timeline, segment) order
  return out;
}

uint64_t bucketPosition(const std::set<std::string>& uploaded, std::optional<PartialSnapshot> partial,
                        uint64_t segment_size) {
  uint64_t pos = 0;
  for (const auto& name : uploaded) {
    if (auto id = parseSegmentName(name, segment_size); id && !id->partial) {
      pos = std::max(pos, (id->segno + 1) * segment_size);
    }
  }
  if (partial) {
    const uint64_t begin = partial->segno * segment_size;
    pos = std::max(pos, std::clamp(partial->lsn, begin, begin + segment_size));
  }
  return pos;
}

bool bucketCovers(const std::set<std::string>& uploaded, std::optional<PartialSnapshot> partial, uint32_t timeline,
                  uint64_t start_lsn, uint64_t end_lsn, uint64_t segment_size) {
  if (end_lsn < start_lsn) {
    return false;
  }
  const uint64_t last = end_lsn / segment_size;
  for (uint64_t segno = start_lsn / segment_size; segno <= last; ++segno) {
    if (uploaded.contains(segmentName(timeline, segno * segment_size, segment_size))) {
      continue;
    }
    if (segno == last && partial && partial->segno == segno && partial->lsn >= end_lsn) {
      continue;
    }
    return false;
  }
  return true;
}

std::vector<std::string> restoreFetchList(const std::vector<std::string>& names, uint64_t from_segno,
                                          uint64_t segment_size) {
  std::vector<std::string> out;
  for (const auto& name : names) {
    auto id = parseSegmentName(name, segment_size);
    if ((id && id->segno >= from_segno) || isHistoryFileName(name)) {
      out.push_back(name);
    }
  }
  std::ranges::sort(out);
  return out;
}

void RpoEstimator::addPrimarySample(double t, uint64_t primary_lsn) {
  if (!samples_.empty() && primary_lsn < samples_.back().lsn) {
    samples_.clear();  // a different primary (failover, restore): start over
  }
  if (!samples_.empty() && primary_lsn == samples_.back().lsn && samples_.size() >= 2 &&
      samples_[samples_.size() - 2].lsn == primary_lsn) {
    samples_.back().t = t;  // idle primary: keep [first seen at, last seen at] of this position
  } else {
    samples_.push_back({t, primary_lsn});
  }
  while (samples_.size() > 2 && samples_.front().t < t - keep_) {
    samples_.pop_front();
  }
}

double RpoEstimator::rpoSeconds(double now, uint64_t archived_lsn) const {
  if (samples_.empty() || archived_lsn >= samples_.back().lsn) {
    return 0;
  }
  // The newest sample the archive has reached.
  size_t i = samples_.size();
  while (i > 0 && samples_[i - 1].lsn > archived_lsn) {
    --i;
  }
  if (i == 0) {
    return now - samples_.front().t;
  }
  const Sample& a = samples_[i - 1];  // a.lsn <= archived
  const Sample& b = samples_[i];      // b.lsn > archived
  // The position left `a.lsn` right after the last time it was seen there, and reached b.lsn by
  // b.t: archived sits in between.
  const double frac = static_cast<double>(archived_lsn - a.lsn) / static_cast<double>(b.lsn - a.lsn);
  const double t_star = a.t + (b.t - a.t) * frac;
  return now > t_star ? now - t_star : 0;
}

}  // namespace levee::companion::wal
