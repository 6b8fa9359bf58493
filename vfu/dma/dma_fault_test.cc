// Client memory that faults: a file shrunk under its mapping makes every DMA
// access fail with the DMA fault status, reported to the table's fault
// handler, instead of killing the process with SIGBUS.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/dma/dma_fault.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/dma/dma_test_util.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::vfu::testing::ClientMemory;
using ::vfu::testing::FakeMessageDmaPath;
using ::vfu::testing::IsOk;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::MapRequest;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kIova = 0x100000;

// Two adjacent mappings of one memfd, the second half of which the client
// then takes away; faults are recorded.
class DmaFaultTest : public ::testing::Test {
 protected:
  DmaFaultTest() : memory_(4 * kPage), messages_(0, 0), dma_(table_, messages_) {
    table_.set_fault_handler([this](uint64_t iova, uint64_t length) {
      absl::MutexLock lock(&mu_);
      faults_.emplace_back(iova, length);
    });
    VFU_CHECK(table_.Map(MapRequest(kIova, 2 * kPage, kReadWrite), memory_.Fd()).ok(), "map");
    VFU_CHECK(table_.Map(MapRequest(kIova + 2 * kPage, 2 * kPage, kReadWrite, 2 * kPage),
                         memory_.Fd())
                  .ok(),
              "map");
    std::memset(memory_.at(0), 0x5a, 4 * kPage);
  }

  // Leaves the first page; [kIova + kPage, kIova + 4 pages) faults.
  void ShrinkClientMemory() { memory_.Shrink(kPage); }

  std::vector<std::pair<uint64_t, uint64_t>> faults() {
    absl::MutexLock lock(&mu_);
    return faults_;
  }

  ClientMemory memory_;
  DmaMapTable table_;
  FakeMessageDmaPath messages_;
  DmaMemory dma_;
  absl::Mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> faults_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DmaFaultTest, FastPathReadAndWriteReportTheFault) {
  ShrinkClientMemory();
  std::vector<uint8_t> buffer(64);
  EXPECT_EQ(table_.TryReadMapped(kIova + kPage, absl::MakeSpan(buffer)), MappedAccess::kFaulted);
  EXPECT_EQ(table_.TryWriteMapped(kIova + 3 * kPage, buffer), MappedAccess::kFaulted);
  // What is left of the file still works.
  EXPECT_EQ(table_.TryReadMapped(kIova, absl::MakeSpan(buffer)), MappedAccess::kDone);
  EXPECT_EQ(buffer[0], 0x5a);
  EXPECT_THAT(faults(), ElementsAre(Pair(kIova + kPage, 64), Pair(kIova + 3 * kPage, 64)));
}

TEST_F(DmaFaultTest, DmaReadAndWriteFailWithTheFaultStatus) {
  ShrinkClientMemory();
  std::vector<uint8_t> buffer(kPage);
  const absl::Status read = dma_.Read(kIova + kPage, absl::MakeSpan(buffer));
  EXPECT_TRUE(IsDmaFault(read)) << read;
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(IsDmaFault(dma_.Write(kIova + kPage, buffer)));
  // Across the two mappings: the Translate path, one guarded copy per
  // segment.
  std::vector<uint8_t> across(2 * kPage);
  EXPECT_TRUE(IsDmaFault(dma_.Read(kIova + kPage, absl::MakeSpan(across))));
  EXPECT_TRUE(IsDmaFault(dma_.Write(kIova + kPage, across)));
  EXPECT_EQ(faults().size(), 4u);
  EXPECT_THAT(dma_.Read(kIova, absl::MakeSpan(buffer)), IsOk());
}

