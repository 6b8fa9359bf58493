// Jobs that cannot or must not complete: bad addresses, missing access
// rights, impossible ranges, an empty job, a doorbell while busy and ABORT.
// Each ends with the documented STATUS / ERROR and its interrupt, and the
// channel serves the next job.
#include <algorithm>
#include <cstdint>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

constexpr uint64_t kIova = 0x10000000;
constexpr uint64_t kUnmapped = 0x7000000000;
constexpr uint64_t kSize = 1 << 20;

class DmaEngineFaultsMappedTest : public DmaEngineTest {
 protected:
  void SetUp() override {
    DmaEngineTest::SetUp();
    FillPattern(memory_.bytes(), 31);
    MapShared(kIova, memory_);
    irq_ = WatchChannel(0);
  }

  // The channel still works: a small good copy completes.
  void ExpectChannelWorks() {
    EXPECT_EQ(Copy(0, irq_, kIova, kIova + kSize / 2, 4096), kStatusDone);
    EXPECT_EQ(Error(0), kErrorNone);
  }

  SharedMemory memory_{kSize};
  UniqueFd irq_;
};

TEST_F(DmaEngineFaultsMappedTest, UnmappedSource) {
  EXPECT_EQ(Copy(0, irq_, kUnmapped, kIova, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorSourceFault);
  EXPECT_EQ(Progress(0), 0u);
  EXPECT_EQ(FirstPatternMismatch(memory_.bytes(), 31), -1) << "nothing may be written";
  ExpectChannelWorks();
}

TEST_F(DmaEngineFaultsMappedTest, UnmappedDestination) {
  EXPECT_EQ(Copy(0, irq_, kIova, kUnmapped, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorDestinationFault);
  ExpectChannelWorks();
}

// A source that runs off the end of its mapping fails at the first chunk
// that crosses it; the chunks before it were copied.
TEST_F(DmaEngineFaultsMappedTest, SourceRunsOffTheMapping) {
  constexpr uint64_t kStart = kSize - 2 * kChunkSize - 100;
  EXPECT_EQ(Copy(0, irq_, kIova + kStart, kIova, 4 * kChunkSize), kStatusError);
  EXPECT_EQ(Error(0), kErrorSourceFault);
  EXPECT_EQ(Progress(0), 2 * kChunkSize);
  for (uint64_t i = 0; i < 2 * kChunkSize; ++i) {
    ASSERT_EQ(memory_.bytes()[i], PatternByte(31, kStart + i)) << "byte " << i;
  }
  ExpectChannelWorks();
}

// A read-only mapping is no destination (and the pattern in it survives).
TEST_F(DmaEngineFaultsMappedTest, ReadOnlyDestination) {
  SharedMemory read_only(kSize);
  FillPattern(read_only.bytes(), 32);
  ASSERT_OK(client_->DmaMap(kUnmapped, kSize, wire::kDmaMapFlagRead, read_only.Share()));
  EXPECT_EQ(Copy(0, irq_, kIova, kUnmapped, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorDestinationFault);
  EXPECT_EQ(FirstPatternMismatch(read_only.bytes(), 32), -1);
  // It is a fine source though.
  EXPECT_EQ(Copy(0, irq_, kUnmapped, kIova, 4096), kStatusDone);
}

// LENGTH 0 is a job that succeeds at once, even at addresses that are not
// mapped, and writes nothing.
TEST_F(DmaEngineFaultsMappedTest, EmptyJob) {
  EXPECT_EQ(Copy(0, irq_, kUnmapped, kUnmapped + 0x1000, 0), kStatusDone);
  EXPECT_EQ(Error(0), kErrorNone);
  EXPECT_EQ(Progress(0), 0u);
}

TEST_F(DmaEngineFaultsMappedTest, OverlappingRanges) {
  EXPECT_EQ(Copy(0, irq_, kIova, kIova + 4095, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorInvalid);
  EXPECT_EQ(Copy(0, irq_, kIova + 4095, kIova, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorInvalid);
  EXPECT_EQ(FirstPatternMismatch(memory_.bytes(), 31), -1);
  // Adjacent is fine.
  EXPECT_EQ(Copy(0, irq_, kIova + 4096, kIova, 4096), kStatusDone);
}

TEST_F(DmaEngineFaultsMappedTest, RangeWrapsAroundTheAddressSpace) {
  EXPECT_EQ(Copy(0, irq_, ~uint64_t{0} - 10, kIova, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorInvalid);
  EXPECT_EQ(Copy(0, irq_, kIova, ~uint64_t{0} - 10, 4096), kStatusError);
  EXPECT_EQ(Error(0), kErrorInvalid);
  ExpectChannelWorks();
}

// A client that has not started its serving thread answers DMA only while
// one of its calls waits. So a job over fd-less memory cannot move while the
// test only posts writes: the channel is certainly busy when they arrive.
class DmaEngineBusyChannelTest : public DmaEngineTest {
 protected:
  static constexpr uint32_t kLength = 4 << 20;
  static constexpr uint64_t kSourceIova = 0x10000000;
  static constexpr uint64_t kFirstIova = 0x20000000;
  static constexpr uint64_t kSecondIova = 0x30000000;

  void SetUp() override {
    DmaEngineTest::SetUp();
    source_ = NewBuffer(kLength);
    first_ = NewBuffer(kLength);
    second_ = NewBuffer(kLength);
    FillPattern(source_, 41);
    MapBuffer(kSourceIova, source_);
    MapBuffer(kFirstIova, first_);
    MapBuffer(kSecondIova, second_);
    irq_ = WatchChannel(1);
  }

  absl::Span<uint8_t> source_, first_, second_;
  UniqueFd irq_;
};

// START while busy is ignored: the running job keeps its parameters and no
// second job follows.
TEST_F(DmaEngineBusyChannelTest, DoorbellWhileBusyIsIgnored) {
  Program(1, kSourceIova, kFirstIova, kLength, /*posted=*/true);
  Ring(1, kDoorbellStart, /*posted=*/true);
  Program(1, kSourceIova, kSecondIova, kLength, /*posted=*/true);
  Ring(1, kDoorbellStart, /*posted=*/true);
  ASSERT_OK(client_->StartServingThread());

  EXPECT_EQ(WaitForJob(1, irq_), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(first_, 41), -1);
  EXPECT_TRUE(std::all_of(second_.begin(), second_.end(), [](uint8_t b) { return b == 0; }))
      << "the second destination was written";
  EXPECT_FALSE(ReadEventfd(irq_, 0).has_value()) << "a second job ran";
  // The registers hold the new values for the next job.
  EXPECT_EQ(ReadChannel(1, kRegDestinationLo), kSecondIova);
}

// ABORT stops a running job at its next chunk: ERROR_ABORTED, the
// interrupt, and the rest of the destination untouched.
TEST_F(DmaEngineBusyChannelTest, AbortStopsTheJob) {
  Program(1, kSourceIova, kFirstIova, kLength, /*posted=*/true);
  Ring(1, kDoorbellStart, /*posted=*/true);
  Ring(1, kDoorbellAbort | kDoorbellStart, /*posted=*/true);
  ASSERT_OK(client_->StartServingThread());

  EXPECT_EQ(WaitForJob(1, irq_), kStatusError);
  EXPECT_EQ(Error(1), kErrorAborted);
  const uint32_t progress = Progress(1);
  EXPECT_LT(progress, kLength);
  EXPECT_EQ(client_->stats().dma_write_bytes, progress);
  // ABORT on an idle channel does nothing; START then works again.
  Ring(1, kDoorbellAbort);
  EXPECT_EQ(Status(1), kStatusError);
  Ring(1);
  EXPECT_EQ(WaitForJob(1, irq_), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(first_, 41), -1);
}

}  // namespace
}  // namespace vfu::devices::dma_engine
