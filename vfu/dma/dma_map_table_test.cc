#include "vfu/dma/dma_map_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/dma/dma_test_util.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::vfu::testing::ClientMemory;
using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;
using ::vfu::testing::kRead;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::kWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::StatusIs;
using ::vfu::testing::UnmapAllRequest;
using ::vfu::testing::UnmapRequest;

constexpr uint64_t kPage = 4096;

absl::StatusOr<DmaRange> MapFdLess(DmaMapTable& table, uint64_t iova, uint64_t size,
                                   uint32_t flags = kReadWrite) {
  return table.Map(MapRequest(iova, size, flags), UniqueFd());
}

// A mapping with an fd is mmapped: Translate's host pointer reaches the
// file at the mapping's offset.
TEST(DmaMapTableTest, FdBackedMappingPointsIntoTheFileAtItsOffset) {
  ClientMemory memory(4 * kPage);
  DmaMapTable table;
  ASSERT_OK_AND_ASSIGN(
      DmaRange range,
      table.Map(MapRequest(0x100000, 2 * kPage, kReadWrite, 2 * kPage), memory.Fd()));
  EXPECT_EQ(range,
            (DmaRange{.iova = 0x100000, .size = 2 * kPage, .flags = kReadWrite, .mapped = true}));
  ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(0x100010, 4, DmaDirection::kWrite));
  ASSERT_EQ(list.segments().size(), 1u);
  ASSERT_NE(list.segments()[0].host, nullptr);
  std::memcpy(list.segments()[0].host, "abcd", 4);
  EXPECT_EQ(std::memcmp(memory.at(2 * kPage + 0x10), "abcd", 4), 0);
  EXPECT_EQ(table.size(), 1u);
}

// An fd-less mapping has no host memory: its segments say so with nullptr.
TEST(DmaMapTableTest, FdLessMappingHasNoHostMemory) {
  DmaMapTable table;
  ASSERT_OK_AND_ASSIGN(DmaRange range, MapFdLess(table, 0x200000, kPage));
  EXPECT_FALSE(range.mapped);
  ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(0x200100, 16, DmaDirection::kRead));
  ASSERT_EQ(list.segments().size(), 1u);
  EXPECT_EQ(list.segments()[0].iova, 0x200100u);
  EXPECT_EQ(list.segments()[0].length, 16u);
  EXPECT_EQ(list.segments()[0].host, nullptr);
}

// Row 24: flag bits other than READ and WRITE, and a mapping allowing
// neither, are EINVAL.
TEST(DmaMapTableTest, MapRejectsBadFlags) {
  DmaMapTable table;
  EXPECT_THAT(MapFdLess(table, 0, kPage, kReadWrite | 4), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0, kPage, 1u << 31), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0, kPage, 0), FailsWithErrno(EINVAL));
  EXPECT_EQ(table.size(), 0u);
}

// Row 25: size 0 and a range that wraps (or ends exactly at 2^64) are EINVAL.
TEST(DmaMapTableTest, MapRejectsEmptyAndWrappingRanges) {
  DmaMapTable table;
  EXPECT_THAT(MapFdLess(table, 0x1000, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0xfffffffffffff000, 2 * kPage), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0xfffffffffffff000, kPage), FailsWithErrno(EINVAL));
  ClientMemory memory(kPage);
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kReadWrite, 0xfffffffffffff000), memory.Fd()),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0xffffffffffffe000, kPage), IsOk());
}

