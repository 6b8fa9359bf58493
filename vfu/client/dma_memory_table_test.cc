#include "vfu/client/dma_memory_table.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/wire/dma_map.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

constexpr uint32_t kRead = wire::kDmaMapFlagRead;
constexpr uint32_t kWrite = wire::kDmaMapFlagWrite;
constexpr uint32_t kReadWrite = kRead | kWrite;

std::vector<uint8_t> Iota(size_t n, uint8_t first) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// A read inside one registration is served straight from that memory,
// without a copy.
TEST(DmaMemoryTableTest, ReadInsideOneRangePointsIntoIt) {
  std::vector<uint8_t> ram = Iota(64, 0);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x1000, absl::MakeSpan(ram), kReadWrite));
  std::vector<uint8_t> scratch;
  ASSERT_OK_AND_ASSIGN(absl::Span<const uint8_t> view, table.Read(0x1008, 4, scratch));
  EXPECT_EQ(view.data(), ram.data() + 8);
  EXPECT_THAT(view, ElementsAre(8, 9, 10, 11));
  EXPECT_TRUE(scratch.empty());
}

// Contiguous registrations act as one: reads gather, writes scatter.
TEST(DmaMemoryTableTest, AccessSpansContiguousRanges) {
  std::vector<uint8_t> a = Iota(16, 0);
  std::vector<uint8_t> b = Iota(16, 100);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x2000, absl::MakeSpan(a), kReadWrite));
  ASSERT_OK(table.Add(0x2010, absl::MakeSpan(b), kReadWrite));
  std::vector<uint8_t> scratch;
  ASSERT_OK_AND_ASSIGN(absl::Span<const uint8_t> view, table.Read(0x200e, 4, scratch));
  EXPECT_THAT(view, ElementsAre(14, 15, 100, 101));

  const std::vector<uint8_t> data = {0xa, 0xb, 0xc};
  ASSERT_OK(table.Write(0x200f, data));
  EXPECT_EQ(a[15], 0xa);
  EXPECT_EQ(b[0], 0xb);
  EXPECT_EQ(b[1], 0xc);
}

// ReadViews() gives one view per registration crossed, each pointing into
// that registration, and appends nothing when the range is not readable.
TEST(DmaMemoryTableTest, ReadViewsPointIntoEachRange) {
  std::vector<uint8_t> a = Iota(16, 0);
  std::vector<uint8_t> b = Iota(16, 100);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x2000, absl::MakeSpan(a), kReadWrite));
  ASSERT_OK(table.Add(0x2010, absl::MakeSpan(b), kReadWrite));
  absl::InlinedVector<absl::Span<const uint8_t>, 2> views;
  ASSERT_OK(table.ReadViews(0x200e, 4, views));
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].data(), a.data() + 14);
  EXPECT_THAT(views[0], ElementsAre(14, 15));
  EXPECT_EQ(views[1].data(), b.data());
  EXPECT_THAT(views[1], ElementsAre(100, 101));

  views.clear();
  EXPECT_THAT(table.ReadViews(0x200e, 40, views), FailsWithErrno(EFAULT));
  EXPECT_TRUE(views.empty());
  ASSERT_OK(table.ReadViews(0x2000, 0, views));
  EXPECT_TRUE(views.empty());
}

// Bytes outside every registration, or across a hole, are EFAULT, and a
// failed write changes nothing.
TEST(DmaMemoryTableTest, UnregisteredBytesAreEfault) {
  std::vector<uint8_t> a(16, 0);
  std::vector<uint8_t> b(16, 0);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x1000, absl::MakeSpan(a), kReadWrite));
  ASSERT_OK(table.Add(0x1020, absl::MakeSpan(b), kReadWrite));  // hole at 0x1010
  std::vector<uint8_t> scratch;
  EXPECT_THAT(table.Read(0xfff, 2, scratch), FailsWithErrno(EFAULT));
  EXPECT_THAT(table.Read(0x1010, 1, scratch), FailsWithErrno(EFAULT));
  EXPECT_THAT(table.Read(0x1030, 1, scratch), FailsWithErrno(EFAULT));
  const std::vector<uint8_t> data(32, 0xff);
  EXPECT_THAT(table.Write(0x1000, data), FailsWithErrno(EFAULT));
  EXPECT_EQ(a, std::vector<uint8_t>(16, 0));
  EXPECT_THAT(table.Read(std::numeric_limits<uint64_t>::max(), 2, scratch),
              FailsWithErrno(EFAULT));
}

