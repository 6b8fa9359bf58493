// A DmaSgList held past a detach: Unmap / UnmapAll give up waiting after
// pin_release_timeout, revoke the mapping (scratch memory in place of the
// client's pages), and the late holder's accesses stay harmless until it
// lets go, when the scratch is freed.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_test_util.h"

namespace vfu {
namespace {

using ::vfu::testing::ClientMemory;
using ::vfu::testing::IsOk;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::UnmapAllRequest;
using ::vfu::testing::UnmapRequest;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kIova = 0x100000;
// Short, so the tests are quick; only a lower bound is asserted on it.
constexpr absl::Duration kTimeout = absl::Milliseconds(50);

class DmaRevokeTest : public ::testing::Test {
 protected:
  DmaRevokeTest()
      : memory_(2 * kPage),
        budget_(/*max_maps=*/16, /*max_bytes=*/uint64_t{1} << 30),
        table_(std::make_unique<DmaMapTable>(DmaMapLimits{.pin_release_timeout = kTimeout},
                                             &budget_)) {
    std::memset(memory_.at(0), 0x5a, 2 * kPage);
  }

  ClientMemory memory_;
  DmaAddressSpaceBudget budget_;
  std::unique_ptr<DmaMapTable> table_;
};

TEST_F(DmaRevokeTest, UnmapAllReturnsAndTheLateHolderSeesScratch) {
  ASSERT_THAT(table_->Map(MapRequest(kIova, 2 * kPage, kReadWrite), memory_.Fd()), IsOk());
  absl::StatusOr<DmaSgList> pin = table_->Translate(kIova, 2 * kPage, DmaDirection::kWrite);
  ASSERT_THAT(pin, IsOk());

  const absl::Time start = absl::Now();
  table_->UnmapAll();  // would never return without the bound
  EXPECT_GE(absl::Now() - start, kTimeout);
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(table_->mapped_bytes(), 0u);

  // The pin no longer reaches the client's file: its writes land in
  // scratch memory, and the client's bytes are not what it reads.
  const std::vector<uint8_t> ones(kPage, 1);
  ASSERT_THAT(pin->Write(0, ones), IsOk());
  EXPECT_EQ(*memory_.at(0), 0x5a);
  std::memset(memory_.at(kPage), 0x77, kPage);
  std::vector<uint8_t> out(kPage);
  ASSERT_THAT(pin->Read(kPage, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, std::vector<uint8_t>(kPage, 0));
  // A revoked mapping no longer reports faults: the client cannot touch
  // scratch memory, so nothing faults at all even if it shrinks its file.
  memory_.Shrink(0);
  EXPECT_THAT(pin->Read(kPage, absl::MakeSpan(out)), IsOk());

  // The scratch is still held (address space and a map entry) until the
  // last pin goes; then it is freed.
  EXPECT_EQ(budget_.maps(), 1u);
  pin->Release();
  EXPECT_EQ(budget_.maps(), 0u);
  EXPECT_EQ(budget_.bytes(), 0u);
}

TEST_F(DmaRevokeTest, UnmapOfOneMappingIsBoundedToo) {
  ASSERT_THAT(table_->Map(MapRequest(kIova, kPage, kReadWrite), memory_.Fd()), IsOk());
  ASSERT_THAT(table_->Map(MapRequest(kIova + kPage, kPage, kReadWrite, kPage), memory_.Fd()),
              IsOk());
  absl::StatusOr<DmaSgList> pin = table_->Translate(kIova, kPage, DmaDirection::kRead);
  ASSERT_THAT(pin, IsOk());
  ASSERT_THAT(table_->Unmap(UnmapRequest(kIova, kPage), nullptr), IsOk());
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(budget_.maps(), 2u);  // the revoked one still has its scratch
  std::vector<uint8_t> out(16);
  ASSERT_THAT(pin->Read(0, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, std::vector<uint8_t>(16, 0));
  pin->Release();
  EXPECT_EQ(budget_.maps(), 1u);
}

// A pin released after the table is gone: revocation keeps the mapping off
// the table (no dirty marking, no fault report), and the last release frees
// it. Under AddressSanitizer a touch of the freed table would be reported.
TEST_F(DmaRevokeTest, PinOutlivingTheTableIsHarmless) {
  ASSERT_THAT(table_->Map(MapRequest(kIova, 2 * kPage, kReadWrite), memory_.Fd()), IsOk());
  ASSERT_THAT(table_->StartLogging({.page_size = kPage, .ranges = {{kIova, 2 * kPage}}}), IsOk());
  absl::StatusOr<DmaSgList> pin = table_->Translate(kIova, 2 * kPage, DmaDirection::kWrite);
  ASSERT_THAT(pin, IsOk());
  table_.reset();
  const std::vector<uint8_t> ones(64, 1);
  ASSERT_THAT(pin->Write(0, ones), IsOk());  // marks nothing: logging died with the table
  pin->MarkAllDirty();
  pin->Release();
  EXPECT_EQ(budget_.maps(), 0u);
}

// Without a late holder nothing waits: the bound is only an upper bound.
TEST_F(DmaRevokeTest, UnmapWithoutPinsFreesAtOnce) {
  DmaMapTable table(DmaMapLimits{.pin_release_timeout = absl::Hours(1)}, &budget_);
  ASSERT_THAT(table.Map(MapRequest(kIova, kPage, kReadWrite), memory_.Fd()), IsOk());
  {
    absl::StatusOr<DmaSgList> pin = table.Translate(kIova, kPage, DmaDirection::kRead);
    ASSERT_THAT(pin, IsOk());
  }
  ASSERT_THAT(table.Unmap(UnmapAllRequest(), nullptr), IsOk());
  EXPECT_EQ(budget_.maps(), 0u);
}

}  // namespace
}  // namespace vfu
