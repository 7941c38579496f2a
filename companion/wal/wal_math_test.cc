#include "companion/wal/wal_math.h"

#include <gtest/gtest.h>

namespace levee::companion::wal {
namespace {

TEST(WalSegmentTest, NamesMatchPostgres) {
  // SELECT pg_walfile_name('0/3000028') on timeline 1 (16 MiB segments).
  EXPECT_EQ(segmentName(1, 0x3000028), "000000010000000000000003");
  EXPECT_EQ(segmentName(1, 0x16B374D848ull), "0000000100000016000000B3");
  EXPECT_EQ(segmentName(2, 0xFFFFFFFFull), "0000000200000000000000FF");
  EXPECT_EQ(segmentName(1, 0x100000000ull), "000000010000000100000000");
  // 1 GiB segments: 4 per "log" file.
  EXPECT_EQ(segmentName(1, 0x1C0000000ull, 1ull << 30), "000000010000000100000003");
}

TEST(WalSegmentTest, ParseRoundTrip) {
  auto id = parseSegmentName("0000000100000016000000B3");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, (SegmentId{1, 0x16B3, false}));
  EXPECT_EQ(segmentName(id->timeline, id->segno * kDefaultSegmentSize), "0000000100000016000000B3");
  auto partial = parseSegmentName("000000010000000000000003.partial");
  ASSERT_TRUE(partial.has_value());
  EXPECT_TRUE(partial->partial);
  EXPECT_EQ(partial->segno, 3u);
}

TEST(WalSegmentTest, RejectsOtherFiles) {
  EXPECT_FALSE(parseSegmentName("00000002.history"));
  EXPECT_FALSE(parseSegmentName("pg_receivewal.log"));
  EXPECT_FALSE(parseSegmentName("000000010000000000000003.partial.tmp"));
  EXPECT_FALSE(parseSegmentName("00000001000000000000000g"));
  EXPECT_FALSE(parseSegmentName("0000000100000000000000000"));
  EXPECT_FALSE(parseSegmentName("000000000000000000000003"));  // timeline 0
  EXPECT_FALSE(parseSegmentName("000000010000000000000100"));  // seg part beyond 0xFF
  EXPECT_FALSE(parseSegmentName("000000010000000000000003.PARTIAL"));
}

TEST(WalSegmentTest, PrunesOnlySegmentsBeforeTheOldestBase) {
  const std::vector<std::string> names{"000000010000000000000001", "000000010000000000000002.partial",
                                       "000000010000000000000003", "000000020000000000000003",
                                       "000000020000000000000004.partial", "00000002.history",
                                       "pg_receivewal.log"};
  EXPECT_EQ(prunableSegments(names, 3),
            (std::vector<std::string>{"000000010000000000000001", "000000010000000000000002.partial"}));
  EXPECT_TRUE(prunableSegments(names, 0).empty());
  EXPECT_EQ(prunableSegments(names, 100).size(), 5u);  // never the history file or the log
}

TEST(RpoEstimatorTest, CaughtUpIsZero) {
  RpoEstimator r;
  EXPECT_EQ(r.rpoSeconds(10, 0), 0);  // no sample yet
  r.addPrimarySample(1, 1000);
  EXPECT_EQ(r.rpoSeconds(5, 1000), 0);
  EXPECT_EQ(r.rpoSeconds(5, 2000), 0);
}

TEST(RpoEstimatorTest, InterpolatesBetweenSamples) {
  RpoEstimator r;
  r.addPrimarySample(10, 1000);
  r.addPrimarySample(11, 2000);
  r.addPrimarySample(12, 3000);
  // The primary was at 2500 at t = 11.5.
  EXPECT_DOUBLE_EQ(r.rpoSeconds(12, 2500), 0.5);
  EXPECT_DOUBLE_EQ(r.rpoSeconds(14, 2000), 3.0);
  EXPECT_DOUBLE_EQ(r.rpoSeconds(12, 1000), 2.0);
  // Behind every sample: at least the whole history.
  EXPECT_DOUBLE_EQ(r.rpoSeconds(12, 10), 2.0);
}

TEST(RpoEstimatorTest, IdlePrimaryKeepsLastSeenTime) {
  RpoEstimator r;
  r.addPrimarySample(0, 1000);
  for (int t = 1; t <= 100; ++t) {
    r.addPrimarySample(t, 1000);  // idle for 100 s
  }
  r.addPrimarySample(101, 2000);
  // The position left 1000 after t = 100, not after t = 0.
  EXPECT_DOUBLE_EQ(r.rpoSeconds(101, 1000), 1.0);
  EXPECT_DOUBLE_EQ(r.rpoSeconds(101, 1500), 0.5);
}

TEST(RpoEstimatorTest, DropsOldSamplesAndRestartsOnLowerPosition) {
  RpoEstimator r(10);
  for (int t = 0; t <= 100; ++t) {
    r.addPrimarySample(t, 1000 + static_cast<uint64_t>(t) * 100);
  }
  EXPECT_DOUBLE_EQ(r.rpoSeconds(100, 0), 10.0);  // only the last 10 s are kept: a lower bound
  r.addPrimarySample(101, 50);  // a new primary behind the old one
  EXPECT_EQ(r.rpoSeconds(101, 50), 0);
  EXPECT_DOUBLE_EQ(r.rpoSeconds(103, 10), 2.0);
}

TEST(WalBucketTest, PendingUploadsAreCompleteSegmentsAndHistoryInOrder) {
  const std::vector<std::string> names{"000000010000000000000005", "pg_receivewal.log", "00000002.history",
                                       "000000010000000000000003", "000000020000000000000006.partial",
                                       "000000010000000000000004", "0000000A.history.tmp", ".snapshot"};
  EXPECT_EQ(pendingUploads(names, {}),
            (std::vector<std::string>{"000000010000000000000003", "000000010000000000000004",
                                      "000000010000000000000005", "00000002.history"}));
  EXPECT_EQ(pendingUploads(names, {"000000010000000000000003", "00000002.history"}),
            (std::vector<std::string>{"000000010000000000000004", "000000010000000000000005"}));
  EXPECT_TRUE(isHistoryFileName("0000000A.history"));
  EXPECT_FALSE(isHistoryFileName("0000000a.history"));
  EXPECT_FALSE(isHistoryFileName("000000A.history"));
}

TEST(WalBucketTest, PositionIsTheNewestCompleteSegmentOrTheSnapshot) {
  constexpr uint64_t kSeg = kDefaultSegmentSize;
  EXPECT_EQ(bucketPosition({}, std::nullopt), 0u);
  const std::set<std::string> up{"000000010000000000000003", "000000010000000000000004", "00000002.history"};
  EXPECT_EQ(bucketPosition(up, std::nullopt), 5 * kSeg);
  // The snapshot of segment 5, read when the archive held 5 * kSeg + 100.
  EXPECT_EQ(bucketPosition(up, PartialSnapshot{5, 5 * kSeg + 100}), 5 * kSeg + 100);
  // An older snapshot does not move the position back.
  EXPECT_EQ(bucketPosition(up, PartialSnapshot{4, 4 * kSeg + 100}), 5 * kSeg);
  // The flush position sampled before the read lagged behind the snapshot's segment: the
  // segment's start at least (the earlier segments are complete); never past its end.
  EXPECT_EQ(bucketPosition({}, PartialSnapshot{7, 6 * kSeg}), 7 * kSeg);
  EXPECT_EQ(bucketPosition({}, PartialSnapshot{7, 9 * kSeg}), 8 * kSeg);
}

TEST(WalBucketTest, CoversABackupsRange) {
  constexpr uint64_t kSeg = kDefaultSegmentSize;
  const std::set<std::string> up{"000000010000000000000003", "000000010000000000000004"};
  EXPECT_TRUE(bucketCovers(up, std::nullopt, 1, 3 * kSeg + 40, 4 * kSeg + 900));
  EXPECT_FALSE(bucketCovers(up, std::nullopt, 2, 3 * kSeg + 40, 4 * kSeg + 900));  // another timeline
  EXPECT_FALSE(bucketCovers(up, std::nullopt, 1, 2 * kSeg, 4 * kSeg));             // 2 is missing
  // The end is in segment 5, the one pg_receivewal still writes: its snapshot must reach the end.
  EXPECT_FALSE(bucketCovers(up, std::nullopt, 1, 3 * kSeg, 5 * kSeg + 10));
  EXPECT_FALSE(bucketCovers(up, PartialSnapshot{5, 5 * kSeg + 9}, 1, 3 * kSeg, 5 * kSeg + 10));
  EXPECT_TRUE(bucketCovers(up, PartialSnapshot{5, 5 * kSeg + 10}, 1, 3 * kSeg, 5 * kSeg + 10));
  // A snapshot only stands for the last segment.
  EXPECT_FALSE(bucketCovers({"000000010000000000000004"}, PartialSnapshot{3, 4 * kSeg}, 1, 3 * kSeg, 4 * kSeg));
  EXPECT_FALSE(bucketCovers(up, std::nullopt, 1, 4 * kSeg, 3 * kSeg));
}

TEST(WalBucketTest, RestoreFetchesFromTheBaseBackupsSegmentOn) {
  const std::vector<std::string> names{"000000010000000000000005", "000000010000000000000002", "00000002.history",
                                       "000000020000000000000006.partial", "000000010000000000000004",
                                       "catalog.json"};
  EXPECT_EQ(restoreFetchList(names, 4),
            (std::vector<std::string>{"000000010000000000000004", "000000010000000000000005",
                                      "00000002.history",  // before the segments of its timeline
                                      "000000020000000000000006.partial"}));
}

}  // namespace
}  // namespace levee::companion::wal
