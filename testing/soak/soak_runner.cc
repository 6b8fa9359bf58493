#include "testing/soak/soak_runner.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "testing/soak/good_patterns.h"
#include "testing/soak/hostile_device_patterns.h"
#include "testing/soak/hostile_dma_patterns.h"
#include "testing/soak/hostile_stream_patterns.h"
#include "testing/soak/nvme_patterns.h"
#include "testing/soak/session_helpers.h"
#include "testing/temp_dir.h"

namespace vfu::soak {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

// Bounds the sessions of one pattern besides the run's end, and the errors
// worth collecting from a pattern that fails every session.
constexpr uint64_t kMaxSessionsPerPattern = 1000000;
constexpr uint64_t kMaxErrorsPerPattern = 50;

uint64_t NameHash(std::string_view name) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : name) hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return hash;
}

// After a hostile session the pattern's slot must serve a new client (the
// connection negotiates VERSION): DEVICE_GET_INFO, and for an NVMe
// controller its identity registers and a reset state.
void Probe(SessionContext& context, DeviceKind kind, PatternStats& stats) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectClient(context, stats, absl::Seconds(30));
  if (!client.ok()) {
    return stats.Fail("after a session, no new client was served: ", client.status().ToString());
  }
  if (absl::StatusOr<wire::DeviceInfo> info = (*client)->GetDeviceInfo(); !info.ok()) {
    return stats.Fail("after a session, DEVICE_GET_INFO failed: ", info.status().ToString());
  }
  if (kind == DeviceKind::kNvme) ProbeNvme(**client, stats);
}

void RunPattern(Pattern& pattern, ServerProcess& server, const std::string& socket,
                const SoakOptions& options, absl::Time end, PatternStats& stats) {
  std::mt19937_64 rng(options.seed ^ NameHash(pattern.name()));
  SessionContext context;
  context.socket = socket;
  context.server = &server;
  context.scale = options.scale;
  context.session_deadline = end;
  context.rng = &rng;
  while (absl::Now() < end && stats.sessions < kMaxSessionsPerPattern &&
         stats.errors < kMaxErrorsPerPattern && server.Alive()) {
    ++stats.sessions;
    pattern.RunSession(context, stats);
    if (pattern.hostile() && server.Alive()) Probe(context, pattern.device(), stats);
  }
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status), " (",
                                               ::strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("wait status ", status);
}

}  // namespace

std::vector<std::unique_ptr<Pattern>> AllPatterns() {
  std::vector<std::unique_ptr<Pattern>> all;
  for (auto* group : {&GoodPatterns, &HostileStreamPatterns, &HostileDevicePatterns,
                      &HostileDmaPatterns, &NvmePatterns}) {
    for (std::unique_ptr<Pattern>& pattern : (*group)()) all.push_back(std::move(pattern));
  }
  return all;
}

SoakScale DefaultScale() {
  SoakScale scale;
  if (kSanitized) {
    scale.call_timeout = absl::Seconds(30);
    scale.max_copy_bytes = 256 << 10;
    scale.client_memory_bytes = 1 << 20;
    scale.burst = 600;
  }
  return scale;
}

int64_t DefaultRssToleranceKb() {
  // glibc keeps some freed memory even after malloc_trim (fragmented arenas
  // of the worker threads); ASan's quarantine holds up to 256 MiB of freed
  // blocks by default; TSan's shadow grows with the memory touched.
  // Measured in 20 s runs: +1-3 MiB plain, +136 MiB under TSan, +490 MiB
  // under ASan (quarantine and allocator caches, which malloc_trim does not
  // reach). Under ASan the memory check that counts is LeakSanitizer's at
  // the server's exit (a leak makes its exit status non-zero).
  if (kAddressSanitizer) return 1024 * 1024;
  if (kSanitized) return 512 * 1024;
  return 64 * 1024;
}

absl::Duration DefaultShortDuration() {
  return kSanitized ? absl::Seconds(20) : absl::Seconds(30);
}

