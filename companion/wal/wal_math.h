#pragma once
// Pure pieces of WAL archiving (companion/wal/README.md): segment file names and the achieved-RPO
// estimate. No I/O, unit-tested in wal_math_test.cc.

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
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

// === the S3 copy of the archive (companion/wal/README.md "WAL in the S3 store") ===

// "00000002.history": a timeline history file (8 hex digits).
bool isHistoryFileName(std::string_view name);

// The files of the local archive that still go to the bucket, oldest first: complete segments
// and history files whose names are not in `uploaded`. (The .partial segment is uploaded as a
// snapshot on its own schedule.)
std::vector<std::string> pendingUploads(const std::vector<std::string>& names, const std::set<std::string>& uploaded,
                                        uint64_t segment_size = kDefaultSegmentSize);

// The uploaded snapshot of a .partial segment: its segment number and the archive position it
// was known to hold when it was read (the flush position sampled before the read).
struct PartialSnapshot {
  uint64_t segno{0};
  uint64_t lsn{0};
};
// The WAL position the bucket holds: the end of its newest complete segment, or the snapshot's
// position (clamped to its segment) when that is newer. 0 when the bucket holds nothing.
// Segments are uploaded in order and a failed upload stops the pass, so what is below the
// newest complete segment is there too.
uint64_t bucketPosition(const std::set<std::string>& uploaded, std::optional<PartialSnapshot> partial,
                        uint64_t segment_size = kDefaultSegmentSize);

// True when every segment of [start_lsn, end_lsn] on `timeline` is in the bucket: complete in
// `uploaded`, or the last one as the snapshot when it reaches end_lsn.
bool bucketCovers(const std::set<std::string>& uploaded, std::optional<PartialSnapshot> partial, uint32_t timeline,
                  uint64_t start_lsn, uint64_t end_lsn, uint64_t segment_size = kDefaultSegmentSize);

// The bucket's files a point-in-time restore from a base backup starting in segment
// `from_segno` needs: every segment (complete or .partial, any timeline) from there on and every
// history file, in name order.
std::vector<std::string> restoreFetchList(const std::vector<std::string>& names, uint64_t from_segno,
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
