#pragma once
// Pure pieces of WAL archiving (companion/wal/README.md): segment file names and the achieved-RPO
// estimate. No I/O, unit-tested in wal_math_test.cc.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace levee::companion::wal {

inline constexpr uint64_t kDefaultSegmentSize = 16ull * 1024 * 1024;  // wal_segment_size

// "000000010000000A000000FF": timeline, then the segment number split in "log" and "seg" parts
// of 0x100000000 / segment_size segments each (PostgreSQL's XLogFileName).
std::string segmentName(uint32_t timeline, uint64_t lsn, uint64_t segment_size = kDefaultSegmentSize);

struct SegmentId {
  uint32_t timeline{0};
  uint64_t segno{0};  // lsn / segment_size
  bool partial{false};  // "<name>.partial": the segment pg_receivewal is writing
  bool operator==(const SegmentId&) const = default;
};
// A WAL segment file name (24 hex digits, optionally ".partial"); nullopt for anything else
// (history files, pg_receivewal.log, temporary files).
std::optional<SegmentId> parseSegmentName(std::string_view name, uint64_t segment_size = kDefaultSegmentSize);

// WAL retention: the segment files (complete or .partial, any timeline) that no kept base backup
// needs, i.e. those before `keep_from_segno` (the start segment of the oldest base backup kept).
// History files and anything else stay.
std::vector<std::string> prunableSegments(const std::vector<std::string>& names, uint64_t keep_from_segno,
                                          uint64_t segment_size = kDefaultSegmentSize);

// The achieved recovery point objective, from periodic samples of the primary's WAL position
// and of the archive's durable (flushed) position:
//   - caught up (archive >= the primary's latest sampled position): 0;
//   - otherwise: now - t*, where t* is when the primary's position was where the archive is now,
//     interpolated linearly between the two samples around it. Everything the primary had written
//     at t* is in the archive, so losing the primary now loses at most the writes of the last
//     now - t* seconds.
//   - the archive is behind every kept sample: now - the oldest sample (a lower bound).
// Times are seconds on any monotonic scale. Samples older than `keep_seconds` are dropped.
class RpoEstimator {
public:
  explicit RpoEstimator(double keep_seconds = 3600) : keep_(keep_seconds) {}
  void addPrimarySample(double t, uint64_t primary_lsn);
  double rpoSeconds(double now, uint64_t archived_lsn) const;
  bool empty() const { return samples_.empty(); }

private:
  struct Sample {
    double t;
    uint64_t lsn;
  };
  double keep_;
  std::deque<Sample> samples_;
};

}  // namespace levee::companion::wal
