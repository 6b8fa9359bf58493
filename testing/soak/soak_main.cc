// The soak test as a program, for long runs:
//
//   bazel run -c opt //testing/soak -- --duration=10m
//   bazel run //testing/soak -- --patterns=all,-truncated_memfd --seed=42
//
// Prints the figures (sessions and bytes verified per pattern, errors,
// the server's fds and RSS at start and end, Stop() time) and exits 0 when
// the run passed. See soak_runner.h for what passing means.
#include <cstdint>
#include <iostream>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "testing/soak/soak_runner.h"
#include "vfu/base/log.h"

ABSL_FLAG(absl::Duration, duration, absl::Minutes(1), "how long the clients run");
ABSL_FLAG(std::string, patterns, "all",
          "patterns to run: all, a comma-separated list, or all,-name,... to leave some out");
ABSL_FLAG(uint64_t, seed, 0, "random seed (0: pick one and print it)");
ABSL_FLAG(std::string, server, "testing/soak/soak_server", "the soak_server binary");
ABSL_FLAG(std::string, log, "", "keep the server's log in this file");
ABSL_FLAG(std::string, server_log_level, "error", "the server's VFU_LOG_LEVEL (info, warning: about 1 MB/s)");
ABSL_FLAG(int64_t, rss_tolerance_mb, -1, "allowed RSS growth of the server (-1: build default)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Soak test of the vfu server with well-behaved and hostile clients.");
  absl::ParseCommandLine(argc, argv);
  // The client library logs every refused or closed connection; the
  // hostile patterns make thousands.
  vfu::SetMinLogLevel(vfu::LogLevel::kWarning);
  absl::StatusOr<std::vector<std::string>> patterns =
      vfu::soak::SelectPatterns(absl::GetFlag(FLAGS_patterns));
  if (!patterns.ok()) {
    std::cerr << patterns.status() << "\n";
    return 2;
  }
  vfu::soak::SoakOptions options;
  options.duration = absl::GetFlag(FLAGS_duration);
  options.patterns = *patterns;
  options.seed = absl::GetFlag(FLAGS_seed);
  if (options.seed == 0) options.seed = std::random_device()() | 1;
  options.server_binary = absl::GetFlag(FLAGS_server);
  options.log_path = absl::GetFlag(FLAGS_log);
  options.server_log_level = absl::GetFlag(FLAGS_server_log_level);
  if (absl::GetFlag(FLAGS_rss_tolerance_mb) >= 0) {
    options.rss_tolerance_kb = absl::GetFlag(FLAGS_rss_tolerance_mb) * 1024;
  }
  std::cout << "soak: seed " << options.seed << " (replay with --seed=" << options.seed << ")"
            << std::endl;
  absl::StatusOr<vfu::soak::SoakReport> report = vfu::soak::RunSoak(options);
  if (!report.ok()) {
    std::cerr << report.status() << "\n";
    return 2;
  }
  std::cout << report->Format();
  return report->ok() ? 0 : 1;
}
