// Copies that reach fd-less client memory: every access of the job is a
// DMA_READ or DMA_WRITE message on the socket the client's own commands use,
// answered by the client's serving thread while the test keeps the socket
// busy with region accesses.
#include <cstdint>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using DmaEngineMessageCopyTest = DmaEngineTest;

constexpr uint64_t kSourceIova = 0x10000000;
constexpr uint64_t kDestinationIova = 0x20000000;

// Both sides fd-less. The test polls STATUS as fast as it can while the
// device's DMA messages interleave with those reads on one socket; the
// job completes, every byte crossed the socket once each way.
TEST_F(DmaEngineMessageCopyTest, CopiesWhileTheClientReadsStatus) {
  constexpr uint32_t kLength = 4 << 20;
  absl::Span<uint8_t> source = NewBuffer(kLength);
  absl::Span<uint8_t> destination = NewBuffer(kLength);
  FillPattern(source, 21);
  MapBuffer(kSourceIova, source);
  MapBuffer(kDestinationIova, destination);
  UniqueFd irq = WatchChannel(0);
  ASSERT_OK(client_->StartServingThread());

  Program(0, kSourceIova, kDestinationIova, kLength);
  Ring(0);
  int reads = 0;
  uint32_t status;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
  while ((status = Status(0)) == kStatusBusy && absl::Now() < deadline) {
    ++reads;
    // PROGRESS only grows, and only by whole chunks until the end.
    EXPECT_EQ(Progress(0) % kChunkSize, 0u);
  }
  EXPECT_EQ(status, kStatusDone) << "after " << reads << " reads while busy";
  EXPECT_TRUE(ReadEventfd(irq, kWaitTimeoutMs).has_value());
  EXPECT_EQ(Error(0), kErrorNone);
  EXPECT_EQ(Progress(0), kLength);
  EXPECT_EQ(FirstPatternMismatch(destination, 21), -1);
  const ClientStats stats = client_->stats();
  EXPECT_EQ(stats.dma_read_bytes, kLength);
  EXPECT_EQ(stats.dma_write_bytes, kLength);
  EXPECT_EQ(stats.server_commands_failed, 0u);
}

// The source is shared with an fd, the destination is not: the device reads
// directly and writes by message.
TEST_F(DmaEngineMessageCopyTest, FdBackedSourceToFdLessDestination) {
  constexpr uint32_t kLength = 1 << 20;
  SharedMemory source(kLength);
  absl::Span<uint8_t> destination = NewBuffer(kLength);
  FillPattern(source.bytes(), 22);
  MapShared(kSourceIova, source);
  MapBuffer(kDestinationIova, destination);
  UniqueFd irq = WatchChannel(1);
  ASSERT_OK(client_->StartServingThread());

  EXPECT_EQ(Copy(1, irq, kSourceIova, kDestinationIova, kLength), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(destination, 22), -1);
  const ClientStats stats = client_->stats();
  EXPECT_EQ(stats.dma_read_bytes, 0u);
  EXPECT_EQ(stats.dma_write_bytes, kLength);
}

// And the other way round: read by message, written directly.
TEST_F(DmaEngineMessageCopyTest, FdLessSourceToFdBackedDestination) {
  constexpr uint32_t kLength = 1 << 20;
  absl::Span<uint8_t> source = NewBuffer(kLength);
  SharedMemory destination(kLength);
  FillPattern(source, 23);
  MapBuffer(kSourceIova, source);
  MapShared(kDestinationIova, destination);
  UniqueFd irq = WatchChannel(2);
  ASSERT_OK(client_->StartServingThread());

  EXPECT_EQ(Copy(2, irq, kSourceIova, kDestinationIova, kLength), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(destination.bytes(), 23), -1);
  const ClientStats stats = client_->stats();
  EXPECT_EQ(stats.dma_read_bytes, kLength);
  EXPECT_EQ(stats.dma_write_bytes, 0u);
}

// Without a serving thread the client answers DMA only while a call waits
// in it: reading STATUS is enough to drive a job to its end.
TEST_F(DmaEngineMessageCopyTest, StatusReadsAloneDriveTheJob) {
  constexpr uint32_t kLength = 512 * 1024;
  absl::Span<uint8_t> source = NewBuffer(kLength);
  absl::Span<uint8_t> destination = NewBuffer(kLength);
  FillPattern(source, 24);
  MapBuffer(kSourceIova, source);
  MapBuffer(kDestinationIova, destination);

  Program(3, kSourceIova, kDestinationIova, kLength);
  Ring(3);
  EXPECT_EQ(WaitWhileBusy(3), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(destination, 24), -1);
}

}  // namespace
}  // namespace vfu::devices::dma_engine
