// What bounds a client's DMA mappings: their count, their bytes of address
// space, and the process-wide budget all tables share.
#include <cerrno>
#include <cstdint>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_test_util.h"

namespace vfu {
namespace {

using ::vfu::testing::ClientMemory;
using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::UnmapRequest;

constexpr uint64_t kPage = 4096;

TEST(DmaMapLimitsTest, DefaultsStayWithinWhatTheProcessCanHold) {
  const DmaMapLimits limits;
  EXPECT_EQ(limits.max_maps, DefaultMaxDmaMaps());
  EXPECT_LT(limits.max_maps, 65530u);  // below Linux's default vm.max_map_count
  EXPECT_EQ(limits.max_total_bytes, uint64_t{16} << 40);
  EXPECT_EQ(limits.pin_release_timeout, absl::Seconds(10));
}

TEST(DmaMapLimitsTest, BytesBeyondTheClientsLimitAreEnospc) {
  ClientMemory memory(4 * kPage);
  DmaAddressSpaceBudget budget(100, uint64_t{1} << 30);
  DmaMapTable table(DmaMapLimits{.max_total_bytes = 3 * kPage}, &budget);
  ASSERT_THAT(table.Map(MapRequest(0x10000, 2 * kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_THAT(table.Map(MapRequest(0x20000, 2 * kPage, kReadWrite), memory.Fd()),
              FailsWithErrno(ENOSPC));
  // fd-less memory takes no address space here: not counted.
  EXPECT_THAT(table.Map(MapRequest(0x100000, 64 * kPage, kReadWrite), UniqueFd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x20000, kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_EQ(table.mapped_bytes(), 3 * kPage);
  // An unmap gives the bytes back.
  ASSERT_THAT(table.Unmap(UnmapRequest(0x10000, 2 * kPage), nullptr), IsOk());
  EXPECT_THAT(table.Map(MapRequest(0x30000, 2 * kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_EQ(budget.bytes(), 3 * kPage);
}

TEST(DmaMapLimitsTest, CountBeyondTheClientsLimitIsEinval) {
  ClientMemory memory(kPage);
  DmaAddressSpaceBudget budget(100, uint64_t{1} << 30);
  DmaMapTable table(DmaMapLimits{.max_maps = 2}, &budget);
  ASSERT_THAT(table.Map(MapRequest(0x10000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x20000, kPage, kReadWrite), UniqueFd()), IsOk());
  EXPECT_THAT(table.Map(MapRequest(0x30000, kPage, kReadWrite), memory.Fd()),
              FailsWithErrno(EINVAL));
  EXPECT_EQ(budget.maps(), 1u);
}

// Two clients (two tables) whose own limits would allow more than the
// process can hold share its budget.
TEST(DmaMapLimitsTest, TablesShareTheProcessBudget) {
  ClientMemory memory(4 * kPage);
  DmaAddressSpaceBudget budget(/*max_maps=*/2, /*max_bytes=*/3 * kPage);
  DmaMapTable a(DmaMapLimits{}, &budget);
  DmaMapTable b(DmaMapLimits{}, &budget);
  ASSERT_THAT(a.Map(MapRequest(0x10000, kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_THAT(b.Map(MapRequest(0x10000, 4 * kPage, kReadWrite), memory.Fd()),
              FailsWithErrno(ENOSPC));
  ASSERT_THAT(b.Map(MapRequest(0x10000, kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_THAT(b.Map(MapRequest(0x20000, kPage, kReadWrite), memory.Fd()), FailsWithErrno(EINVAL));
  EXPECT_EQ(b.size(), 1u);
  a.UnmapAll();
  EXPECT_THAT(b.Map(MapRequest(0x20000, kPage, kReadWrite), memory.Fd()), IsOk());
  EXPECT_EQ(budget.maps(), 2u);
  EXPECT_EQ(budget.bytes(), 2 * kPage);
}

// Sparse files mapped again and again: what once grew the server to 127 TiB
// of address space is now refused at the client's byte limit, without any
// of it being mapped.
TEST(DmaMapLimitsTest, SparseFilesCannotExhaustTheAddressSpace) {
  const uint64_t kHuge = uint64_t{16} << 30;  // 16 GiB, sparse
  ClientMemory memory(kPage);
  ASSERT_EQ(::ftruncate(memory.raw_fd(), static_cast<off_t>(kHuge)), 0);
  DmaAddressSpaceBudget budget(1000, uint64_t{64} << 40);
  DmaMapTable table(DmaMapLimits{.max_total_bytes = 4 * kHuge}, &budget);
  int mapped = 0;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<DmaRange> range =
        table.Map(MapRequest(uint64_t(i) * kHuge, kHuge, kReadWrite), memory.Fd());
    if (!range.ok()) {
      EXPECT_THAT(range, FailsWithErrno(ENOSPC));
      break;
    }
    ++mapped;
  }
  EXPECT_EQ(mapped, 4);
  EXPECT_EQ(budget.bytes(), 4 * kHuge);
}

}  // namespace
}  // namespace vfu
