// stats_overhead: what always-on statistics (vfu/stats, DeviceStatistics)
// cost a client, measured in one run against the same server.
//
//   bazel run -c opt //tools/bench:stats_overhead
//   bazel run -c opt //tools/bench:stats_overhead -- --rounds=40 --reads=5000
//
// One Server serves two identical RegisterDevices, one with statistics
// (the default) and one without (DeviceOptions::statistics = false), each
// with its own client in this process. Rounds alternate which device goes
// first; each round measures, per device:
//   - the 4-byte REGION_READ round trip (Client::RegionRead), --reads times;
//   - pipelined 4-byte REGION_READs (--window in flight), --pipelined reads.
// Printed: the pooled median and p99 round trip of each, the pipelined
// rate of each, and the cost ratios (round trip with / without statistics;
// rate without / with), pooled and per round (median and range). The
// target: both within 3% of 1.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "testing/temp_dir.h"
#include "tools/bench/bench_io.h"
#include "tools/bench/pipelined_reads.h"
#include "tools/bench/register_device.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

ABSL_FLAG(int, rounds, 20, "rounds, alternating which device goes first");
ABSL_FLAG(int, reads, 2000, "round trips per device per round");
ABSL_FLAG(int64_t, pipelined, 20000, "pipelined reads per device per round");
ABSL_FLAG(int, window, 16, "pipelined reads in flight");

namespace vfu::bench {
namespace {

struct Figures {
  std::vector<int64_t> round_trips_ns;  // pooled over rounds
  std::vector<double> round_medians_ns;
  std::vector<double> round_rates;
  int64_t pipelined_reads = 0;
  int64_t pipelined_ns = 0;
};

double Percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))]);
}

absl::Status MeasureRound(Client& client, Figures& f) {
  std::vector<int64_t> round;
  round.reserve(absl::GetFlag(FLAGS_reads));
  for (int i = 0; i < absl::GetFlag(FLAGS_reads); ++i) {
    const int64_t start = NowNs();
    absl::StatusOr<std::vector<uint8_t>> bytes = client.RegionRead(0, 0, 4);
    const int64_t end = NowNs();
    if (!bytes.ok()) return bytes.status();
    round.push_back(end - start);
  }
  f.round_medians_ns.push_back(Percentile(round, 0.5));
  f.round_trips_ns.insert(f.round_trips_ns.end(), round.begin(), round.end());
  const int64_t start = NowNs();
  absl::StatusOr<int64_t> replies = RunPipelinedReads(
      client, absl::GetFlag(FLAGS_window), absl::GetFlag(FLAGS_pipelined), [] { return false; });
  const int64_t elapsed = NowNs() - start;
  if (!replies.ok()) return replies.status();
  f.pipelined_reads += *replies;
  f.pipelined_ns += elapsed;
  f.round_rates.push_back(static_cast<double>(*replies) * 1e9 / static_cast<double>(elapsed));
  return absl::OkStatus();
}

int Run() {
  testing::ScopedTempDir dir;
  RegisterDevice with_stats, without_stats;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create();
  if (!server.ok()) return 1;
  const std::string on_path = dir.File("on.sock"), off_path = dir.File("off.sock");
  if (!(*server)->AddDevice(on_path, with_stats).ok() ||
      !(*server)->AddDevice(off_path, without_stats, {.statistics = false}).ok() ||
      !(*server)->Start().ok()) {
    std::fprintf(stderr, "stats_overhead: cannot start the server\n");
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Client>> on = Client::Connect(on_path);
  absl::StatusOr<std::unique_ptr<Client>> off = Client::Connect(off_path);
  if (!on.ok() || !off.ok()) {
    std::fprintf(stderr, "stats_overhead: cannot connect\n");
    return 1;
  }
  Figures on_figures, off_figures;
  // Warm-up: one unrecorded round each.
  Figures scratch;
  if (!MeasureRound(**on, scratch).ok() || !MeasureRound(**off, scratch).ok()) return 1;
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    const bool on_first = r % 2 == 0;
    for (int turn = 0; turn < 2; ++turn) {
      const bool measure_on = (turn == 0) == on_first;
      absl::Status s = MeasureRound(measure_on ? **on : **off, measure_on ? on_figures : off_figures);
      if (!s.ok()) {
        std::fprintf(stderr, "stats_overhead: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  // Per-round ratios: their median (robust to a round disturbed by other
  // processes) and their range.
  struct Spread {
    double median, lo, hi;
  };
  auto spread = [](const std::vector<double>& a, const std::vector<double>& b, bool invert) {
    std::vector<double> ratios;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      ratios.push_back(invert ? b[i] / a[i] : a[i] / b[i]);
    }
    std::sort(ratios.begin(), ratios.end());
    if (ratios.empty()) return Spread{0, 0, 0};
    return Spread{ratios[ratios.size() / 2], ratios.front(), ratios.back()};
  };
  const double on_median = Percentile(on_figures.round_trips_ns, 0.5);
  const double off_median = Percentile(off_figures.round_trips_ns, 0.5);
  const double on_rate = static_cast<double>(on_figures.pipelined_reads) * 1e9 /
                         static_cast<double>(on_figures.pipelined_ns);
  const double off_rate = static_cast<double>(off_figures.pipelined_reads) * 1e9 /
                          static_cast<double>(off_figures.pipelined_ns);
  const auto rt = spread(on_figures.round_medians_ns, off_figures.round_medians_ns, false);
  const auto pl = spread(on_figures.round_rates, off_figures.round_rates, true);
  std::printf("statistics cost, %d rounds (%d round trips and %lld pipelined reads per device "
              "per round, window %d)\n",
              absl::GetFlag(FLAGS_rounds), absl::GetFlag(FLAGS_reads),
              static_cast<long long>(absl::GetFlag(FLAGS_pipelined)), absl::GetFlag(FLAGS_window));
  std::printf("  REGION_READ round trip median: with %.2f us, without %.2f us, ratio %.3f "
              "(per round: median %.3f, %.3f-%.3f); p99 with %.2f us, without %.2f us\n",
              on_median / 1e3, off_median / 1e3, on_median / off_median, rt.median, rt.lo, rt.hi,
              Percentile(on_figures.round_trips_ns, 0.99) / 1e3,
              Percentile(off_figures.round_trips_ns, 0.99) / 1e3);
  std::printf("  pipelined REGION_READ: with %.0f msg/s, without %.0f msg/s, cost ratio %.3f "
              "(per round: median %.3f, %.3f-%.3f)\n",
              on_rate, off_rate, off_rate / on_rate, pl.median, pl.lo, pl.hi);
  (*server)->Stop();
  return 0;
}

}  // namespace
}  // namespace vfu::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return vfu::bench::Run();
}
