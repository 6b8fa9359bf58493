#include "vfu/wire/dirty_bitmap.h"

#include <cerrno>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t SizeOrDie(uint64_t length, uint64_t page_size) {
  absl::StatusOr<uint64_t> size = DirtyBitmapSize(length, page_size);
  EXPECT_TRUE(size.ok()) << size.status();
  return size.value_or(~0ull);
}

// Whole u64 words: 1..64 pages take 8 bytes, 65 pages take 16 (section 7).
TEST(DirtyBitmapTest, RoundsPagesUpToWholeWords) {
  EXPECT_EQ(SizeOrDie(16 * 4096, 4096), 8u);
  EXPECT_EQ(SizeOrDie(64 * 4096, 4096), 8u);
  EXPECT_EQ(SizeOrDie(65 * 4096, 4096), 16u);
  EXPECT_EQ(SizeOrDie(128 * 4096, 4096), 16u);
  EXPECT_EQ(SizeOrDie(129 * 4096, 4096), 24u);
}

// A partial last page still needs its bit; an empty range needs none.
TEST(DirtyBitmapTest, PartialPageCountsAndEmptyRangeIsZero) {
  EXPECT_EQ(SizeOrDie(1, 4096), 8u);
  EXPECT_EQ(SizeOrDie(64 * 4096 + 1, 4096), 16u);
  EXPECT_EQ(SizeOrDie(0, 4096), 0u);
}

// The largest inputs do not wrap: 2^64 - 1 one-byte pages need 2^58 words,
// and a page size of 2^63 splits 2^64 - 1 bytes into 2 pages.
TEST(DirtyBitmapTest, ExtremesDoNotOverflow) {
  EXPECT_EQ(SizeOrDie(kMax, 1), uint64_t{1} << 61);
  EXPECT_EQ(SizeOrDie(kMax, uint64_t{1} << 63), 8u);
  EXPECT_EQ(SizeOrDie(kMax, 4096), uint64_t{1} << 49);  // 2^52 pages
}

// Section 10 row 29: page size 0 or not a power of two is EINVAL.
TEST(DirtyBitmapTest, BadPageSizeIsEinval) {
  EXPECT_THAT(DirtyBitmapSize(4096, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DirtyBitmapSize(4096, 3), FailsWithErrno(EINVAL));
  EXPECT_THAT(DirtyBitmapSize(4096, 4096 + 4096 / 2), FailsWithErrno(EINVAL));
  EXPECT_THAT(DirtyBitmapSize(4096, kMax), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
