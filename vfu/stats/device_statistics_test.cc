#include "vfu/stats/device_statistics.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace vfu {
namespace {

TEST(DeviceStatisticsTest, CountsCommandsErrorsAndBytes) {
  DeviceStatistics stats;
  stats.RecordCommand(9, 1000, 0);
  stats.RecordCommand(9, 3000, 0);
  stats.RecordCommand(10, 500, 22);
  stats.RecordCommand(500, 10, 95);  // outside the protocol
  stats.RecordRegionBytes(8, 4);
  stats.RecordMappedDma(/*write=*/true, 4096);
  stats.RecordMessageDma(/*write=*/false, 100, 2);
  stats.RecordClientServed();
  stats.RecordClientRefused();
  DeviceStatistics::Snapshot s = stats.snapshot();
  if (!kStatisticsEnabled) {
    EXPECT_TRUE(s.commands.empty());
    return;
  }
  ASSERT_EQ(s.commands.size(), 3u);
  EXPECT_EQ(s.commands[0].command, 9u);
  EXPECT_EQ(s.commands[0].count, 2u);
  EXPECT_EQ(s.commands[0].errors, 0u);
  EXPECT_EQ(s.commands[0].latency.sum_ns, 4000u);
  EXPECT_EQ(s.commands[1].command, 10u);
  EXPECT_EQ(s.commands[1].errors, 1u);
  EXPECT_EQ(s.commands[2].command, DeviceStatistics::kOtherCommand);
  ASSERT_EQ(s.errors.size(), 2u);
  EXPECT_EQ(s.errors[0].errno_value, 22u);
  EXPECT_EQ(s.errors[1].errno_value, 95u);
  EXPECT_EQ(s.region_bytes_read, 8u);
  EXPECT_EQ(s.region_bytes_written, 4u);
  EXPECT_EQ(s.dma_mapped_bytes_written, 4096u);
  EXPECT_EQ(s.dma_message_bytes_read, 100u);
  EXPECT_EQ(s.dma_messages, 2u);
  EXPECT_EQ(s.clients_served, 1u);
  EXPECT_EQ(s.clients_refused, 1u);
}

TEST(DeviceStatisticsTest, LargeErrnoSharesTheLastSlot) {
  DeviceStatistics stats;
  stats.RecordCommand(1, 1, 4000);
  DeviceStatistics::Snapshot s = stats.snapshot();
  if (!kStatisticsEnabled) return;
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].errno_value, DeviceStatistics::kErrnoSlots - 1);
}

TEST(DeviceStatisticsTest, ConcurrentRecordersLoseNothing) {
  DeviceStatistics stats;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) stats.RecordCommand(9, 100, 0);
    });
  }
  for (auto& t : threads) t.join();
  DeviceStatistics::Snapshot s = stats.snapshot();
  if (!kStatisticsEnabled) return;
  ASSERT_EQ(s.commands.size(), 1u);
  EXPECT_EQ(s.commands[0].count, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.commands[0].latency.count, uint64_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace vfu
