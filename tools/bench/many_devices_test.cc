// The many-devices figure comes out whole: a row per K with real rates,
// ratios and shares, and every read a client saw served by its device (the
// measurement checks that itself).
#include "tools/bench/many_devices.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace vfu::bench {
namespace {

TEST(ManyDevicesTest, MeasuresEveryClientCount) {
  absl::StatusOr<std::vector<ManyDevicesRow>> rows = MeasureManyDevices(
      {.clients = {1, 3, 8}, .window = 4, .pass_seconds = 0.02, .rounds = 2, .workers = 2});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  const int expected_clients[] = {1, 3, 8};
  for (size_t i = 0; i < rows->size(); ++i) {
    const ManyDevicesRow& row = (*rows)[i];
    SCOPED_TRACE(row.clients);
    EXPECT_EQ(row.clients, expected_clients[i]);
    EXPECT_GT(row.aggregate_per_s, 0);
    // Every client collects at least its first window in every pass.
    EXPECT_GE(row.replies, int64_t{row.clients} * 4 * 2);
    EXPECT_TRUE(std::isfinite(row.ratio));
    EXPECT_LE(row.ratio_min, row.ratio_max);
    EXPECT_GT(row.slowest_share, 0);
    EXPECT_LE(row.slowest_share, 1.0);
    EXPECT_LE(row.slowest_share_worst_round, row.slowest_share + 1e-9);
    EXPECT_EQ(row.has_target, i > 0);
  }
  EXPECT_DOUBLE_EQ((*rows)[0].ratio, 1.0);
  EXPECT_NE(FormatManyDevices(*rows).find("slowest share"), std::string::npos);
}

TEST(ManyDevicesTest, RejectsClientCountsOutOfOrder) {
  EXPECT_FALSE(MeasureManyDevices({.clients = {8, 1}}).ok());
  EXPECT_FALSE(MeasureManyDevices({.clients = {}}).ok());
  EXPECT_FALSE(MeasureManyDevices({.clients = {0, 1}}).ok());
}

}  // namespace
}  // namespace vfu::bench