// Row 25: addr, size and (with an fd) offset must be multiples of the
// smallest advertised page size.
TEST(DmaMapTableTest, MapRejectsMisalignment) {
  ClientMemory memory(16 * kPage);
  DmaMapTable table;
  EXPECT_THAT(MapFdLess(table, 0x1800, kPage), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0x1000, kPage + 1), FailsWithErrno(EINVAL));
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kReadWrite, 0x200), memory.Fd()),
              FailsWithErrno(EINVAL));

  // pgsizes 64 KiB | 2 MiB: 4 KiB alignment is no longer enough.
  table.set_limits(DmaMapLimits{.page_sizes = (uint64_t{1} << 16) | (uint64_t{1} << 21)});
  EXPECT_THAT(MapFdLess(table, 0x1000, 0x10000), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0x10000, 0x1000), FailsWithErrno(EINVAL));
  EXPECT_THAT(MapFdLess(table, 0x10000, 0x10000), IsOk());
  EXPECT_EQ(table.size(), 1u);
}

// Row 23: any overlap with an existing mapping is EEXIST (the
// specification's errno); touching ranges are fine.
TEST(DmaMapTableTest, MapRejectsOverlapWithEexist) {
  DmaMapTable table;
  ASSERT_THAT(MapFdLess(table, 0x10000, 4 * kPage), IsOk());
  EXPECT_THAT(MapFdLess(table, 0x10000, 4 * kPage), FailsWithErrno(EEXIST));  // same
  EXPECT_THAT(MapFdLess(table, 0xf000, 2 * kPage), FailsWithErrno(EEXIST));   // head
  EXPECT_THAT(MapFdLess(table, 0x13000, 2 * kPage), FailsWithErrno(EEXIST));  // tail
  EXPECT_THAT(MapFdLess(table, 0x11000, kPage), FailsWithErrno(EEXIST));      // inside
  EXPECT_THAT(MapFdLess(table, 0x0, 0x100000), FailsWithErrno(EEXIST));       // around
  EXPECT_THAT(MapFdLess(table, 0xf000, kPage), IsOk());                       // before
  EXPECT_THAT(MapFdLess(table, 0x14000, kPage), IsOk());                      // after
  EXPECT_EQ(table.size(), 3u);
}

// Row 26: one mapping beyond max_maps is EINVAL; unmapping frees a slot.
TEST(DmaMapTableTest, MapEnforcesMaxMaps) {
  DmaMapTable table(DmaMapLimits{.max_maps = 2});
  ASSERT_THAT(MapFdLess(table, 0x1000, kPage), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x2000, kPage), IsOk());
  EXPECT_THAT(MapFdLess(table, 0x3000, kPage), FailsWithErrno(EINVAL));
  ASSERT_THAT(table.Unmap(UnmapRequest(0x1000, kPage), nullptr), IsOk());
  EXPECT_THAT(MapFdLess(table, 0x3000, kPage), IsOk());
  EXPECT_EQ(table.size(), 2u);
}

// Row 26: a single mapping above max_map_size is ENOSPC.
TEST(DmaMapTableTest, MapRejectsOversizeWithEnospc) {
  DmaMapTable table;
  EXPECT_THAT(MapFdLess(table, 0, (uint64_t{8} << 40) + kPage), FailsWithErrno(ENOSPC));
  EXPECT_THAT(MapFdLess(table, 0, uint64_t{8} << 40), IsOk());
}

// An mmap() failure is answered with mmap's errno: ENODEV for a pipe,
// EACCES for a writable mapping of a read-only descriptor.
TEST(DmaMapTableTest, MapReturnsTheErrnoOfMmap) {
  DmaMapTable table;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd write_end(pipe_fds[1]);
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kRead), UniqueFd(pipe_fds[0])),
              FailsWithErrno(ENODEV));

  ClientMemory memory(kPage);
  const std::string path = "/proc/self/fd/" + std::to_string(memory.raw_fd());
  UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(read_only.valid());
  UniqueFd read_only_copy = DuplicateFd(read_only.get());
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kReadWrite), std::move(read_only)),
              FailsWithErrno(EACCES));
  // The same descriptor is fine for a read-only mapping.
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kRead), std::move(read_only_copy)), IsOk());
  EXPECT_EQ(table.size(), 1u);
}

