// A client that takes its memory away under a copy (shrinks the memfd it
// shared with DMA_MAP): the copy fails, the client is disconnected, and the
// server, which used to die of SIGBUS here, serves the next client.
#include <unistd.h>

#include <cstdint>

#include "absl/time/clock.h"
#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

constexpr uint64_t kIova = 0x10000000;
constexpr uint32_t kLength = 64 * 1024;

class ShrinkableMemoryTest : public DmaEngineTest {
 protected:
  // True once the server has closed the connection: every call fails.
  // Each look is a round trip; the deadline only bounds a broken server.
  bool ClientDisconnected() {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
    while (absl::Now() < deadline) {
      if (!client_->RegionRead(kBar0Region, dma_engine::kRegIrqStatus, 4).ok()) return true;
    }
    return false;
  }

  // The server still works for a new client: a copy through fresh memory.
  void ExpectNextClientServed() {
    Reconnect();
    SharedMemory memory(2 * kLength);
    FillPattern(memory.bytes(0, kLength), 3);
    MapShared(kIova, memory);
    UniqueFd irq = WatchChannel(1);
    EXPECT_EQ(Copy(1, irq, kIova, kIova + kLength, kLength), kStatusDone);
    EXPECT_EQ(FirstPatternMismatch(memory.bytes(kLength, kLength), 3), -1);
  }
};

// Both sides in shared memory: the zero-copy path (pinned lists) faults.
TEST_F(ShrinkableMemoryTest, PinnedCopyFaultDisconnectsTheClient) {
  SharedMemory memory(2 * kLength);
  MapShared(kIova, memory);
  UniqueFd file = memory.Share();
  ASSERT_EQ(::ftruncate(file.get(), 0), 0);

  Program(0, kIova, kIova + kLength, kLength);
  // Posted: the job may fault, and the client go, before a reply could.
  Ring(0, dma_engine::kDoorbellStart, /*posted=*/true);
  EXPECT_TRUE(ClientDisconnected());
  ExpectNextClientServed();
}

// Source in fd-less memory, destination in shrunk shared memory: the
// buffered path's DmaWrite faults.
TEST_F(ShrinkableMemoryTest, DmaWriteFaultDisconnectsTheClient) {
  absl::Span<uint8_t> source = NewBuffer(kLength);
  FillPattern(source, 9);
  MapBuffer(kIova, source);
  SharedMemory memory(kLength);
  MapShared(kIova + kLength, memory);
  UniqueFd file = memory.Share();
  ASSERT_EQ(::ftruncate(file.get(), 0), 0);

  Program(0, kIova, kIova + kLength, kLength);
  // Posted: the job may fault, and the client go, before a reply could.
  Ring(0, dma_engine::kDoorbellStart, /*posted=*/true);
  EXPECT_TRUE(ClientDisconnected());
  ExpectNextClientServed();
}

}  // namespace
}  // namespace vfu::devices::dma_engine
