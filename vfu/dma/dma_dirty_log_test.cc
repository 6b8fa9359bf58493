// DMA dirty-page logging (PROTOCOL.md 4.12 and 7): DMA_LOGGING_START/STOP/
// REPORT and the legacy DMA_UNMAP GET_DIRTY_BITMAP.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/dma/dma_test_util.h"
#include "vfu/wire/dirty_bitmap.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::vfu::testing::ClientMemory;
using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::FakeMessageDmaPath;
using ::vfu::testing::IsOk;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::UnmapRequest;

constexpr uint64_t kPage = 4096;

wire::DmaLoggingControl Control(uint64_t page_size,
                                std::vector<wire::DmaLoggingRange> ranges = {}) {
  return wire::DmaLoggingControl{.page_size = page_size, .ranges = std::move(ranges)};
}

wire::DmaLoggingReport ReportRequest(uint64_t iova, uint64_t length, uint64_t page_size) {
  wire::DmaLoggingReport request;
  request.iova = iova;
  request.length = length;
  request.page_size = page_size;
  return request;
}

// The set pages of a section 7 bitmap (u64 words, host order, LSB first).
std::vector<uint64_t> SetPages(const std::vector<uint8_t>& bitmap) {
  std::vector<uint64_t> pages;
  for (size_t w = 0; w < bitmap.size() / 8; ++w) {
    uint64_t word;
    std::memcpy(&word, bitmap.data() + w * 8, 8);
    for (int b = 0; b < 64; ++b) {
      if (word & (uint64_t{1} << b)) pages.push_back(w * 64 + b);
    }
  }
  return pages;
}

// Report of [iova, iova + length) at `page_size`; the set pages.
std::vector<uint64_t> ReportPages(DmaMapTable& table, uint64_t iova, uint64_t length,
                                  uint64_t page_size = kPage) {
  std::vector<uint8_t> bitmap;
  absl::Status s = table.Report(ReportRequest(iova, length, page_size), bitmap);
  EXPECT_THAT(s, IsOk());
  EXPECT_EQ(bitmap.size(), *wire::DirtyBitmapSize(length, page_size));
  return SetPages(bitmap);
}

// Client memory of 64 pages mapped at kBase, a DmaMemory over it.
class DirtyLogTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kBase = 0x1000000;
  static constexpr uint64_t kPages = 64;

  void SetUp() override {
    ASSERT_THAT(table_.Map(MapRequest(kBase, kPages * kPage, kReadWrite), memory_.Fd()), IsOk());
  }
  absl::Status WriteByte(uint64_t iova) {
    const uint8_t byte = 0xd7;
    return dma_.Write(iova, absl::MakeConstSpan(&byte, 1));
  }

  ClientMemory memory_{kPages * kPage};
  DmaMapTable table_;
  FakeMessageDmaPath messages_{0x8000000, 16 * kPage};
  DmaMemory dma_{table_, messages_};
};

// START takes a power-of-two page size of at least 4 KiB (rows 29/32).
TEST_F(DirtyLogTest, StartRejectsBadPageSizes) {
  for (uint64_t page_size :
       {uint64_t{0}, uint64_t{1}, uint64_t{2048}, uint64_t{4097}, uint64_t{3 * kPage}}) {
    EXPECT_THAT(table_.StartLogging(Control(page_size)), FailsWithErrno(EINVAL)) << page_size;
  }
  EXPECT_THAT(table_.StartLogging(Control(uint64_t{1} << 21)), IsOk());
}

