// The client withdraws memory (DMA_UNMAP) while a job copies through it.
// The unmap waits for the chunk in flight; the job then ends DONE (if it
// got there first) or with the fault of the side that went, never touching
// the memory again; and the device serves the next job.
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

enum class Side { kSource, kDestination };
enum class Memory { kFdBacked, kFdLess };

class DmaEngineUnmapTest : public DmaEngineTest,
                           public ::testing::WithParamInterface<std::tuple<Side, Memory>> {
 protected:
  static constexpr uint32_t kLength = 16 << 20;
  static constexpr uint64_t kSourceIova = 0x100000000;
  static constexpr uint64_t kDestinationIova = 0x200000000;

  Side side() const { return std::get<0>(GetParam()); }
  Memory memory() const { return std::get<1>(GetParam()); }

  // Client memory of the parameter's kind, mapped at `iova`.
  absl::Span<uint8_t> Map(uint64_t iova) {
    if (memory() == Memory::kFdLess) {
      absl::Span<uint8_t> buffer = NewBuffer(kLength);
      MapBuffer(iova, buffer);
      return buffer;
    }
    shared_.push_back(std::make_unique<SharedMemory>(kLength));
    MapShared(iova, *shared_.back());
    return shared_.back()->bytes();
  }

  std::vector<std::unique_ptr<SharedMemory>> shared_;
};

TEST_P(DmaEngineUnmapTest, UnmapDuringJob) {
  absl::Span<uint8_t> source = Map(kSourceIova);
  absl::Span<uint8_t> destination = Map(kDestinationIova);
  FillPattern(source, 51);
  UniqueFd irq = WatchChannel(0);
  ASSERT_OK(client_->StartServingThread());

  Program(0, kSourceIova, kDestinationIova, kLength);
  Ring(0);
  // Unmap once the job has visibly started.
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
  while (Progress(0) == 0 && Status(0) == kStatusBusy && absl::Now() < deadline) {
  }
  const uint64_t gone = side() == Side::kSource ? kSourceIova : kDestinationIova;
  ASSERT_OK(client_->DmaUnmap(gone, kLength));

  const uint32_t status = WaitForJob(0, irq);
  const uint32_t progress = Progress(0);
  if (status == kStatusDone) {
    // The copy won the race.
    EXPECT_EQ(progress, kLength);
    EXPECT_EQ(FirstPatternMismatch(destination, 51), -1);
  } else {
    ASSERT_EQ(status, kStatusError);
    EXPECT_EQ(Error(0), side() == Side::kSource ? kErrorSourceFault : kErrorDestinationFault);
    EXPECT_LT(progress, kLength);
    // What PROGRESS counts was written in full.
    EXPECT_EQ(FirstPatternMismatch(destination.subspan(0, progress), 51), -1);
  }

  // The device goes on: new memory where the old was, a new job.
  absl::Span<uint8_t> replacement = Map(gone);
  if (side() == Side::kSource) {
    FillPattern(replacement, 52);
  } else {
    FillPattern(source, 52);
  }
  EXPECT_EQ(Copy(0, irq, kSourceIova, kDestinationIova, kChunkSize + 1), kStatusDone);
  absl::Span<uint8_t> result = side() == Side::kSource ? destination : replacement;
  EXPECT_EQ(FirstPatternMismatch(result.subspan(0, kChunkSize + 1), 52), -1);
}

INSTANTIATE_TEST_SUITE_P(
    SidesAndMemories, DmaEngineUnmapTest,
    ::testing::Combine(::testing::Values(Side::kSource, Side::kDestination),
                       ::testing::Values(Memory::kFdBacked, Memory::kFdLess)),
    [](const ::testing::TestParamInfo<std::tuple<Side, Memory>>& info) {
      return std::string(std::get<0>(info.param) == Side::kSource ? "Source" : "Destination") +
             (std::get<1>(info.param) == Memory::kFdBacked ? "FdBacked" : "FdLess");
    });

}  // namespace
}  // namespace vfu::devices::dma_engine
