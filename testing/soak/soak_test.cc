// The soak test in the test suite: a short run of every pattern against one
// server process (soak_runner.h). Flags after the test's own:
//   --patterns=all,-name   run a subset (see SelectPatterns)
//   --duration=20s         default: DefaultShortDuration() for this build
//   --seed=N               default: a fresh seed, printed
//   --server=PATH          default: testing/soak/soak_server
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/soak/soak_runner.h"
#include "vfu/base/log.h"

ABSL_FLAG(std::string, patterns, "all", "patterns to run (see SelectPatterns)");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(), "run length (0: build default)");
ABSL_FLAG(uint64_t, seed, 0, "random seed (0: pick one and print it)");
ABSL_FLAG(std::string, server, "testing/soak/soak_server",
          "the server binary (soak_server, or capi_soak_server for the C API)");

namespace vfu::soak {
namespace {

TEST(SoakTest, ServerSurvivesHostileClientsAndServesWellBehavedOnes) {
  absl::StatusOr<std::vector<std::string>> patterns =
      SelectPatterns(absl::GetFlag(FLAGS_patterns));
  ASSERT_TRUE(patterns.ok()) << patterns.status();
  SoakOptions options;
  options.patterns = *patterns;
  options.duration = absl::GetFlag(FLAGS_duration) > absl::ZeroDuration()
                         ? absl::GetFlag(FLAGS_duration)
                         : DefaultShortDuration();
  options.seed = absl::GetFlag(FLAGS_seed);
  if (options.seed == 0) options.seed = std::random_device()() | 1;
  options.server_binary = absl::GetFlag(FLAGS_server);
  std::cout << "soak: seed " << options.seed << " (replay with --seed=" << options.seed << ")"
            << std::endl;
  absl::StatusOr<SoakReport> report = RunSoak(options);
  ASSERT_TRUE(report.ok()) << report.status();
  std::cout << report->Format() << std::flush;
  EXPECT_TRUE(report->ok()) << report->Format();
}

TEST(SelectPatternsTest, AllMinusSomeLeavesThemOut) {
  absl::StatusOr<std::vector<std::string>> all = SelectPatterns("all");
  absl::StatusOr<std::vector<std::string>> some = SelectPatterns("all,-garbage,-good_dma");
  ASSERT_TRUE(all.ok() && some.ok());
  EXPECT_EQ(some->size() + 2, all->size());
  EXPECT_EQ(std::count(some->begin(), some->end(), "garbage"), 0);
  EXPECT_EQ(std::count(all->begin(), all->end(), "garbage"), 1);
}

TEST(SelectPatternsTest, UnknownNameIsRejected) {
  EXPECT_EQ(SelectPatterns("good_gpio,no_such_pattern").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vfu::soak

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  // The client library logs every refused or closed connection; the
  // hostile patterns make thousands.
  vfu::SetMinLogLevel(vfu::LogLevel::kWarning);
  return RUN_ALL_TESTS();
}
