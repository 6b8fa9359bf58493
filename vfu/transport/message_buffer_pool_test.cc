#include "vfu/transport/message_buffer_pool.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace vfu {
namespace {

constexpr size_t kLarge = 1 << 20;

// A recycled buffer is taken again for a message of its size: same storage,
// old bytes kept (no zero-fill).
TEST(MessageBufferPoolTest, TakeReusesRecycledStorage) {
  MessageBufferPool pool;
  std::vector<uint8_t> first = pool.Take(kLarge);
  ASSERT_EQ(first.size(), kLarge);
  first.back() = 0xab;
  const uint8_t* storage = first.data();
  pool.Recycle(std::move(first));
  EXPECT_EQ(pool.size(), 1u);
  std::vector<uint8_t> second = pool.Take(kLarge);
  EXPECT_EQ(second.data(), storage);
  EXPECT_EQ(second.size(), kLarge);
  EXPECT_EQ(second.back(), 0xab);
  EXPECT_EQ(pool.size(), 0u);
}

// A smaller request reuses a buffer up to twice its size; a much smaller or
// a larger one gets a new buffer.
TEST(MessageBufferPoolTest, TakeOnlyReusesAFittingCapacity) {
  MessageBufferPool pool;
  pool.Recycle(std::vector<uint8_t>(kLarge));
  std::vector<uint8_t> larger = pool.Take(kLarge + 1);
  EXPECT_EQ(larger.size(), kLarge + 1);
  EXPECT_EQ(pool.size(), 1u);
  std::vector<uint8_t> much_smaller = pool.Take(kLarge / 2 - 1);
  EXPECT_EQ(much_smaller.size(), kLarge / 2 - 1);
  EXPECT_EQ(pool.size(), 1u);
  std::vector<uint8_t> smaller = pool.Take(kLarge / 2);
  EXPECT_EQ(smaller.size(), kLarge / 2);
  EXPECT_EQ(pool.size(), 0u);
}

// Small buffers are not kept, nor more than the pool's bounds.
TEST(MessageBufferPoolTest, KeepsOnlyLargeBuffersWithinBounds) {
  MessageBufferPool pool;
  pool.Recycle(std::vector<uint8_t>(MessageBufferPool::kMinCapacity - 1));
  EXPECT_EQ(pool.size(), 0u);
  pool.Recycle(std::vector<uint8_t>(MessageBufferPool::kMaxBytes + 1));
  EXPECT_EQ(pool.size(), 0u);
  for (size_t i = 0; i < MessageBufferPool::kMaxBuffers + 2; ++i) {
    pool.Recycle(std::vector<uint8_t>(MessageBufferPool::kMinCapacity));
  }
  EXPECT_EQ(pool.size(), MessageBufferPool::kMaxBuffers);
  MessageBufferPool by_bytes;
  for (int i = 0; i < 3; ++i) {
    by_bytes.Recycle(std::vector<uint8_t>(MessageBufferPool::kMaxBytes / 2));
  }
  EXPECT_EQ(by_bytes.size(), 2u);
}

}  // namespace
}  // namespace vfu
