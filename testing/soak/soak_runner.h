// The soak test of the whole server: one server process with a device
// instance per pattern (soak_server_main.cc), and for a bounded time one
// thread per enabled pattern running its sessions (pattern.h): well-behaved
// clients whose every reply and DMA byte is checked, and hostile ones. At
// the end it requires:
//   - the server process alive throughout, and exiting 0 after "stop";
//   - Server::Stop() returning within SoakOptions::stop_bound;
//   - the server's fd count back to its baseline (taken once it serves,
//     before any client) within fd_tolerance (default 0: every connection's
//     fds must be closed once its client is gone, and what a device holds
//     across clients, like its ioeventfds, renewed), waiting at most
//     quiesce_bound for the server to notice the last disconnects;
//   - its RSS, after returning freed heap to the system, within
//     rss_tolerance_kb of the baseline (see DefaultRssToleranceKb);
//   - zero errors in every pattern (wrong replies, missing interrupts, lost
//     writes, a slot that serves no new client after a hostile session);
//   - every well-behaved pattern made progress.
//
// Randomness: pattern P's sessions draw from a generator seeded with
// seed ^ hash(P), so a run is replayed (as far as thread timing allows) by
// passing the seed the report prints.
#ifndef VFU_TESTING_SOAK_SOAK_RUNNER_H_
#define VFU_TESTING_SOAK_SOAK_RUNNER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "testing/soak/pattern.h"

namespace vfu::soak {

// Scale and tolerances for this build: sanitizer builds run smaller copies
// and bursts, and their allocators keep more memory (ASan's quarantine).
SoakScale DefaultScale();
int64_t DefaultRssToleranceKb();
// A short run's length for this build (the test suite's default).
absl::Duration DefaultShortDuration();

struct SoakOptions {
  absl::Duration duration = absl::Seconds(20);
  // Names from AllPatterns(); see SelectPatterns().
  std::vector<std::string> patterns;
  uint64_t seed = 1;
  // The soak_server binary.
  std::string server_binary = "testing/soak/soak_server";
  // Where the server's log goes; empty: a temporary file, reported by tail.
  std::string log_path;
  // The server's VFU_LOG_LEVEL. Lines a client can trigger at will are
  // rate-limited (one per call site per second); "error" keeps the log to
  // what a run should never see.
  std::string server_log_level = "error";
  SoakScale scale = DefaultScale();
  absl::Duration stop_bound = absl::Seconds(10);
  absl::Duration quiesce_bound = absl::Seconds(30);
  int fd_tolerance = 0;
  int64_t rss_tolerance_kb = DefaultRssToleranceKb();
};

struct PatternResult {
  std::string name;
  std::string device;
  bool hostile = false;
  PatternStats stats;
};

struct SoakReport {
  uint64_t seed = 0;
  absl::Duration duration;
  absl::Duration elapsed;
  std::vector<PatternResult> patterns;
  ProcessFigures baseline;   // once serving, before any client
  ProcessFigures end;        // after every client left, before Stop()
  ProcessFigures after_stop; // as the server measured itself
  std::optional<absl::Duration> stop_time;
  std::optional<int> wait_status;
  uint64_t log_bytes = 0;
  std::string log_tail;
  int fd_tolerance = 0;
  int64_t rss_tolerance_kb = 0;
  // Why the run failed; empty when it passed.
  std::vector<std::string> failures;

  bool ok() const { return failures.empty(); }
  // The figures as a table, then PASS or the failures.
  std::string Format() const;
};

// Turns a --patterns value into pattern names: "all"; a comma-separated
// list of names; or "all,-name,-name" (everything but those). Unknown names
// are InvalidArgument (the message lists the known ones).
absl::StatusOr<std::vector<std::string>> SelectPatterns(std::string_view spec);

// Runs the soak. Errors only when it cannot run at all (the server does not
// start); everything the server does wrong is in the report.
absl::StatusOr<SoakReport> RunSoak(const SoakOptions& options);

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_SOAK_RUNNER_H_