// A file shorter than offset + size is refused up front: touching the
// missing part would kill the server with SIGBUS.
TEST(DmaMapTableTest, MapRejectsRangePastEndOfFile) {
  ClientMemory memory(2 * kPage);
  DmaMapTable table;
  EXPECT_THAT(table.Map(MapRequest(0x1000, 2 * kPage, kReadWrite, kPage), memory.Fd()),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kReadWrite, 3 * kPage), memory.Fd()),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(table.Map(MapRequest(0x1000, kPage, kReadWrite, kPage), memory.Fd()), IsOk());
}

// Row 27: an unmap must name exactly one mapping (its addr and size);
// anything else is ENOENT and removes nothing.
TEST(DmaMapTableTest, UnmapNeedsAnExactMatch) {
  DmaMapTable table;
  EXPECT_THAT(table.Unmap(UnmapRequest(0x10000, kPage), nullptr), FailsWithErrno(ENOENT));
  ASSERT_THAT(MapFdLess(table, 0x10000, 2 * kPage), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x12000, kPage), IsOk());
  EXPECT_THAT(table.Unmap(UnmapRequest(0x10000, kPage), nullptr), FailsWithErrno(ENOENT));
  EXPECT_THAT(table.Unmap(UnmapRequest(0x11000, kPage), nullptr), FailsWithErrno(ENOENT));
  EXPECT_THAT(table.Unmap(UnmapRequest(0x10000, 3 * kPage), nullptr), FailsWithErrno(ENOENT));
  EXPECT_EQ(table.size(), 2u);
  ASSERT_OK_AND_ASSIGN(std::vector<DmaRange> removed,
                       table.Unmap(UnmapRequest(0x10000, 2 * kPage), nullptr));
  EXPECT_THAT(removed,
              ElementsAre(DmaRange{
                  .iova = 0x10000, .size = 2 * kPage, .flags = kReadWrite, .mapped = false}));
  EXPECT_EQ(table.size(), 1u);
  EXPECT_THAT(table.Translate(0x10000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
}

// Row 28: ALL with a non-zero addr or size, ALL with GET_DIRTY_BITMAP and
// unknown flag bits are EINVAL and remove nothing.
TEST(DmaMapTableTest, UnmapRejectsBadFlagCombinations) {
  DmaMapTable table;
  ASSERT_THAT(MapFdLess(table, 0x10000, kPage), IsOk());
  wire::DmaUnmapRequest all_with_addr = UnmapAllRequest();
  all_with_addr.addr = 0x10000;
  EXPECT_THAT(table.Unmap(all_with_addr, nullptr), FailsWithErrno(EINVAL));
  wire::DmaUnmapRequest all_with_size = UnmapAllRequest();
  all_with_size.size = kPage;
  EXPECT_THAT(table.Unmap(all_with_size, nullptr), FailsWithErrno(EINVAL));
  wire::DmaUnmapRequest all_with_bitmap = UnmapAllRequest();
  all_with_bitmap.flags |= wire::kDmaUnmapFlagGetDirtyBitmap;
  all_with_bitmap.bitmap = wire::DmaUnmapBitmap{.pgsize = kPage, .size = 8};
  std::vector<uint8_t> bitmap;
  EXPECT_THAT(table.Unmap(all_with_bitmap, &bitmap), FailsWithErrno(EINVAL));
  wire::DmaUnmapRequest unknown = UnmapRequest(0x10000, kPage);
  unknown.flags = 1u << 2;
  EXPECT_THAT(table.Unmap(unknown, nullptr), FailsWithErrno(EINVAL));
  EXPECT_EQ(table.size(), 1u);
}

// UNMAP ALL removes every mapping and reports each; on an empty table it
// succeeds with nothing.
TEST(DmaMapTableTest, UnmapAllFlagRemovesEverything) {
  ClientMemory memory(kPage);
  DmaMapTable table;
  ASSERT_THAT(MapFdLess(table, 0x10000, kPage, kRead), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x20000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<DmaRange> removed, table.Unmap(UnmapAllRequest(), nullptr));
  EXPECT_THAT(removed,
              UnorderedElementsAre(
                  DmaRange{.iova = 0x10000, .size = kPage, .flags = kRead, .mapped = false},
                  DmaRange{.iova = 0x20000, .size = kPage, .flags = kReadWrite, .mapped = true}));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_THAT(table.Unmap(UnmapAllRequest(), nullptr), IsOk());
}

// Disconnect: UnmapAll drops every mapping; nothing translates afterwards
// and the table accepts the next client's mappings.
TEST(DmaMapTableTest, UnmapAllDropsEverything) {
  ClientMemory memory(2 * kPage);
  DmaMapTable table;
  ASSERT_THAT(table.Map(MapRequest(0x10000, 2 * kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x20000, kPage), IsOk());
  table.UnmapAll();
  EXPECT_EQ(table.size(), 0u);
  EXPECT_THAT(table.Translate(0x10000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x20000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Map(MapRequest(0x10000, 2 * kPage, kReadWrite), memory.Fd()), IsOk());
}

// A range may run across adjacent mappings: one segment per mapping, each
// pointing at its own file offset (or nullptr when fd-less).
TEST(DmaMapTableTest, TranslateCrossesAdjacentMappings) {
  ClientMemory memory(4 * kPage);
  DmaMapTable table;
  // IOVA 0x10000 -> file page 2, 0x11000 -> file page 0, 0x12000 fd-less.
  ASSERT_THAT(table.Map(MapRequest(0x10000, kPage, kReadWrite, 2 * kPage), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x11000, kPage, kReadWrite, 0), memory.Fd()), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x12000, kPage), IsOk());

  ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(0x10ff0, 0x1020, DmaDirection::kWrite));
  ASSERT_EQ(list.segments().size(), 3u);
  EXPECT_EQ(list.length(), 0x1020u);
  EXPECT_FALSE(list.all_host());
  const auto& s = list.segments();
  EXPECT_EQ(s[0].iova, 0x10ff0u);
  EXPECT_EQ(s[0].length, 0x10u);
  EXPECT_EQ(s[1].iova, 0x11000u);
  EXPECT_EQ(s[1].length, 0x1000u);
  EXPECT_EQ(s[2].iova, 0x12000u);
  EXPECT_EQ(s[2].length, 0x10u);
  EXPECT_EQ(s[2].host, nullptr);
  s[0].host[0] = 0xa1;
  s[1].host[0] = 0xb2;
  EXPECT_EQ(*memory.at(2 * kPage + 0xff0), 0xa1);
  EXPECT_EQ(*memory.at(0), 0xb2);
}

