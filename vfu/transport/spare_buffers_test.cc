#include "vfu/transport/spare_buffers.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace vfu {
namespace {

TEST(SpareBuffersTest, FreshBufferHasRoomForASmallMessage) {
  SpareBuffers spares;
  std::vector<uint8_t> buffer = spares.Take();
  EXPECT_TRUE(buffer.empty());
  EXPECT_GE(buffer.capacity(), SpareBuffers::kMinCapacity);
}

TEST(SpareBuffersTest, GivenBufferComesBackEmptyWithItsStorage) {
  SpareBuffers spares;
  std::vector<uint8_t> buffer = spares.Take();
  buffer.assign(100, 0xab);
  const uint8_t* storage = buffer.data();
  spares.Give(std::move(buffer));
  ASSERT_EQ(spares.size(), 1u);
  std::vector<uint8_t> again = spares.Take();
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(again.data(), storage);
  EXPECT_EQ(spares.size(), 0u);
}

TEST(SpareBuffersTest, TooSmallOrTooLargeBuffersAreNotKept) {
  SpareBuffers spares;
  spares.Give(std::vector<uint8_t>(SpareBuffers::kMinCapacity - 1));
  spares.Give(std::vector<uint8_t>(SpareBuffers::kMaxCapacity + 1));
  EXPECT_EQ(spares.size(), 0u);
  spares.Give(std::vector<uint8_t>(SpareBuffers::kMaxCapacity));
  EXPECT_EQ(spares.size(), 1u);
}

TEST(SpareBuffersTest, KeepsAtMostMaxBuffers) {
  SpareBuffers spares;
  for (size_t i = 0; i < SpareBuffers::kMaxBuffers + 10; ++i) {
    spares.Give(std::vector<uint8_t>(SpareBuffers::kMinCapacity));
  }
  EXPECT_EQ(spares.size(), SpareBuffers::kMaxBuffers);
}

}  // namespace
}  // namespace vfu
