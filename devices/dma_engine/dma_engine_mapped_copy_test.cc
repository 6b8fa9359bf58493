// Copies between memory the client shared with an fd: the device moves the
// bytes itself, no DMA message crosses the socket, and the end of the job
// raises the channel's MSI-X vector.
#include <cstdint>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using DmaEngineMappedCopyTest = DmaEngineTest;

constexpr uint64_t kIova = 0x10000000;

// 1 MiB between two halves of one memfd: bytes, STATUS, ERROR, PROGRESS,
// IRQ_STATUS and the interrupt all say the same; no message was needed.
TEST_F(DmaEngineMappedCopyTest, CopiesAndInterrupts) {
  constexpr uint32_t kLength = 1 << 20;
  SharedMemory memory(2 * kLength);
  FillPattern(memory.bytes(0, kLength), 1);
  FillPattern(memory.bytes(kLength, kLength), 2);
  MapShared(kIova, memory);
  UniqueFd irq = WatchChannel(0);

  EXPECT_EQ(Copy(0, irq, kIova, kIova + kLength, kLength), kStatusDone);
  EXPECT_EQ(Error(0), kErrorNone);
  EXPECT_EQ(Progress(0), kLength);
  EXPECT_EQ(Read32(kRegIrqStatus), 1u);
  EXPECT_EQ(FirstPatternMismatch(memory.bytes(kLength, kLength), 1), -1);
  // The source is untouched.
  EXPECT_EQ(FirstPatternMismatch(memory.bytes(0, kLength), 1), -1);
  const ClientStats stats = client_->stats();
  EXPECT_EQ(stats.dma_read_bytes, 0u);
  EXPECT_EQ(stats.dma_write_bytes, 0u);
}

// Odd addresses and a length that is not a multiple of the chunk size:
// exactly the asked bytes move, the neighbours stay.
TEST_F(DmaEngineMappedCopyTest, UnalignedLengthAndAddresses) {
  constexpr uint64_t kSize = 1 << 20;
  constexpr uint32_t kLength = 3 * kChunkSize + 123;
  constexpr uint64_t kSource = 7;
  constexpr uint64_t kDestination = kSize / 2 + 1;
  SharedMemory memory(kSize);
  FillPattern(memory.bytes(), 5);
  MapShared(kIova, memory);
  UniqueFd irq = WatchChannel(2);

  EXPECT_EQ(Copy(2, irq, kIova + kSource, kIova + kDestination, kLength), kStatusDone);
  for (uint64_t i = 0; i < kLength; ++i) {
    ASSERT_EQ(memory.bytes()[kDestination + i], PatternByte(5, kSource + i)) << "byte " << i;
  }
  EXPECT_EQ(memory.bytes()[kDestination - 1], PatternByte(5, kDestination - 1));
  EXPECT_EQ(memory.bytes()[kDestination + kLength], PatternByte(5, kDestination + kLength));
}

// A source that spans two adjacent mappings (two memfds) is copied as one
// range.
TEST_F(DmaEngineMappedCopyTest, SourceAcrossTwoMappings) {
  constexpr uint64_t kSize = 256 * 1024;
  SharedMemory first(kSize);
  SharedMemory second(kSize);
  SharedMemory destination(kSize);
  FillPattern(first.bytes(), 7);
  FillPattern(second.bytes(), 8);
  MapShared(kIova, first);
  MapShared(kIova + kSize, second);
  MapShared(kIova + 4 * kSize, destination);
  UniqueFd irq = WatchChannel(1);

  constexpr uint64_t kStart = kSize - 1000;  // 1000 bytes in the first
  EXPECT_EQ(Copy(1, irq, kIova + kStart, kIova + 4 * kSize, kSize), kStatusDone);
  for (uint64_t i = 0; i < kSize; ++i) {
    const uint8_t expected =
        kStart + i < kSize ? PatternByte(7, kStart + i) : PatternByte(8, kStart + i - kSize);
    ASSERT_EQ(destination.bytes()[i], expected) << "byte " << i;
  }
}

// A channel runs one job after another; each raises the interrupt once.
TEST_F(DmaEngineMappedCopyTest, BackToBackJobs) {
  constexpr uint32_t kLength = 64 * 1024;
  SharedMemory memory(8 * kLength);
  FillPattern(memory.bytes(0, kLength), 11);
  MapShared(kIova, memory);
  UniqueFd irq = WatchChannel(3);
  for (uint64_t hop = 1; hop < 8; ++hop) {
    // Each job copies the previous job's result one slot further.
    ASSERT_EQ(Copy(3, irq, kIova + (hop - 1) * kLength, kIova + hop * kLength, kLength),
              kStatusDone);
  }
  EXPECT_EQ(FirstPatternMismatch(memory.bytes(7 * kLength, kLength), 11), -1);
  EXPECT_FALSE(ReadEventfd(irq, 0).has_value()) << "an extra interrupt";
}

}  // namespace
}  // namespace vfu::devices::dma_engine