TEST_F(DmaFaultTest, GuardedAccessToPinnedMemoryFails) {
  absl::StatusOr<DmaSgList> pin = dma_.Pin(kIova, 4 * kPage, DmaDirection::kWrite);
  ASSERT_THAT(pin, IsOk());
  ASSERT_EQ(pin->segments().size(), 2u);
  ShrinkClientMemory();

  std::vector<uint8_t> buffer(2 * kPage);
  EXPECT_THAT(pin->Read(0, absl::MakeSpan(buffer).first(kPage)), IsOk());
  EXPECT_TRUE(IsDmaFault(pin->Read(kPage, absl::MakeSpan(buffer))));
  EXPECT_TRUE(IsDmaFault(pin->Write(3 * kPage, absl::MakeSpan(buffer).first(16))));

  struct Poke {
    uint8_t* at;
  } poke{pin->segments()[1].host};
  EXPECT_TRUE(IsDmaFault(pin->RunGuarded(
      [](void* arg) { *static_cast<volatile uint8_t*>(static_cast<Poke*>(arg)->at) = 1; }, &poke)));

  absl::StatusOr<DmaSgList> source = dma_.Pin(kIova + 2 * kPage, kPage, DmaDirection::kRead);
  absl::StatusOr<DmaSgList> destination = dma_.Pin(kIova, kPage, DmaDirection::kWrite);
  ASSERT_THAT(source, IsOk());
  ASSERT_THAT(destination, IsOk());
  EXPECT_TRUE(IsDmaFault(DmaSgList::Copy(*source, *destination)));
  // Each fault named the segment it hit, in the mapping it hit.
  EXPECT_THAT(faults(), ElementsAre(Pair(kIova, 2 * kPage), Pair(kIova + 2 * kPage, 2 * kPage),
                                    Pair(kIova + 2 * kPage, 2 * kPage),
                                    Pair(kIova + 2 * kPage, kPage)));
}

TEST_F(DmaFaultTest, GuardedListMethodsCopyAndMarkDirty) {
  ASSERT_THAT(table_.StartLogging({.page_size = kPage, .ranges = {{kIova, 4 * kPage}}}), IsOk());
  // Half a page on each side of the boundary between the two mappings.
  absl::StatusOr<DmaSgList> source = dma_.Pin(kIova + kPage + kPage / 2, kPage, DmaDirection::kRead);
  absl::StatusOr<DmaSgList> destination = dma_.Pin(kIova + 3 * kPage, kPage, DmaDirection::kWrite);
  ASSERT_THAT(source, IsOk());
  ASSERT_THAT(destination, IsOk());
  ASSERT_EQ(source->segments().size(), 2u);
  std::memset(memory_.at(kPage), 1, kPage);
  std::memset(memory_.at(2 * kPage), 2, kPage);
  ASSERT_THAT(DmaSgList::Copy(*source, *destination), IsOk());
  EXPECT_EQ(*memory_.at(3 * kPage), 1);
  EXPECT_EQ(*memory_.at(3 * kPage + kPage / 2), 2);

  std::vector<uint8_t> out(3);
  EXPECT_THAT(source->Read(kPage - 1, absl::MakeSpan(out)),
              ::vfu::testing::StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_THAT(source->Read(kPage / 2 - 1, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 2}));
  const std::vector<uint8_t> nines(2, 9);
  ASSERT_THAT(source->Write(0, nines), IsOk());
  EXPECT_EQ(*memory_.at(kPage + kPage / 2), 9);

  std::vector<uint8_t> bitmap;
  ASSERT_THAT(table_.Report({.iova = kIova, .length = 4 * kPage, .page_size = kPage}, bitmap),
              IsOk());
  EXPECT_EQ(bitmap[0], 0b1010);  // page 1 by Write, page 3 by Copy
  EXPECT_TRUE(faults().empty());
}

TEST(DmaFaultStatusTest, OnlyDmaFaultsAreDmaFaults) {
  EXPECT_TRUE(IsDmaFault(DmaFaultError("DMA read", 0x1000, 16)));
  EXPECT_FALSE(IsDmaFault(absl::DataLossError("stream corrupt")));
  EXPECT_FALSE(IsDmaFault(absl::OkStatus()));
}

}  // namespace
}  // namespace vfu