// The registration's access bits are enforced per direction (EPERM).
TEST(DmaMemoryTableTest, ForbiddenDirectionIsEperm) {
  std::vector<uint8_t> read_only(8, 1);
  std::vector<uint8_t> write_only(8, 2);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x0, absl::MakeSpan(read_only), kRead));
  ASSERT_OK(table.Add(0x8, absl::MakeSpan(write_only), kWrite));
  std::vector<uint8_t> scratch;
  EXPECT_OK(table.Read(0x0, 8, scratch).status());
  EXPECT_THAT(table.Write(0x0, std::vector<uint8_t>{9}), FailsWithErrno(EPERM));
  EXPECT_THAT(table.Read(0x8, 1, scratch), FailsWithErrno(EPERM));
  EXPECT_OK(table.Write(0x8, std::vector<uint8_t>{9}));
  // Spanning both: the write-only half forbids the read.
  EXPECT_THAT(table.Read(0x4, 8, scratch), FailsWithErrno(EPERM));
}

// Overlapping registrations are refused; empty, wrapping and unknown-access
// ones too.
TEST(DmaMemoryTableTest, AddRejectsOverlapAndNonsense) {
  std::vector<uint8_t> ram(0x100);
  DmaMemoryTable table;
  ASSERT_OK(table.Add(0x1000, absl::MakeSpan(ram), kReadWrite));
  EXPECT_THAT(table.Add(0x10ff, absl::MakeSpan(ram), kReadWrite), FailsWithErrno(EEXIST));
  EXPECT_THAT(table.Add(0xf01, absl::MakeSpan(ram), kReadWrite), FailsWithErrno(EEXIST));
  EXPECT_THAT(table.Add(0x1000, absl::MakeSpan(ram).subspan(0, 1), kReadWrite),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_OK(table.Add(0xf00, absl::MakeSpan(ram), kReadWrite));   // ends at 0xfff
  EXPECT_OK(table.Add(0x1100, absl::MakeSpan(ram), kReadWrite));  // starts past the end
  EXPECT_THAT(table.Add(0x5000, absl::Span<uint8_t>(), kReadWrite),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(table.Add(std::numeric_limits<uint64_t>::max() - 0x10, absl::MakeSpan(ram),
                        kReadWrite),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(table.Add(0x9000, absl::MakeSpan(ram), 4), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(table.size(), 3u);
}

// A range registered at the very top of the address space is usable.
TEST(DmaMemoryTableTest, TopOfAddressSpace) {
  std::vector<uint8_t> ram = Iota(16, 0);
  DmaMemoryTable table;
  const uint64_t iova = std::numeric_limits<uint64_t>::max() - 15;
  ASSERT_OK(table.Add(iova, absl::MakeSpan(ram), kReadWrite));
  std::vector<uint8_t> scratch;
  ASSERT_OK_AND_ASSIGN(absl::Span<const uint8_t> view, table.Read(iova + 14, 2, scratch));
  EXPECT_THAT(view, ElementsAre(14, 15));
  EXPECT_THAT(table.Read(iova + 14, 3, scratch), FailsWithErrno(EFAULT));
}

// Remove takes the range starting at an address; RemoveWithin every range
// wholly inside a window.
TEST(DmaMemoryTableTest, RemoveAndRemoveWithin) {
  std::vector<uint8_t> ram(0x10);
  DmaMemoryTable table;
  for (uint64_t iova : {0x0, 0x10, 0x20, 0x30}) {
    ASSERT_OK(table.Add(iova, absl::MakeSpan(ram), kReadWrite));
  }
  EXPECT_THAT(table.Remove(0x8), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(table.Remove(0x0));
  // [0x10, 0x28) holds 0x10 entirely; 0x20 straddles its end and stays.
  EXPECT_EQ(table.RemoveWithin(0x10, 0x18), 1u);
  EXPECT_EQ(table.RemoveWithin(0x10, 0x20), 1u);
  EXPECT_EQ(table.size(), 1u);
  std::vector<uint8_t> scratch;
  EXPECT_THAT(table.Read(0x10, 1, scratch), FailsWithErrno(EFAULT));
  EXPECT_OK(table.Read(0x30, 1, scratch).status());
  EXPECT_EQ(table.RemoveWithin(0, std::numeric_limits<uint64_t>::max()), 1u);
  EXPECT_TRUE(table.empty());
}

// Zero-length accesses succeed anywhere and touch nothing.
TEST(DmaMemoryTableTest, EmptyAccessesSucceed) {
  DmaMemoryTable table;
  std::vector<uint8_t> scratch;
  ASSERT_OK_AND_ASSIGN(absl::Span<const uint8_t> view, table.Read(0x1234, 0, scratch));
  EXPECT_TRUE(view.empty());
  EXPECT_THAT(table.Write(0x1234, {}), IsOk());
}

}  // namespace
}  // namespace vfu
