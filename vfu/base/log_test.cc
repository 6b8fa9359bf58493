#include "vfu/base/log.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// A capture sees every line with its level, joined from the arguments.
TEST(LogTest, CaptureSeesJoinedLines) {
  std::vector<std::pair<LogLevel, std::string>> lines;
  {
    ScopedLogCapture capture([&](LogLevel level, std::string_view text) {
      lines.emplace_back(level, std::string(text));
    });
    VFU_LOG(kWarning, "client ", 7, " sent ", 2, " fds");
    VFU_LOG(kDebug, "quiet");
  }
  VFU_LOG(kError, "after capture");  // not captured
  EXPECT_THAT(lines, ElementsAre(Pair(LogLevel::kWarning, "client 7 sent 2 fds"),
                                 Pair(LogLevel::kDebug, "quiet")));
}

// Captures nest: the inner one sees lines while alive, then the outer again.
TEST(LogTest, CapturesNest) {
  int outer = 0, inner = 0;
  ScopedLogCapture a([&](LogLevel, std::string_view) { ++outer; });
  {
    ScopedLogCapture b([&](LogLevel, std::string_view) { ++inner; });
    VFU_LOG(kInfo, "x");
  }
  VFU_LOG(kInfo, "y");
  EXPECT_EQ(inner, 1);
  EXPECT_EQ(outer, 1);
}

// Within a period only the first line of a call site goes out; the next one
// after the period says how many were held back.
TEST(LogTest, LogEveryLetsOneLinePerPeriodThrough) {
  std::vector<std::string> lines;
  ScopedLogCapture capture(
      [&](LogLevel, std::string_view text) { lines.emplace_back(text); });
  // An hour: the loop cannot outlast the period, however slow the machine.
  for (int i = 0; i < 5; ++i) VFU_LOG_EVERY(absl::Hours(1), kWarning, "refused ", i);
  EXPECT_THAT(lines, ElementsAre("refused 0"));
}

TEST(LogTest, RateLimiterCountsWhatItHeldBack) {
  log_internal::RateLimiter hourly(absl::Hours(1));
  uint64_t suppressed = 99;
  EXPECT_TRUE(hourly.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_FALSE(hourly.Allow(&suppressed));
  EXPECT_FALSE(hourly.Allow(&suppressed));

  // A period of zero lets every line out, reporting what came before.
  log_internal::RateLimiter always(absl::ZeroDuration());
  EXPECT_TRUE(always.Allow(&suppressed));
  EXPECT_TRUE(always.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_EQ(log_internal::SuppressedNote(2), " (2 similar lines suppressed)");
  EXPECT_EQ(log_internal::SuppressedNote(0), "");
}

}  // namespace
}  // namespace vfu
