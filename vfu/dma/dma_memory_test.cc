#include "vfu/dma/dma_memory.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_test_util.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::vfu::testing::ClientMemory;
using ::vfu::testing::FakeMessageDmaPath;
using ::vfu::testing::IsOk;
using ::vfu::testing::kRead;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::StatusIs;
using ::vfu::testing::UnmapRequest;

using Call = FakeMessageDmaPath::Call;

constexpr uint64_t kPage = 4096;

std::vector<uint8_t> Iota(size_t n, uint8_t first) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// fd-backed memory at a non-zero file offset: a device write lands in the
// file, a client write to the file is what the device reads.
TEST(DmaMemoryTest, FdBackedMappingAtOffsetIsSharedBothWays) {
  ClientMemory memory(4 * kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0, 0);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x40000, 2 * kPage, kReadWrite, kPage), memory.Fd()), IsOk());

  const std::vector<uint8_t> data = Iota(100, 1);
  ASSERT_THAT(dma.Write(0x40000 + kPage - 50, data), IsOk());
  EXPECT_EQ(std::memcmp(memory.at(kPage + kPage - 50), data.data(), data.size()), 0);

  const std::vector<uint8_t> from_client = Iota(32, 200);
  std::memcpy(memory.at(kPage + 0x123), from_client.data(), from_client.size());
  std::vector<uint8_t> out(32);
  ASSERT_THAT(dma.Read(0x40123, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, from_client);
  EXPECT_THAT(messages.calls(), IsEmpty());
}

// A read-only mapping refuses device writes and keeps its bytes.
TEST(DmaMemoryTest, ReadOnlyMappingRefusesWrites) {
  ClientMemory memory(kPage);
  std::memset(memory.at(0), 0x11, kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0, 0);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x40000, kPage, kRead), memory.Fd()), IsOk());

  const std::vector<uint8_t> data(16, 0xee);
  EXPECT_THAT(dma.Write(0x40000, data), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(dma.Pin(0x40000, 16, DmaDirection::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(*memory.at(0), 0x11);
  std::vector<uint8_t> out(16);
  EXPECT_THAT(dma.Read(0x40000, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, std::vector<uint8_t>(16, 0x11));
}

// fd-less memory is reached through DMA_READ / DMA_WRITE messages, with the
// transfer's own address and length.
TEST(DmaMemoryTest, FdLessMappingUsesMessages) {
  DmaMapTable table;
  FakeMessageDmaPath messages(0x80000, kPage);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x80000, kPage, kReadWrite), UniqueFd()), IsOk());

  const std::vector<uint8_t> data = Iota(24, 7);
  ASSERT_THAT(dma.Write(0x80010, data), IsOk());
  EXPECT_EQ(messages.Bytes(0x80010, 24), data);
  messages.SetBytes(0x80100, Iota(8, 90));
  std::vector<uint8_t> out(8);
  ASSERT_THAT(dma.Read(0x80100, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, Iota(8, 90));
  EXPECT_THAT(messages.calls(), ElementsAre(Call{true, 0x80010, 24}, Call{false, 0x80100, 8}));
}

// Zero-copy access needs host memory: Pin refuses fd-less parts with
// FailedPrecondition and hands out host pointers otherwise.
TEST(DmaMemoryTest, PinNeedsHostMemory) {
  ClientMemory memory(kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0x81000, kPage);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x80000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x81000, kPage, kReadWrite), UniqueFd()), IsOk());

  EXPECT_THAT(dma.Pin(0x80ff0, 0x20, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(dma.Pin(0x81000, 1, DmaDirection::kRead),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(DmaSgList pinned, dma.Pin(0x80010, 0x20, DmaDirection::kWrite));
  ASSERT_EQ(pinned.segments().size(), 1u);
  pinned.segments()[0].host[0] = 0x77;
  EXPECT_EQ(*memory.at(0x10), 0x77);
  EXPECT_THAT(messages.calls(), IsEmpty());
}

// A transfer across an fd-backed and an fd-less mapping copies the first
// part and sends a message for the rest.
TEST(DmaMemoryTest, TransferAcrossFdBackedAndFdLessMappings) {
  ClientMemory memory(kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0x81000, kPage);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x80000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x81000, kPage, kReadWrite), UniqueFd()), IsOk());

  const std::vector<uint8_t> data = Iota(32, 1);
  ASSERT_THAT(dma.Write(0x80ff0, data), IsOk());
  EXPECT_EQ(std::memcmp(memory.at(0xff0), data.data(), 16), 0);
  EXPECT_EQ(messages.Bytes(0x81000, 16), std::vector<uint8_t>(data.begin() + 16, data.end()));

  std::vector<uint8_t> out(32);
  ASSERT_THAT(dma.Read(0x80ff0, absl::MakeSpan(out)), IsOk());
  EXPECT_EQ(out, data);
  EXPECT_THAT(messages.calls(), ElementsAre(Call{true, 0x81000, 16}, Call{false, 0x81000, 16}));
}