absl::StatusOr<std::vector<std::string>> SelectPatterns(std::string_view spec) {
  std::vector<std::string> known;
  for (const std::unique_ptr<Pattern>& pattern : AllPatterns()) {
    known.emplace_back(pattern->name());
  }
  std::vector<std::string> selected;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    const bool remove = absl::ConsumePrefix(&item, "-");
    if (item == "all" && !remove) {
      selected = known;
      continue;
    }
    if (std::find(known.begin(), known.end(), item) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown pattern '", item,
                                                     "'; known: all, ", absl::StrJoin(known, ", ")));
    }
    auto at = std::find(selected.begin(), selected.end(), item);
    if (remove && at != selected.end()) selected.erase(at);
    if (!remove && at == selected.end()) selected.emplace_back(item);
  }
  return selected;
}

absl::StatusOr<SoakReport> RunSoak(const SoakOptions& options) {
  // A server that dies makes our writes to it fail with EPIPE, not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::unique_ptr<Pattern>> patterns;
  for (std::unique_ptr<Pattern>& pattern : AllPatterns()) {
    if (std::find(options.patterns.begin(), options.patterns.end(), pattern->name()) !=
        options.patterns.end()) {
      patterns.push_back(std::move(pattern));
    }
  }
  if (patterns.empty()) return absl::InvalidArgumentError("no pattern selected");
  std::vector<std::string> devices;
  for (const auto& pattern : patterns) devices.push_back(DeviceKindName(pattern->device()));

  const testing::ScopedTempDir temp_dir("vfu-soak");
  const std::string& dir = temp_dir.path();
  const std::string log_path = options.log_path.empty() ? dir + "/server.log" : options.log_path;
  absl::StatusOr<std::unique_ptr<ServerProcess>> started =
      ServerProcess::Start(options.server_binary, dir, devices, log_path, options.server_log_level,
                           options.scale.server_write_stall, absl::Seconds(60));
  if (!started.ok()) return started.status();
  ServerProcess& server = **started;

  SoakReport report;
  report.seed = options.seed;
  report.duration = options.duration;
  report.fd_tolerance = options.fd_tolerance;
  report.rss_tolerance_kb = options.rss_tolerance_kb;
  absl::StatusOr<ProcessFigures> baseline = server.Measure(absl::Seconds(30));
  if (!baseline.ok()) return baseline.status();
  report.baseline = *baseline;

  const absl::Time start = absl::Now();
  const absl::Time end = start + options.duration;
  report.patterns.resize(patterns.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < patterns.size(); ++i) {
      report.patterns[i].name = std::string(patterns[i]->name());
      report.patterns[i].device = devices[i];
      report.patterns[i].hostile = patterns[i]->hostile();
      threads.emplace_back(RunPattern, std::ref(*patterns[i]), std::ref(server),
                           server.socket(i), std::cref(options), end,
                           std::ref(report.patterns[i].stats));
    }
    for (std::thread& thread : threads) thread.join();
  }
  report.elapsed = absl::Now() - start;

  const bool survived = server.Alive();
  if (survived) {
    // The server notices the last disconnects on its own time; the bound
    // only limits a leak. 50 ms is the interval between looks.
    const absl::Time quiesce_end = absl::Now() + options.quiesce_bound;
    while (true) {
      absl::StatusOr<ProcessFigures> figures = server.Measure(absl::Seconds(30));
      if (!figures.ok()) break;
      report.end = *figures;
      // Fewer fds than at the start is transient too: a device's ioeventfds
      // are renewed per client, after the departed one's detach.
      if ((report.end.fds >= report.baseline.fds &&
           report.end.fds <= report.baseline.fds + options.fd_tolerance) ||
          absl::Now() >= quiesce_end) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    const StopResult stopped = server.Stop(options.stop_bound);
    report.stop_time = stopped.stop_time;
    report.after_stop = stopped.after_stop;
    report.wait_status = stopped.wait_status;
  } else {
    report.wait_status = server.ExitStatus();
  }
  report.log_bytes = server.LogBytes();
  report.log_tail = server.LogTail(3000);

  // The verdict.
  if (!survived) {
    report.failures.push_back(absl::StrCat(
        "the server process ended during the run: ",
        report.wait_status ? DescribeWaitStatus(*report.wait_status) : "unknown"));
  } else {
    // The answer is awaited for stop_bound: a stop_time is always within it.
    if (!report.stop_time.has_value()) {
      report.failures.push_back(absl::StrCat("Server::Stop() did not return within ",
                                             absl::FormatDuration(options.stop_bound)));
    }
    if (report.wait_status != 0) {
      report.failures.push_back(absl::StrCat(
          "the server did not exit cleanly after stop: ",
          report.wait_status ? DescribeWaitStatus(*report.wait_status) : "killed after the bound"));
    }
    if (report.end.fds < report.baseline.fds ||
        report.end.fds > report.baseline.fds + options.fd_tolerance) {
      report.failures.push_back(absl::StrCat("server fds: ", report.baseline.fds, " at start, ",
                                             report.end.fds, " once every client had gone"));
    }
    if (static_cast<int64_t>(report.end.rss_kb) - static_cast<int64_t>(report.baseline.rss_kb) >
        options.rss_tolerance_kb) {
      report.failures.push_back(absl::StrCat("server RSS: ", report.baseline.rss_kb,
                                             " KiB at start, ", report.end.rss_kb,
                                             " KiB at the end (tolerance ",
                                             options.rss_tolerance_kb, " KiB)"));
    }
  }
  for (const PatternResult& result : report.patterns) {
    if (result.stats.errors > 0) {
      report.failures.push_back(absl::StrCat(result.name, ": ", result.stats.errors, " errors, e.g. ",
                                             absl::StrJoin(result.stats.error_samples, " | ")));
    }
    if (!result.hostile && (result.stats.operations == 0 || result.stats.bytes_verified == 0)) {
      report.failures.push_back(absl::StrCat(result.name, ": made no progress"));
    }
  }
  return report;
}