// START's ranges must be non-empty, must not wrap and must not overlap.
TEST_F(DirtyLogTest, StartRejectsBadRanges) {
  EXPECT_THAT(table_.StartLogging(Control(kPage, {{.iova = kBase, .length = 0}})),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.StartLogging(Control(kPage, {{.iova = ~uint64_t{0} - 10, .length = 20}})),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.StartLogging(Control(
                  kPage, {{.iova = 0x2000, .length = 0x1000}, {.iova = 0x1000, .length = 0x1001}})),
              FailsWithErrno(EINVAL));
  // Refused STARTs leave logging off.
  std::vector<uint8_t> bitmap;
  EXPECT_THAT(table_.Report(ReportRequest(kBase, kPage, kPage), bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.StartLogging(Control(
                  kPage, {{.iova = 0x1000, .length = 0x1000}, {.iova = 0x2000, .length = 0x1000}})),
              IsOk());
}

// A repeated START with the same page size is harmless (the bits stay);
// another page size while logging is EINVAL (row 32).
TEST_F(DirtyLogTest, SecondStartNeedsTheSamePageSize) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 3 * kPage), IsOk());
  EXPECT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  EXPECT_THAT(table_.StartLogging(Control(2 * kPage)), FailsWithErrno(EINVAL));
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), ElementsAre(3));
}

// REPORT is valid only while logging (row 29), and checks its own request.
TEST_F(DirtyLogTest, ReportNeedsLoggingAndASaneRequest) {
  std::vector<uint8_t> bitmap;
  const wire::DmaLoggingReport whole = ReportRequest(kBase, kPages * kPage, kPage);
  EXPECT_THAT(table_.Report(whole, bitmap), FailsWithErrno(EINVAL));
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  EXPECT_THAT(table_.Report(whole, bitmap), IsOk());
  EXPECT_THAT(table_.Report(ReportRequest(kBase, 0, kPage), bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.Report(ReportRequest(kBase, kPage, 3000), bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.Report(ReportRequest(~uint64_t{0} - 10, 20, kPage), bitmap),
              FailsWithErrno(EINVAL));
  // 1 TiB at one byte per page would need a 128 GiB bitmap.
  EXPECT_THAT(table_.Report(ReportRequest(0, uint64_t{1} << 40, 1), bitmap),
              FailsWithErrno(EINVAL));
  ASSERT_THAT(table_.StopLogging(), IsOk());
  EXPECT_THAT(table_.Report(whole, bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.StopLogging(), IsOk());  // already off: fine
}

// Writes through DmaMemory and MarkDirty after a zero-copy write show up
// exactly for the pages written; reads mark nothing; the report clears.
TEST_F(DirtyLogTest, ReportShowsExactlyTheWrittenPagesAndClears) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 1 * kPage + 17), IsOk());
  const std::vector<uint8_t> two_pages(kPage + 2, 0x42);  // pages 5, 6 and 7
  ASSERT_THAT(dma_.Write(kBase + 6 * kPage - 1, two_pages), IsOk());
  std::vector<uint8_t> out(3 * kPage);
  ASSERT_THAT(dma_.Read(kBase + 20 * kPage, absl::MakeSpan(out)), IsOk());
  {
    ASSERT_OK_AND_ASSIGN(DmaSgList pinned,
                         dma_.Pin(kBase + 40 * kPage, 4 * kPage, DmaDirection::kWrite));
    pinned.segments()[0].host[kPage + 5] = 1;  // page 41
    pinned.MarkDirty(kBase + 41 * kPage + 5, 1);
    pinned.MarkDirty(kBase + 50 * kPage, kPage);  // outside the pin: ignored
  }
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), ElementsAre(1, 5, 6, 7, 41));
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), IsEmpty());
  ASSERT_THAT(WriteByte(kBase + 63 * kPage + 4095), IsOk());
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), ElementsAre(63));
}

// Writes before START and after STOP are not logged; a new START starts
// from a clean log.
TEST_F(DirtyLogTest, OnlyWritesWhileLoggingCount) {
  ASSERT_THAT(WriteByte(kBase + 2 * kPage), IsOk());
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 3 * kPage), IsOk());
  ASSERT_THAT(table_.StopLogging(), IsOk());
  ASSERT_THAT(WriteByte(kBase + 4 * kPage), IsOk());
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 5 * kPage), IsOk());
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), ElementsAre(5));
}

