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

}  // namespace
}  // namespace vfu