std::string SoakReport::Format() const {
  std::string out = absl::StrFormat("soak: seed=%u duration=%s elapsed=%s patterns=%d\n", seed,
                                    absl::FormatDuration(duration), absl::FormatDuration(elapsed),
                                    patterns.size());
  absl::StrAppendFormat(&out, "%-18s %-10s %-7s %9s %10s %14s %8s %6s %8s %10s\n", "pattern",
                        "device", "kind", "sessions", "operations", "bytes_verified", "retried",
                        "errors", "fd_grow", "rss_grow_kb");
  for (const PatternResult& result : patterns) {
    const PatternStats& s = result.stats;
    absl::StrAppendFormat(&out, "%-18s %-10s %-7s %9u %10u %14u %8u %6u %8d %10d\n", result.name,
                          result.device, result.hostile ? "hostile" : "good", s.sessions,
                          s.operations, s.bytes_verified, s.retried, s.errors, s.max_fd_growth,
                          s.max_rss_growth_kb);
  }
  absl::StrAppendFormat(
      &out,
      "server: fds start=%d end=%d after_stop=%d (tolerance %d); rss_kb start=%u end=%u "
      "after_stop=%u (tolerance %d); Stop()=%s; exit=%s; log=%u bytes\n",
      baseline.fds, end.fds, after_stop.fds, fd_tolerance, baseline.rss_kb, end.rss_kb,
      after_stop.rss_kb, rss_tolerance_kb,
      stop_time ? absl::FormatDuration(*stop_time) : std::string("none"),
      wait_status ? DescribeWaitStatus(*wait_status) : std::string("killed"), log_bytes);
  if (ok()) {
    out += "result: PASS\n";
  } else {
    out += "result: FAIL\n";
    for (const std::string& failure : failures) absl::StrAppend(&out, "  - ", failure, "\n");
    absl::StrAppend(&out, "server log, last lines:\n", log_tail, "\n");
  }
  return out;
}

}  // namespace vfu::soak
