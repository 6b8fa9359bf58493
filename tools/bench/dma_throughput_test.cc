// The DMA figures come out whole: every path, direction and size measured,
// with rates and ratios that are real numbers. (Speed itself is the
// benchmark's to report, not a test's to judge.)
#include "tools/bench/dma_throughput.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vfu::bench {
namespace {

TEST(DmaThroughputTest, MeasuresEveryPathDirectionAndSize) {
  absl::StatusOr<std::vector<DmaThroughputRow>> rows =
      MeasureDmaThroughput({.pass_seconds = 0.01, .rounds = 1});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 12u);
  int targets = 0;
  for (const DmaThroughputRow& row : *rows) {
    SCOPED_TRACE(row.path + (row.write ? " write " : " read ") + std::to_string(row.transfer));
    EXPECT_GT(row.mib_per_s, 0);
    EXPECT_GT(row.floor_mib_per_s, 0);
    EXPECT_TRUE(std::isfinite(row.ratio));
    EXPECT_LE(row.ratio_min, row.ratio);
    EXPECT_GE(row.ratio_max, row.ratio);
    if (row.target != 0) ++targets;
  }
  // mapped reads at three sizes, message reads at 1 MiB.
  EXPECT_EQ(targets, 4);
  const std::string table = FormatDmaThroughput(*rows);
  EXPECT_NE(table.find("messages write"), std::string::npos);
  EXPECT_NE(table.find("mapped read"), std::string::npos);
}

}  // namespace
}  // namespace vfu::bench
