// The client goes away while jobs run: the jobs end with an error (the
// client that comes next reads why), the device keeps no stale work, and
// the next client's jobs run normally.
#include <cstdint>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using DmaEngineDetachTest = DmaEngineTest;

constexpr uint32_t kLength = 4 << 20;

TEST_F(DmaEngineDetachTest, JobsInFlightEndWithAnError) {
  // The client keeps the jobs' DMA requests unanswered, however long the
  // test takes: each job waits for its first DMA_READ until the client
  // goes away. (Its calls would otherwise answer them while they wait.)
  client_->HoldServerCommands();
  const uint64_t commands_before = client_->stats().server_commands_received;
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    const uint64_t source = 0x100000000 * (2 * channel + 1);
    const uint64_t destination = source + 0x100000000;
    MapBuffer(source, NewBuffer(kLength));
    MapBuffer(destination, NewBuffer(kLength));
    Program(channel, source, destination, kLength);
    Ring(channel);
  }
  // Every job has sent its DMA_READ, so none is between steps (where the
  // disconnect would meet it with its memory already withdrawn, a fault).
  AwaitServerCommands(commands_before + kNumChannels);
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    ASSERT_EQ(Status(channel), kStatusBusy) << "channel " << channel;
    EXPECT_EQ(Progress(channel), 0u) << "channel " << channel;
  }
  EXPECT_EQ(Read32(kRegIrqStatus), 0u);

  // The server accepts the new client only once it has detached the old.
  Reconnect();
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    EXPECT_EQ(Status(channel), kStatusError) << "channel " << channel;
    // Each job had a DMA message in flight when the client left.
    EXPECT_EQ(Error(channel), kErrorDetached) << "channel " << channel;
    EXPECT_EQ(Progress(channel), 0u) << "channel " << channel;
  }
  EXPECT_EQ(Read32(kRegIrqStatus), (1u << kNumChannels) - 1);

  // The new client's jobs run.
  SharedMemory memory(2 * kChunkSize);
  FillPattern(memory.bytes(0, kChunkSize), 71);
  MapShared(0x10000000, memory);
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    UniqueFd irq = WatchChannel(channel);
    EXPECT_EQ(Copy(channel, irq, 0x10000000, 0x10000000 + kChunkSize, kChunkSize), kStatusDone);
  }
  EXPECT_EQ(FirstPatternMismatch(memory.bytes(kChunkSize, kChunkSize), 71), -1);
}

}  // namespace
}  // namespace vfu::devices::dma_engine
