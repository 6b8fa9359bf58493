#include "vfu/device/region_dirty_tracker.h"

#include <vector>

#include "gtest/gtest.h"

namespace vfu {
namespace {

constexpr uint64_t kPage = RegionDirtyTracker::kPageSize;

// Drains one pass; returns the offsets of the runs.
std::vector<uint64_t> Pass(RegionDirtyTracker& tracker, size_t max_bytes) {
  std::vector<uint64_t> offsets;
  uint64_t cursor = 0;
  while (auto run = tracker.NextDirtyRun(&cursor, max_bytes)) offsets.push_back(run->offset);
  return offsets;
}

// First pass: everything, in runs of at most max_bytes; the last page is
// cut at the region's end.
TEST(RegionDirtyTrackerTest, FirstPassSendsEveryPage) {
  std::vector<uint8_t> memory(3 * kPage + 100, 7);
  RegionDirtyTracker tracker(memory);
  EXPECT_EQ(tracker.DirtyBytes(), memory.size());
  uint64_t cursor = 0;
  auto run = tracker.NextDirtyRun(&cursor, 2 * kPage);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->offset, 0u);
  EXPECT_EQ(run->data.size(), 2 * kPage);
  run = tracker.NextDirtyRun(&cursor, 2 * kPage);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->offset, 2 * kPage);
  EXPECT_EQ(run->data.size(), kPage + 100);
  EXPECT_FALSE(tracker.NextDirtyRun(&cursor, 2 * kPage).has_value());
  EXPECT_EQ(tracker.DirtyBytes(), 0u);
}

// Only pages written since they were sent come back, with their new bytes.
TEST(RegionDirtyTrackerTest, LaterPassSendsOnlyChangedPages) {
  std::vector<uint8_t> memory(8 * kPage, 0);
  RegionDirtyTracker tracker(memory);
  Pass(tracker, 1 << 20);
  memory[5 * kPage + 9] = 1;
  memory[1 * kPage] = 2;
  memory[2 * kPage + kPage - 1] = 3;
  EXPECT_EQ(tracker.DirtyBytes(), 3 * kPage);
  uint64_t cursor = 0;
  auto run = tracker.NextDirtyRun(&cursor, 1 << 20);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->offset, kPage);  // pages 1 and 2 form one run
  ASSERT_EQ(run->data.size(), 2 * kPage);
  EXPECT_EQ(run->data[0], 2);
  EXPECT_EQ(run->data[2 * kPage - 1], 3);
  run = tracker.NextDirtyRun(&cursor, 1 << 20);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->offset, 5 * kPage);
  EXPECT_EQ(run->data[9], 1);
  EXPECT_EQ(Pass(tracker, 1 << 20), std::vector<uint64_t>{});
}

// A page written back to the bytes that were sent is clean: the tracker
// compares contents, not writes.
TEST(RegionDirtyTrackerTest, PageRestoredToSentBytesIsClean) {
  std::vector<uint8_t> memory(2 * kPage, 4);
  RegionDirtyTracker tracker(memory);
  Pass(tracker, 1 << 20);
  memory[10] = 5;
  memory[10] = 4;
  EXPECT_EQ(tracker.DirtyBytes(), 0u);
}

}  // namespace
}  // namespace vfu
