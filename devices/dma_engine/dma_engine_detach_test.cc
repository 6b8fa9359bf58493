// The client goes away while jobs run: the jobs end with an error (the
// client that comes next reads why), the device keeps no stale work, and
// the next client's jobs run normally.
#include <cstdint>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"
#include "gmock/gmock.h"

namespace vfu::devices::dma_engine {
namespace {

using ::testing::AnyOf;
using DmaEngineDetachTest = DmaEngineTest;

constexpr uint32_t kLength = 4 << 20;

TEST_F(DmaEngineDetachTest, JobsInFlightEndWithAnError) {
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    const uint64_t source = 0x100000000 * (2 * channel + 1);
    const uint64_t destination = source + 0x100000000;
    MapBuffer(source, NewBuffer(kLength));
    MapBuffer(destination, NewBuffer(kLength));
    // Posted: the jobs wait for DMA answers nobody gives.
    Program(channel, source, destination, kLength, /*posted=*/true);
    Ring(channel, kDoorbellStart, /*posted=*/true);
  }
  // This read answers a few DMA requests while it waits; the jobs are far
  // from done.
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    ASSERT_EQ(Status(channel), kStatusBusy) << "channel " << channel;
  }

  // The server accepts the new client only once it has detached the old.
  Reconnect();
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    EXPECT_EQ(Status(channel), kStatusError) << "channel " << channel;
    // Which error depends on where the job was: waiting for the client
    // (DETACHED), or about to start a chunk after the disconnect had
    // already withdrawn the memory (a fault).
    EXPECT_THAT(Error(channel), AnyOf(kErrorDetached, kErrorSourceFault, kErrorDestinationFault))
        << "channel " << channel;
    EXPECT_LT(Progress(channel), kLength);
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