// Any byte outside every mapping fails the whole translation with
// NotFound: before the first mapping, in a gap, past the last one, and a
// range that wraps. Length 0 resolves to nothing.
TEST(DmaMapTableTest, TranslateOfUnmappedBytesIsNotFound) {
  DmaMapTable table;
  EXPECT_THAT(table.Translate(0x10000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(MapFdLess(table, 0x10000, kPage), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x12000, kPage), IsOk());
  EXPECT_THAT(table.Translate(0xffff, 2, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x10f00, 0x200, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x10000, 0x3000, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x12fff, 2, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x11000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table.Translate(0x10000, ~uint64_t{0}, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(DmaSgList empty, table.Translate(0x5000, 0, DmaDirection::kRead));
  EXPECT_TRUE(empty.empty());
}

// Lookups stay exact with thousands of mappings (a vIOMMU client's load):
// every mapping resolves to itself, every gap to NotFound.
TEST(DmaMapTableTest, TranslateAmongThousandsOfMappings) {
  constexpr uint64_t kCount = 5000;
  DmaMapTable table;
  // Inserted out of order: odd slots first, then even ones.
  for (uint64_t parity : {1, 0}) {
    for (uint64_t i = parity; i < kCount; i += 2) {
      ASSERT_THAT(MapFdLess(table, 0x100000 + i * 2 * kPage, kPage), IsOk());
    }
  }
  EXPECT_EQ(table.size(), kCount);
  for (uint64_t i = 0; i < kCount; ++i) {
    const uint64_t iova = 0x100000 + i * 2 * kPage;
    ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(iova + 8, 16, DmaDirection::kRead));
    ASSERT_EQ(list.segments().size(), 1u);
    EXPECT_EQ(list.segments()[0].iova, iova + 8);
    EXPECT_THAT(table.Translate(iova + kPage, 1, DmaDirection::kRead),
                StatusIs(absl::StatusCode::kNotFound));
  }
}

// A mapping grants only what its flags say; one mapping without the access
// fails a range that crosses it.
TEST(DmaMapTableTest, TranslateChecksAccess) {
  DmaMapTable table;
  ASSERT_THAT(MapFdLess(table, 0x10000, kPage, kReadWrite), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x11000, kPage, kRead), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x12000, kPage, kWrite), IsOk());
  EXPECT_THAT(table.Translate(0x11000, 8, DmaDirection::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(table.Translate(0x11000, 8, DmaDirection::kRead), IsOk());
  EXPECT_THAT(table.Translate(0x12000, 8, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(table.Translate(0x12000, 8, DmaDirection::kWrite), IsOk());
  EXPECT_THAT(table.Translate(0x10ff0, 0x20, DmaDirection::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// An unmap waits for the DmaSgList that holds the mapping: the mapping
// leaves the table at once, but Unmap returns (and the memory goes) only
// after the list is released. The memory is still usable in between.
TEST(DmaMapTableTest, UnmapWaitsForHeldSgList) {
  ClientMemory memory(kPage);
  DmaMapTable table;
  ASSERT_THAT(table.Map(MapRequest(0x10000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(0x10000, kPage, DmaDirection::kWrite));

  absl::Mutex mu;
  std::vector<std::string> events;
  auto record = [&](std::string event) {
    absl::MutexLock lock(&mu);
    events.push_back(std::move(event));
  };
  absl::Notification unmap_returned;
  std::thread unmapper([&] {
    EXPECT_THAT(table.Unmap(UnmapRequest(0x10000, kPage), nullptr), IsOk());
    record("unmapped");
    unmap_returned.Notify();
  });

  // The mapping leaves the table before Unmap waits; poll for that step.
  while (table.size() != 0) std::this_thread::yield();
  EXPECT_THAT(table.Translate(0x10000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kNotFound));
  // Unmap must still be blocked. A broken one would return within
  // microseconds; this bound only gives it the chance to show that.
  EXPECT_FALSE(unmap_returned.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  // ... and the memory is still mapped: this write reaches the file.
  list.segments()[0].host[7] = 0x5a;
  EXPECT_EQ(*memory.at(7), 0x5a);

  record("released");
  list.Release();
  unmap_returned.WaitForNotification();
  unmapper.join();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(events, ElementsAre("released", "unmapped"));
}

// UnmapAll waits for every held list as well.
TEST(DmaMapTableTest, UnmapAllWaitsForHeldSgLists) {
  DmaMapTable table;
  ASSERT_THAT(MapFdLess(table, 0x10000, kPage), IsOk());
  ASSERT_THAT(MapFdLess(table, 0x11000, kPage), IsOk());
  ASSERT_OK_AND_ASSIGN(DmaSgList list, table.Translate(0x10800, kPage, DmaDirection::kRead));
  ASSERT_EQ(list.segments().size(), 2u);

  absl::Notification done;
  std::thread disconnect([&] {
    table.UnmapAll();
    done.Notify();
  });
  while (table.size() != 0) std::this_thread::yield();
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  DmaSgList moved = std::move(list);  // references move with the list
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(done.HasBeenNotified());
  moved.Release();
  done.WaitForNotification();
  disconnect.join();
}

}  // namespace
}  // namespace vfu
