// The PRP walk on its own, over a fake memory of PRP list pages: offsets,
// page crossings, lists, list chaining, and every misalignment rule.
#include "devices/nvme/prp_walker.h"

#include <cstring>
#include <map>

#include "devices/nvme/nvme_defs.h"
#include "gtest/gtest.h"

namespace vfu::nvme {
namespace {

constexpr uint64_t kPage = 4096;

// Client memory holding PRP lists: iova -> 64-bit entries, word-addressed.
class ListMemory {
 public:
  void Put(uint64_t iova, uint64_t entry) { words_[iova] = entry; }
  // Writes entries starting at `iova`, one after the other.
  void PutList(uint64_t iova, const std::vector<uint64_t>& entries) {
    for (size_t i = 0; i < entries.size(); ++i) Put(iova + 8 * i, entries[i]);
  }
  bool Read(uint64_t iova, absl::Span<uint8_t> out) {
    ++reads_;
    if (fail_at_ != 0 && iova <= fail_at_ && fail_at_ < iova + out.size()) return false;
    for (size_t i = 0; i < out.size(); i += 8) {
      auto it = words_.find(iova + i);
      const uint64_t word = it == words_.end() ? 0 : it->second;
      std::memcpy(out.data() + i, &word, 8);
    }
    return true;
  }
  uint64_t fail_at_ = 0;
  int reads_ = 0;

 private:
  std::map<uint64_t, uint64_t> words_;
};

struct Walk {
  uint16_t status;
  std::vector<DataSegment> segments;
};

Walk DoWalk(ListMemory& memory, uint64_t prp1, uint64_t prp2, uint64_t length,
            uint64_t page = kPage) {
  Walk walk;
  walk.status = WalkPrps(
      prp1, prp2, length, page,
      [&memory](uint64_t iova, absl::Span<uint8_t> out) { return memory.Read(iova, out); },
      walk.segments);
  return walk;
}

TEST(PrpWalkerTest, TransferInsidePrp1PageIgnoresPrp2) {
  ListMemory memory;
  Walk walk = DoWalk(memory, 0x10200, /*prp2=*/0xdead, 512);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{{0x10200, 512}}));
  EXPECT_EQ(memory.reads_, 0);
}

TEST(PrpWalkerTest, OffsetPrp1CrossesIntoPrp2Page) {
  ListMemory memory;
  Walk walk = DoWalk(memory, 0x10e00, 0x50000, 4096);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{{0x10e00, 512}, {0x50000, 3584}}));
}

TEST(PrpWalkerTest, ContiguousPagesMergeIntoOneSegment) {
  ListMemory memory;
  Walk walk = DoWalk(memory, 0x10000, 0x11000, 8192);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{{0x10000, 8192}}));
}

TEST(PrpWalkerTest, MisalignedPrp2IsInvalidPrpOffset) {
  ListMemory memory;
  EXPECT_EQ(DoWalk(memory, 0x10000, 0x50008, 8192).status, kInvalidPrpOffset);
}

TEST(PrpWalkerTest, Prp1MustBeDwordAligned) {
  ListMemory memory;
  EXPECT_EQ(DoWalk(memory, 0x10002, 0, 16).status, kInvalidPrpOffset);
}

TEST(PrpWalkerTest, ListDescribesEveryPageAfterThefirst) {
  ListMemory memory;
  memory.PutList(0x90000, {0x30000, 0x70000, 0x31000});
  Walk walk = DoWalk(memory, 0x20800, 0x90000, 2048 + 3 * 4096);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{
                               {0x20800, 2048}, {0x30000, 4096}, {0x70000, 4096}, {0x31000, 4096}}));
}

TEST(PrpWalkerTest, LastListEntryMayBePartial) {
  ListMemory memory;
  memory.PutList(0x90000, {0x30000, 0x40000});
  Walk walk = DoWalk(memory, 0x20000, 0x90000, 4096 + 4096 + 100);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments,
            (std::vector<DataSegment>{{0x20000, 4096}, {0x30000, 4096}, {0x40000, 100}}));
}

