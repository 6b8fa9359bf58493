// DEVICE_RESET while jobs run: the registers read their reset values at
// once, the abandoned jobs stop (at most the chunk already issued lands)
// without an interrupt, and the channels take new jobs.
#include <cstdint>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using DmaEngineResetTest = DmaEngineTest;

constexpr uint32_t kLength = 2 << 20;
constexpr uint32_t kChannels = 2;

TEST_F(DmaEngineResetTest, ResetAbandonsRunningJobs) {
  // Channel n copies [n * 2 + 0] to [n * 2 + 1], fd-less, one mapping each.
  std::vector<absl::Span<uint8_t>> areas;
  std::vector<UniqueFd> irqs;
  for (uint32_t i = 0; i < 2 * kChannels; ++i) {
    areas.push_back(NewBuffer(kLength));
    FillPattern(areas.back(), 60 + i);
    MapBuffer(0x100000000 * (i + 1), areas.back());
  }
  for (uint32_t channel = 0; channel < kChannels; ++channel) irqs.push_back(WatchChannel(channel));
  const auto iova = [](uint32_t area) { return 0x100000000 * (area + 1); };

  // The client keeps the jobs' DMA requests unanswered (its calls would
  // otherwise answer them while they wait, as many as the machine's speed
  // allows): both jobs are certainly waiting for their first DMA_READ when
  // the reset arrives.
  client_->HoldServerCommands();
  const uint64_t commands_before = client_->stats().server_commands_received;
  for (uint32_t channel = 0; channel < kChannels; ++channel) {
    Program(channel, iova(2 * channel), iova(2 * channel + 1), kLength);
    Ring(channel);
  }
  AwaitServerCommands(commands_before + kChannels);
  for (uint32_t channel = 0; channel < kChannels; ++channel) {
    ASSERT_EQ(Status(channel), kStatusBusy) << "channel " << channel;
  }
  ASSERT_OK(client_->Reset());

  for (uint32_t channel = 0; channel < kChannels; ++channel) {
    for (uint64_t reg :
         {kRegSourceLo, kRegDestinationLo, kRegLength, kRegStatus, kRegError, kRegProgress}) {
      EXPECT_EQ(ReadChannel(channel, reg), 0u)
          << "channel " << channel << " register +0x" << std::hex << reg;
    }
  }
  EXPECT_EQ(Read32(kRegIrqStatus), 0u);

  // From now on DMA is answered: an abandoned job that carried on would
  // finish (and interrupt) before its channel's next job.
  client_->ReleaseServerCommands();
  ASSERT_OK(client_->StartServingThread());
  for (uint32_t channel = 0; channel < kChannels; ++channel) {
    Program(channel, iova(2 * channel), iova(2 * channel + 1), kChunkSize);
    Ring(channel);
    uint64_t interrupts = ReadEventfd(irqs[channel], kWaitTimeoutMs).value_or(0);
    EXPECT_EQ(WaitWhileBusy(channel), kStatusDone);
    // STATUS and the interrupt change together: nothing more is coming.
    interrupts += ReadEventfd(irqs[channel], 0).value_or(0);
    EXPECT_EQ(interrupts, 1u) << "channel " << channel;
    EXPECT_EQ(Progress(channel), kChunkSize);
    // The abandoned job had only issued the DMA_READ of its first chunk,
    // and stops once it is answered: beyond the new job's chunk its
    // destination still holds the old pattern.
    absl::Span<uint8_t> destination = areas[2 * channel + 1];
    EXPECT_EQ(FirstPatternMismatch(destination.subspan(0, kChunkSize), 60 + 2 * channel), -1);
    const int64_t changed = FirstPatternMismatch(destination, 60 + 2 * channel + 1, kChunkSize);
    EXPECT_EQ(changed, -1) << "channel " << channel << " wrote byte " << changed
                           << " after the reset";
  }
}

// A reset with no job running leaves nothing behind either: the next job
// raises exactly one interrupt.
TEST_F(DmaEngineResetTest, ResetWhenIdle) {
  SharedMemory memory(2 * kChunkSize);
  FillPattern(memory.bytes(0, kChunkSize), 61);
  MapShared(0x10000000, memory);
  UniqueFd irq = WatchChannel(3);
  ASSERT_EQ(Copy(3, irq, 0x10000000, 0x10000000 + kChunkSize, kChunkSize), kStatusDone);
  ASSERT_OK(client_->Reset());
  EXPECT_EQ(Status(3), kStatusIdle);
  EXPECT_EQ(Copy(3, irq, 0x10000000, 0x10000000 + kChunkSize, kChunkSize), kStatusDone);
  EXPECT_FALSE(ReadEventfd(irq, 0).has_value());
}

}  // namespace
}  // namespace vfu::devices::dma_engine
