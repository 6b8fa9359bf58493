// The lock-free copy path of DmaMapTable (TryReadMapped / TryWriteMapped):
// when it applies, and that an unmap never pulls memory from under it.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_test_util.h"
#include "vfu/wire/device_feature.h"

namespace vfu {
namespace {

using ::vfu::testing::ClientMemory;
using ::vfu::testing::IsOk;
using ::vfu::testing::kRead;
using ::vfu::testing::kReadWrite;
using ::vfu::testing::kWrite;
using ::vfu::testing::MapRequest;
using ::vfu::testing::UnmapRequest;

constexpr uint64_t kPage = 4096;

TEST(DmaFastPathTest, CopiesWithinOneFdBackedMapping) {
  ClientMemory memory(4 * kPage);
  DmaMapTable table;
  ASSERT_THAT(table.Map(MapRequest(0x10000, 4 * kPage, kReadWrite), memory.Fd()), IsOk());
  std::memset(memory.at(0x1000), 0xab, 16);

  std::vector<uint8_t> out(16);
  ASSERT_EQ(table.TryReadMapped(0x11000, absl::MakeSpan(out)), MappedAccess::kDone);
  EXPECT_EQ(out, std::vector<uint8_t>(16, 0xab));

  const std::vector<uint8_t> data(4 * kPage, 0x3c);
  ASSERT_EQ(table.TryWriteMapped(0x10000, data), MappedAccess::kDone);
  EXPECT_EQ(std::memcmp(memory.at(0), data.data(), data.size()), 0);
}

TEST(DmaFastPathTest, DeclinesWhatTranslateMustHandle) {
  ClientMemory memory(2 * kPage);
  DmaMapTable table;
  ASSERT_THAT(table.Map(MapRequest(0x10000, kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x11000, kPage, kRead, kPage), memory.Fd()), IsOk());
  ASSERT_THAT(table.Map(MapRequest(0x20000, kPage, kReadWrite), UniqueFd()), IsOk());
  std::vector<uint8_t> buffer(16);
  const absl::Span<uint8_t> out = absl::MakeSpan(buffer);

  constexpr MappedAccess kNotMapped = MappedAccess::kNotMapped;
  EXPECT_EQ(table.TryReadMapped(0x10ff8, out), kNotMapped);        // crosses two mappings
  EXPECT_EQ(table.TryWriteMapped(0x11000, buffer), kNotMapped);    // read-only mapping
  EXPECT_EQ(table.TryReadMapped(0x20000, out), kNotMapped);        // fd-less
  EXPECT_EQ(table.TryReadMapped(0x30000, out), kNotMapped);        // unmapped
  EXPECT_EQ(table.TryReadMapped(0x10000, out.first(0)), kNotMapped);  // empty
  EXPECT_EQ(table.TryReadMapped(0x11000, out), MappedAccess::kDone);

  ASSERT_THAT(table.Unmap(UnmapRequest(0x11000, kPage), nullptr), IsOk());
  EXPECT_EQ(table.TryReadMapped(0x11000, out), MappedAccess::kNotMapped);
  EXPECT_EQ(table.TryReadMapped(0x10000, out), MappedAccess::kDone);
}

TEST(DmaFastPathTest, WritesAreLoggedDirty) {
  ClientMemory memory(8 * kPage);
  DmaMapTable table;
  ASSERT_THAT(table.Map(MapRequest(0x100000, 8 * kPage, kReadWrite), memory.Fd()), IsOk());
  ASSERT_THAT(table.StartLogging({.page_size = kPage, .ranges = {{0x100000, 8 * kPage}}}), IsOk());
  const std::vector<uint8_t> data(kPage + 2, 1);
  // Pages 2, 3 and 4.
  ASSERT_EQ(table.TryWriteMapped(0x100000 + 3 * kPage - 1, data), MappedAccess::kDone);

  std::vector<uint8_t> bitmap;
  ASSERT_THAT(table.Report({.iova = 0x100000, .length = 8 * kPage, .page_size = kPage}, bitmap),
              IsOk());
  ASSERT_EQ(bitmap.size(), 8u);
  EXPECT_EQ(bitmap[0], 0b00011100);
}

// Device threads copy on the fast path, both ways, while the protocol side
// unmaps and maps the memory again and again. Each copy either finds the
// mapping and completes on live memory, or declines; a copy running on
// munmap()ed memory would crash the test. The reader and the writer use
// different halves, so the only races are the ones under test.
TEST(DmaFastPathTest, UnmapWaitsForCopiesInProgress) {
  constexpr uint64_t kSize = 4 << 20;
  constexpr uint64_t kIova = 0x40000000;
  ClientMemory memory(kSize);
  std::memset(memory.at(0), 0x77, kSize);
  DmaMapTable table;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> copies{0};
  std::atomic<uint64_t> wrong_bytes{0};

  std::vector<std::thread> devices;
  for (int t = 0; t < 2; ++t) {
    devices.emplace_back([&, t] {
      std::vector<uint8_t> buffer(kSize / 2, 0x77);
      while (!stop.load(std::memory_order_relaxed)) {
        const bool done = (t == 0 ? table.TryReadMapped(kIova, absl::MakeSpan(buffer))
                                  : table.TryWriteMapped(kIova + kSize / 2, buffer)) ==
                          MappedAccess::kDone;
        if (!done) continue;
        copies.fetch_add(1, std::memory_order_relaxed);
        if (t == 0 && (buffer.front() != 0x77 || buffer.back() != 0x77)) {
          wrong_bytes.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    ASSERT_THAT(table.Map(MapRequest(kIova, kSize, kReadWrite), memory.Fd()), IsOk());
    // Let at least one copy start on this mapping before pulling it.
    const uint64_t before = copies.load();
    while (copies.load() == before && i % 2 == 0) std::this_thread::yield();
    ASSERT_THAT(table.Unmap(UnmapRequest(kIova, kSize), nullptr), IsOk());
  }
  stop.store(true);
  for (std::thread& d : devices) d.join();
  EXPECT_GT(copies.load(), 0u);
  EXPECT_EQ(wrong_bytes.load(), 0u);
}

}  // namespace
}  // namespace vfu
