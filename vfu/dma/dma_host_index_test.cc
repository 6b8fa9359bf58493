#include "vfu/dma/dma_host_index.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "vfu/wire/dma_map.h"

namespace vfu::dma_internal {
namespace {

constexpr uint32_t kRead = wire::kDmaMapFlagRead;
constexpr uint32_t kWrite = wire::kDmaMapFlagWrite;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint8_t memory[3][0x1000];

// Three fd-backed mappings: [0x1000, 0x2000) rw and [0x2000, 0x3000)
// read-only (adjacent), then [0x10000, 0x11000) write-only; plus one ending
// at the top of the address space.
DmaHostIndex Sample() {
  return DmaHostIndex({
      {.iova = 0x1000, .end = 0x2000, .host = memory[0], .flags = kRead | kWrite, .mapping = nullptr},
      {.iova = 0x2000, .end = 0x3000, .host = memory[1], .flags = kRead, .mapping = nullptr},
      {.iova = 0x10000, .end = 0x11000, .host = memory[2], .flags = kWrite, .mapping = nullptr},
      {.iova = kMax - 0xfff - 0x1000, .end = kMax - 0xfff, .host = nullptr, .flags = kRead,
       .mapping = nullptr},
  });
}

TEST(DmaHostIndexTest, FindsTheMappingHoldingTheWholeRange) {
  DmaHostIndex index = Sample();
  const DmaHostIndex::Entry* e = index.Find(0x1000, 0x1000, kRead);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->host, memory[0]);
  e = index.Find(0x2fff, 1, kRead);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->iova, 0x2000u);
  e = index.Find(0x10800, 0x800, kWrite);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->host, memory[2]);
}

TEST(DmaHostIndexTest, RangesNotInsideOneMappingAreNotFound) {
  DmaHostIndex index = Sample();
  EXPECT_EQ(index.Find(0x0fff, 2, kRead), nullptr);     // starts before the first
  EXPECT_EQ(index.Find(0x1fff, 2, kRead), nullptr);     // crosses two mappings
  EXPECT_EQ(index.Find(0x2000, 0x1001, kRead), nullptr);  // runs past the end
  EXPECT_EQ(index.Find(0x3000, 1, kRead), nullptr);     // in the gap
  EXPECT_EQ(index.Find(0x11000, 1, kWrite), nullptr);   // past the last
  EXPECT_EQ(index.Find(0x1000, 0, kRead), nullptr);     // empty
}

TEST(DmaHostIndexTest, LengthsThatWouldWrapAreNotFound) {
  DmaHostIndex index = Sample();
  EXPECT_EQ(index.Find(0x1800, kMax, kRead), nullptr);
  EXPECT_EQ(index.Find(kMax - 0xfff - 0x800, kMax, kRead), nullptr);
  EXPECT_NE(index.Find(kMax - 0xfff - 0x800, 0x800, kRead), nullptr);
  EXPECT_EQ(index.Find(kMax, 1, kRead), nullptr);
}

TEST(DmaHostIndexTest, AccessMustBeAllowed) {
  DmaHostIndex index = Sample();
  EXPECT_EQ(index.Find(0x2000, 4, kWrite), nullptr);
  EXPECT_EQ(index.Find(0x10000, 4, kRead), nullptr);
  EXPECT_NE(index.Find(0x1000, 4, kRead | kWrite), nullptr);
}

TEST(DmaHostIndexTest, EmptyIndexFindsNothing) {
  DmaHostIndex index({});
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.Find(0, 1, kRead), nullptr);
}

}  // namespace
}  // namespace vfu::dma_internal