// Unmapped memory is an error, detected before any byte or message moves.
TEST(DmaMemoryTest, UnmappedMemoryIsAnError) {
  DmaMapTable table;
  FakeMessageDmaPath messages(0x80000, kPage);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x80000, kPage, kReadWrite), UniqueFd()), IsOk());
  std::vector<uint8_t> out(16);
  EXPECT_THAT(dma.Read(0x90000, absl::MakeSpan(out)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(dma.Write(0x80ff8, out), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(table.Unmap(UnmapRequest(0x80000, kPage), nullptr), IsOk());
  EXPECT_THAT(dma.Read(0x80000, absl::MakeSpan(out)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(messages.calls(), IsEmpty());
  EXPECT_THAT(dma.Read(0x90000, {}), IsOk());  // nothing to move
}

// A failed message comes back to the device as is.
TEST(DmaMemoryTest, MessageFailureIsReturned) {
  DmaMapTable table;
  FakeMessageDmaPath messages(0x80000, kPage);
  messages.FailWith(absl::UnavailableError("client gone"));
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x80000, kPage, kReadWrite), UniqueFd()), IsOk());
  std::vector<uint8_t> out(16);
  EXPECT_THAT(dma.Read(0x80000, absl::MakeSpan(out)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(dma.Write(0x80000, out), StatusIs(absl::StatusCode::kUnavailable));
}

// Four device threads copy to and from their own slices of a stable
// mapping while another thread maps and unmaps other ranges (fd-backed
// ones too, so munmap runs) and reads the dirty log: every copy succeeds
// with the right bytes.
TEST(DmaMemoryTest, ConcurrentCopiesWhileOtherRangesChange) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  ClientMemory memory(8 * kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0, 0);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x100000, 4 * kPage, kReadWrite), memory.Fd()), IsOk());
  // With logging on, every Map allocates a dirty bitmap and every write
  // marks one while the churn thread reads and clears them.
  ASSERT_THAT(table.StartLogging(wire::DmaLoggingControl{.page_size = kPage, .ranges = {}}),
              IsOk());

  std::atomic<bool> stop{false};
  std::thread churn([&] {
    std::vector<uint8_t> bitmap;
    for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      wire::DmaLoggingReport report;
      report.iova = 0x100000;
      report.length = 4 * kPage;
      report.page_size = kPage;
      EXPECT_THAT(table.Report(report, bitmap), IsOk());
      const uint64_t iova = 0x200000 + (i % 8) * kPage;
      EXPECT_THAT(table.Map(MapRequest(iova, kPage, kReadWrite, 4 * kPage), memory.Fd()), IsOk());
      EXPECT_THAT(table.Map(MapRequest(iova + 0x100000, kPage, kRead), UniqueFd()), IsOk());
      EXPECT_THAT(table.Unmap(UnmapRequest(iova, kPage), nullptr), IsOk());
      EXPECT_THAT(table.Unmap(UnmapRequest(iova + 0x100000, kPage), nullptr), IsOk());
    }
  });
  std::vector<std::thread> devices;
  for (int t = 0; t < kThreads; ++t) {
    devices.emplace_back([&, t] {
      const uint64_t iova = 0x100000 + t * kPage;
      std::vector<uint8_t> out(kPage);
      for (int round = 0; round < kRounds; ++round) {
        const std::vector<uint8_t> data(kPage, static_cast<uint8_t>(t * 16 + round));
        ASSERT_THAT(dma.Write(iova, data), IsOk());
        ASSERT_THAT(dma.Read(iova, absl::MakeSpan(out)), IsOk());
        ASSERT_EQ(out, data);
      }
    });
  }
  for (std::thread& d : devices) d.join();
  stop.store(true, std::memory_order_relaxed);
  churn.join();
  EXPECT_EQ(table.size(), 1u);
}

// Device threads copying into a mapping the client keeps unmapping and
// mapping again either succeed or get NotFound; none ever touches memory
// after its munmap (the sanitizers would say so).
TEST(DmaMemoryTest, CopiesRaceUnmapOfTheirOwnMapping) {
  constexpr int kThreads = 4;
  ClientMemory memory(kPage);
  DmaMapTable table;
  FakeMessageDmaPath messages(0, 0);
  DmaMemory dma(table, messages);
  ASSERT_THAT(table.Map(MapRequest(0x100000, kPage, kReadWrite), memory.Fd()), IsOk());

  std::atomic<int> copies[kThreads] = {};
  std::atomic<bool> stop{false};
  std::vector<std::thread> devices;
  for (int t = 0; t < kThreads; ++t) {
    devices.emplace_back([&, t] {
      // Each thread its own quarter: concurrent writes to the same bytes
      // would be the device's own race.
      const std::vector<uint8_t> data(kPage / kThreads, static_cast<uint8_t>(0x30 + t));
      while (!stop.load(std::memory_order_relaxed)) {
        absl::Status s = dma.Write(0x100000 + t * (kPage / kThreads), data);
        if (s.ok()) {
          copies[t].fetch_add(1, std::memory_order_relaxed);
        } else {
          ASSERT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
        }
      }
    });
  }
  // Every device has copied before the churn starts.
  for (const std::atomic<int>& n : copies) {
    while (n.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  }
  for (int i = 0; i < 200; ++i) {
    EXPECT_THAT(table.Unmap(UnmapRequest(0x100000, kPage), nullptr), IsOk());
    EXPECT_THAT(table.Map(MapRequest(0x100000, kPage, kReadWrite), memory.Fd()), IsOk());
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& d : devices) d.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(*memory.at(t * (kPage / kThreads)), 0x30 + t);
}

}  // namespace
}  // namespace vfu