TEST(PrpWalkerTest, ListStartingInsideAPageChainsAtThePageEnd) {
  ListMemory memory;
  // The list starts 16 bytes before its page ends: one data entry, then the
  // pointer to the next list page, which holds the rest.
  const uint64_t list = 0x90000 + kPage - 16;
  memory.PutList(list, {0x30000, 0xa0000});
  memory.PutList(0xa0000, {0x50000, 0x60000});
  Walk walk = DoWalk(memory, 0x20000, list, 4 * 4096);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{
                               {0x20000, 4096}, {0x30000, 4096}, {0x50000, 4096}, {0x60000, 4096}}));
}

TEST(PrpWalkerTest, FullListPageChainsWithItsLastEntry) {
  ListMemory memory;
  // 1 MiB from a page-aligned PRP1: 255 more pages. The list starts 64
  // entries before its page ends: 63 data entries, then the chain pointer.
  const uint64_t list = 0x90000 + kPage - 64 * 8;
  std::vector<uint64_t> first;
  for (int i = 0; i < 63; ++i) first.push_back(0x1000000 + i * kPage);
  first.push_back(0xa0000);  // chain
  memory.PutList(list, first);
  std::vector<uint64_t> second;
  for (int i = 63; i < 255; ++i) second.push_back(0x1000000 + i * kPage);
  memory.PutList(0xa0000, second);
  Walk walk = DoWalk(memory, 0x20000, list, 256 * 4096);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments,
            (std::vector<DataSegment>{{0x20000, 4096}, {0x1000000, 255 * 4096}}));
}

TEST(PrpWalkerTest, MisalignedListEntryIsInvalidPrpOffset) {
  ListMemory memory;
  memory.PutList(0x90000, {0x30000, 0x40010});
  EXPECT_EQ(DoWalk(memory, 0x20000, 0x90000, 3 * 4096).status, kInvalidPrpOffset);
}

TEST(PrpWalkerTest, MisalignedChainPointerIsInvalidPrpOffset) {
  ListMemory memory;
  const uint64_t list = 0x90000 + kPage - 16;
  memory.PutList(list, {0x30000, 0xa0008});
  EXPECT_EQ(DoWalk(memory, 0x20000, list, 4 * 4096).status, kInvalidPrpOffset);
}

TEST(PrpWalkerTest, ListPointerMustBeQwordAligned) {
  ListMemory memory;
  EXPECT_EQ(DoWalk(memory, 0x20000, 0x90004, 3 * 4096).status, kInvalidPrpOffset);
}

TEST(PrpWalkerTest, UnreadableListIsDataTransferError) {
  ListMemory memory;
  memory.fail_at_ = 0x90000;
  EXPECT_EQ(DoWalk(memory, 0x20000, 0x90000, 3 * 4096).status, kDataTransferError);
}

TEST(PrpWalkerTest, LengthZeroOrPastMdtsIsInvalidField) {
  ListMemory memory;
  EXPECT_EQ(DoWalk(memory, 0x20000, 0, 0).status, kInvalidField);
  EXPECT_EQ(DoWalk(memory, 0x20000, 0x90000, kMaxTransferBytes + 1).status, kInvalidField);
}

TEST(PrpWalkerTest, LargerPagesUseTheirOwnBoundaries) {
  ListMemory memory;
  Walk walk = DoWalk(memory, 0x20000, 0x40000, 16384, /*page=*/8192);
  ASSERT_EQ(walk.status, kSuccess);
  EXPECT_EQ(walk.segments, (std::vector<DataSegment>{{0x20000, 8192}, {0x40000, 8192}}));
  EXPECT_EQ(DoWalk(memory, 0x20000, 0x41000, 16384, 8192).status, kInvalidPrpOffset);
}

}  // namespace
}  // namespace vfu::nvme