// A coarser report page ORs 4 KiB pages together; a finer one replicates
// each 4 KiB page's bit.
TEST_F(DirtyLogTest, ReportAtOtherPageSizes) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 2 * kPage), IsOk());
  ASSERT_THAT(WriteByte(kBase + 3 * kPage), IsOk());
  ASSERT_THAT(WriteByte(kBase + 9 * kPage), IsOk());
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage, 4 * kPage), ElementsAre(0, 2));
  ASSERT_THAT(WriteByte(kBase + 1 * kPage), IsOk());
  EXPECT_THAT(ReportPages(table_, kBase, 4 * kPage, kPage / 2), ElementsAre(2, 3));
}

// A report covers its range only: 4 KiB pages partly outside it are
// reported but stay dirty (their other part may be asked for later);
// pages wholly inside are cleared; bits past the range are zero.
TEST_F(DirtyLogTest, PartialRangeClearsOnlyWholePages) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 4 * kPage + 10), IsOk());
  ASSERT_THAT(WriteByte(kBase + 5 * kPage + 10), IsOk());
  ASSERT_THAT(WriteByte(kBase + 7 * kPage + 10), IsOk());
  // [page 4 + 2 KiB, page 7 + 2 KiB) at 2 KiB pages: 4 KiB page 4 is only
  // half inside; the write at page 7 + 10 is in the range.
  // Report pages of 2 KiB: 0 is the top half of page 4, 1-2 page 5, 3-4
  // page 6, 5 the bottom half of page 7.
  EXPECT_THAT(ReportPages(table_, kBase + 4 * kPage + 2048, 3 * kPage, 2048),
              ElementsAre(0, 1, 2, 5));
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), ElementsAre(4, 7));
}

// A report may span several mappings and gaps; unmapped and fd-less pages
// read clean, and a mapping made while logging is logged from the start.
TEST_F(DirtyLogTest, ReportSpansMappingsAndGaps) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  const uint64_t second = kBase + (kPages + 2) * kPage;  // a 2-page gap
  ClientMemory more(4 * kPage);
  ASSERT_THAT(table_.Map(MapRequest(second, 4 * kPage, kReadWrite), more.Fd()), IsOk());
  const uint64_t fd_less = second + 4 * kPage;
  ASSERT_THAT(table_.Map(MapRequest(fd_less, 4 * kPage, kReadWrite), UniqueFd()), IsOk());
  const uint64_t fd_less_in_fake = 0x8000000;
  ASSERT_THAT(table_.Map(MapRequest(fd_less_in_fake, 4 * kPage, kReadWrite), UniqueFd()), IsOk());

  ASSERT_THAT(WriteByte(kBase + 63 * kPage), IsOk());
  ASSERT_THAT(WriteByte(second + 1 * kPage), IsOk());
  ASSERT_THAT(WriteByte(fd_less_in_fake), IsOk());  // through a message: not logged
  EXPECT_THAT(messages_.calls(), ElementsAre(FakeMessageDmaPath::Call{true, fd_less_in_fake, 1}));
  // Pages from kBase + 60 pages: 60..63 first mapping, 64..65 gap,
  // 66..69 second mapping, 70..73 fd-less.
  EXPECT_THAT(ReportPages(table_, kBase + 60 * kPage, 14 * kPage), ElementsAre(3, 7));
  EXPECT_THAT(ReportPages(table_, fd_less_in_fake, 4 * kPage), IsEmpty());
}

