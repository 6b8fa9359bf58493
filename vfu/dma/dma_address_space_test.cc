#include "vfu/dma/dma_address_space.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;

TEST(DmaAddressSpaceTest, MapBudgetKeepsHeadroomForTheRestOfTheProcess) {
  EXPECT_EQ(DmaMapBudgetFor(65530), 65530u - 16382u);  // Linux's default count
  EXPECT_EQ(DmaMapBudgetFor(262144), 262144u - 65536u);
  EXPECT_EQ(DmaMapBudgetFor(2048), 1024u);  // at least 1024 kept
  EXPECT_EQ(DmaMapBudgetFor(1000), 0u);
}

TEST(DmaAddressSpaceTest, AdvertisedMapsStayWithinWhatTheProcessCanHold) {
  const uint32_t maps = DefaultMaxDmaMaps();
  EXPECT_GT(maps, 0u);
  EXPECT_LE(maps, 65535u);
  // Below the kernel's limit on mappings, whatever this machine sets.
  EXPECT_LT(maps, 65530u);
}

TEST(DmaAddressSpaceTest, CountRefusalIsEinvalAndChangesNothing) {
  DmaAddressSpaceBudget budget(/*max_maps=*/2, /*max_bytes=*/1 << 20);
  ASSERT_THAT(budget.Reserve(4096), IsOk());
  ASSERT_THAT(budget.Reserve(4096), IsOk());
  EXPECT_THAT(budget.Reserve(4096), FailsWithErrno(EINVAL));
  EXPECT_EQ(budget.maps(), 2u);
  EXPECT_EQ(budget.bytes(), 8192u);
  budget.Release(4096);
  EXPECT_THAT(budget.Reserve(4096), IsOk());
}

TEST(DmaAddressSpaceTest, ByteRefusalIsEnospcAndChangesNothing) {
  DmaAddressSpaceBudget budget(/*max_maps=*/10, /*max_bytes=*/3 * 4096);
  ASSERT_THAT(budget.Reserve(2 * 4096), IsOk());
  EXPECT_THAT(budget.Reserve(2 * 4096), FailsWithErrno(ENOSPC));
  EXPECT_THAT(budget.Reserve(~uint64_t{0}), FailsWithErrno(ENOSPC));  // no wrap-around
  EXPECT_EQ(budget.maps(), 1u);
  EXPECT_EQ(budget.bytes(), 2u * 4096);
  ASSERT_THAT(budget.Reserve(4096), IsOk());
  // Lowering the limit keeps what is reserved and refuses the rest.
  budget.set_limits(10, 4096);
  EXPECT_THAT(budget.Reserve(4096), FailsWithErrno(ENOSPC));
  budget.Release(2 * 4096);
  budget.Release(4096);
  EXPECT_EQ(budget.maps(), 0u);
  EXPECT_EQ(budget.bytes(), 0u);
}

}  // namespace
}  // namespace vfu
