#include "vfu/base/log.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <thread>
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

// One event per interval gets through; the next one through tells how many
// were held back in between.
TEST(LogRateLimiterTest, AllowsOnePerIntervalAndCountsTheRest) {
  LogRateLimiter limiter(absl::Seconds(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  uint64_t suppressed = 99;
  EXPECT_TRUE(limiter.Allow(t0, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_FALSE(limiter.Allow(t0, &suppressed));
  EXPECT_FALSE(limiter.Allow(t0 + absl::Milliseconds(999), &suppressed));
  EXPECT_TRUE(limiter.Allow(t0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 2u);
  EXPECT_FALSE(limiter.Allow(t0 + absl::Milliseconds(1500), &suppressed));
  EXPECT_TRUE(limiter.Allow(t0 + absl::Seconds(5), &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

TEST(LogRateLimiterTest, SuppressedCountAppearsInTheNextLine) {
  EXPECT_EQ(log_internal::WithSuppressed("x", 0), "x");
  EXPECT_EQ(log_internal::WithSuppressed("x", 3), "x (3 similar lines suppressed)");
}

// A burst from one call site: every line still reaches a capture (so tests
// see them), but only the first is written out: stderr gets exactly one line
// of the burst.
TEST(LogRateLimiterTest, MacroWritesOneLineOfABurstAndCapturesAll) {
  std::vector<std::string> lines;
  // stderr goes to a memfd for the burst, so what is written can be counted.
  const int saved_stderr = ::dup(STDERR_FILENO);
  ASSERT_GE(saved_stderr, 0);
  const int sink = ::memfd_create("stderr", MFD_CLOEXEC);
  ASSERT_GE(sink, 0);
  ASSERT_EQ(::dup2(sink, STDERR_FILENO), STDERR_FILENO);
  {
    ScopedLogCapture capture(
        [&](LogLevel, std::string_view text) { lines.emplace_back(text); });
    for (int i = 0; i < 100; ++i) VFU_LOG_RATE_LIMITED(kWarning, "burst ", i);
  }
  ::dup2(saved_stderr, STDERR_FILENO);
  ::close(saved_stderr);
  std::string written(static_cast<size_t>(::lseek(sink, 0, SEEK_END)), '\0');
  ASSERT_EQ(::pread(sink, written.data(), written.size(), 0),
            static_cast<ssize_t>(written.size()));
  ::close(sink);

  ASSERT_EQ(lines.size(), 100u);
  EXPECT_EQ(lines[0], "burst 0");
  EXPECT_EQ(lines[99], "burst 99");
  size_t written_lines = 0;
  for (size_t at = written.find("burst "); at != std::string::npos;
       at = written.find("burst ", at + 1)) {
    ++written_lines;
  }
  EXPECT_EQ(written_lines, 1u) << written;
}

// A thread sink takes this thread's lines at its level and above; other
// threads' lines and the lines below its level do not reach it; an inner
// sink shadows the outer one until it goes.
struct SinkLines {
  std::vector<std::pair<LogLevel, std::string>> lines;
  static void Write(void* arg, LogLevel level, std::string_view text) {
    static_cast<SinkLines*>(arg)->lines.emplace_back(level, std::string(text));
  }
};

TEST(LogTest, ThreadSinkTakesThisThreadsLinesAtItsLevel) {
  SinkLines outer, inner;
  {
    ScopedThreadLogSink sink(LogLevel::kWarning, &SinkLines::Write, &outer);
    EXPECT_TRUE(log_internal::Enabled(LogLevel::kWarning));
    EXPECT_FALSE(log_internal::Enabled(LogLevel::kInfo));
    VFU_LOG(kInfo, "below the sink's level");
    VFU_LOG(kError, "to the ", "outer sink");
    {
      ScopedThreadLogSink shadow(LogLevel::kDebug, &SinkLines::Write, &inner);
      VFU_LOG(kDebug, "to the inner sink");
      VFU_LOG_RATE_LIMITED(kWarning, "rate limited, to the inner sink");
    }
    std::thread other([] { VFU_LOG(kWarning, "another thread's line"); });
    other.join();
    VFU_LOG(kWarning, "outer again");
  }
  EXPECT_THAT(outer.lines, ElementsAre(Pair(LogLevel::kError, "to the outer sink"),
                                       Pair(LogLevel::kWarning, "outer again")));
  EXPECT_THAT(inner.lines, ElementsAre(Pair(LogLevel::kDebug, "to the inner sink"),
                                       Pair(LogLevel::kWarning, "rate limited, to the inner sink")));
}

// A sink without a writer drops every line of its thread.
TEST(LogTest, ThreadSinkWithoutWriterDropsLines) {
  ScopedThreadLogSink sink(LogLevel::kDebug, nullptr, nullptr);
  EXPECT_FALSE(log_internal::Enabled(LogLevel::kError));
}

}  // namespace
}  // namespace vfu