// Legacy DMA_UNMAP with GET_DIRTY_BITMAP returns the mapping's bitmap.
TEST_F(DirtyLogTest, UnmapReturnsTheDirtyBitmap) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  ASSERT_THAT(WriteByte(kBase + 0 * kPage), IsOk());
  ASSERT_THAT(WriteByte(kBase + 33 * kPage + 100), IsOk());
  wire::DmaUnmapRequest request = UnmapRequest(kBase, kPages * kPage);
  request.flags = wire::kDmaUnmapFlagGetDirtyBitmap;
  request.bitmap = wire::DmaUnmapBitmap{.pgsize = kPage, .size = 8};
  std::vector<uint8_t> bitmap;
  ASSERT_OK_AND_ASSIGN(std::vector<DmaRange> removed, table_.Unmap(request, &bitmap));
  EXPECT_EQ(removed.size(), 1u);
  EXPECT_EQ(bitmap.size(), 8u);
  EXPECT_THAT(SetPages(bitmap), ElementsAre(0, 33));
  EXPECT_EQ(table_.size(), 0u);
}

// Row 29: the legacy bitmap needs logging on, the logging page size, the
// exact bitmap size and an fd-backed mapping; a refused unmap unmaps
// nothing.
TEST_F(DirtyLogTest, UnmapBitmapErrors) {
  ASSERT_THAT(table_.Map(MapRequest(0x8000000, kPage, kReadWrite), UniqueFd()), IsOk());
  auto request = [](uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t bytes) {
    wire::DmaUnmapRequest r = UnmapRequest(iova, size);
    r.flags = wire::kDmaUnmapFlagGetDirtyBitmap;
    r.bitmap = wire::DmaUnmapBitmap{.pgsize = pgsize, .size = bytes};
    return r;
  };
  std::vector<uint8_t> bitmap;
  const uint64_t size = kPages * kPage;
  EXPECT_THAT(table_.Unmap(request(kBase, size, kPage, 8), &bitmap), FailsWithErrno(EINVAL));
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  EXPECT_THAT(table_.Unmap(request(kBase, size, 2 * kPage, 8), &bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.Unmap(request(kBase, size, kPage, 16), &bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.Unmap(request(0x8000000, kPage, kPage, 8), &bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.Unmap(request(kBase, size, kPage, 8), nullptr), FailsWithErrno(EINVAL));
  EXPECT_EQ(table_.size(), 2u);
  EXPECT_THAT(table_.Unmap(request(kBase, size, kPage, 8), &bitmap), IsOk());
}

// A disconnect (UnmapAll) also ends logging: the next client starts clean.
TEST_F(DirtyLogTest, UnmapAllStopsLogging) {
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  table_.UnmapAll();
  std::vector<uint8_t> bitmap;
  EXPECT_THAT(table_.Report(ReportRequest(kBase, kPage, kPage), bitmap), FailsWithErrno(EINVAL));
  EXPECT_THAT(table_.StartLogging(Control(2 * kPage)), IsOk());
}

// Device threads write pages while reports read and clear the log: every
// page written shows up in some report, and nothing is left afterwards.
TEST_F(DirtyLogTest, ConcurrentMarksAreNeverLost) {
  constexpr int kThreads = 4;
  ASSERT_THAT(table_.StartLogging(Control(kPage)), IsOk());
  std::atomic<int> running{kThreads};
  std::vector<std::thread> devices;
  for (int t = 0; t < kThreads; ++t) {
    devices.emplace_back([&, t] {
      // Thread t writes the pages p with p % 4 == t, several times each.
      for (int round = 0; round < 20; ++round) {
        for (uint64_t p = t; p < kPages; p += kThreads) {
          EXPECT_THAT(WriteByte(kBase + p * kPage + round), IsOk());
        }
      }
      running.fetch_sub(1, std::memory_order_release);
    });
  }
  std::vector<bool> seen(kPages, false);
  bool last = false;
  while (!last) {
    last = running.load(std::memory_order_acquire) == 0;  // one more report after the end
    for (uint64_t p : ReportPages(table_, kBase, kPages * kPage)) seen[p] = true;
  }
  for (std::thread& d : devices) d.join();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(kPages));
  EXPECT_THAT(ReportPages(table_, kBase, kPages * kPage), IsEmpty());
}

}  // namespace
}  // namespace vfu
