// The connect figure comes out whole, and failed cycles are counted by kind
// instead of ending the figure.
#include "tools/bench/connect_rate.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace vfu::bench {
namespace {

TEST(ConnectRateTest, MeasuresBothSides) {
  absl::StatusOr<ConnectRateResult> result =
      MeasureConnectRate({.pass_seconds = 0.02, .rounds = 2, .max_cycles = 200});
  ASSERT_TRUE(result.ok()) << result.status();
  // The raw floor has no reason to fail.
  EXPECT_GT(result->raw.completed, 0);
  EXPECT_EQ(result->raw.failures(), 0) << FormatConnectRate(*result);
  EXPECT_GT(result->raw.rate(), 0);
  // vfu cycles were attempted, each either completed or counted as failed.
  // (Not that some completed: while a server refuses a client that connects
  // during its predecessor's teardown, a short pass on a loaded machine may
  // see only refusals, and a refusal is the figure's to report.)
  EXPECT_GT(result->vfu.completed + result->vfu.failures(), 0) << FormatConnectRate(*result);
  EXPECT_GT(result->vfu.elapsed_ns, 0);
  EXPECT_TRUE(std::isfinite(result->ratio));
  EXPECT_LE(result->ratio_min, result->ratio_max);
  EXPECT_NE(FormatConnectRate(*result).find("vfu connect + VERSION + close"), std::string::npos);
}

TEST(ConnectRateTest, CountsFailuresByKindAndKeepsGoing) {
  int calls = 0;
  ConnectCycles cycles;
  // Far more time than six calls take: the count ends the pass.
  CountConnectCycles(
      [&calls]() -> absl::Status {
        switch (calls++ % 3) {
          case 0:
            return absl::OkStatus();
          case 1:
            return absl::UnavailableError("peer closed the connection");
          default:
            return absl::InternalError(calls < 4 ? "first" : "second");
        }
      },
      /*pass_ns=*/int64_t{60} * 1000 * 1000 * 1000, /*max_cycles=*/6, cycles);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(cycles.completed, 2);
  EXPECT_EQ(cycles.refused, 2);
  EXPECT_EQ(cycles.other_failures, 2);
  EXPECT_EQ(cycles.failures(), 4);
  ASSERT_EQ(cycles.failure_samples.size(), 3u);
  EXPECT_NE(cycles.failure_samples[0].find("peer closed"), std::string::npos);

  ConnectRateResult result;
  result.vfu = cycles;
  EXPECT_NE(FormatConnectRate(result).find("FAILED: 4 cycles failed"), std::string::npos);
}

}  // namespace
}  // namespace vfu::bench
