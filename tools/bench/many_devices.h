// Many devices, one IO thread: K devices in one vfu::Server and K clients,
// one per device, each on its own thread, all doing pipelined 4-byte
// REGION_READs (tools/bench/pipelined_reads.h) at once for the same time.
//
// Per K: the aggregate rate (replies per second of all clients), its ratio
// to the aggregate with the fewest clients measured in the same round
// (the first entry of `clients`, normally 1: one client alone), and the
// slowest client's share of the mean (its replies over the mean client's).
// Targets, for every K above the first: the aggregate holds up (ratio
// >= 1.0) and no client gets less than half the mean (share >= 0.5).
//
// Rounds interleave the K values (K=1, 8, 64, K=1, 8, 64, ...), so that
// every ratio compares passes close in time on a noisy machine.
#ifndef VFU_TOOLS_BENCH_MANY_DEVICES_H_
#define VFU_TOOLS_BENCH_MANY_DEVICES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vfu::bench {

struct ManyDevicesOptions {
  // K values, ascending; the first is the baseline of the ratios.
  std::vector<int> clients = {1, 8, 64};
  int window = 32;  // reads in flight per client
  double pass_seconds = 1.0;
  int rounds = 3;
  int workers = 2;  // the server's worker threads
};

inline constexpr double kManyDevicesRatioTarget = 1.0;
inline constexpr double kManyDevicesShareTarget = 0.5;

// Counters over a pass: the server's, the clients' and the process's.
struct PassCounters {
  uint64_t epoll_returns = 0;  // Reactor::loop_iterations()
  uint64_t wakeups = 0;        // Reactor::wakeups()
  uint64_t pool_tasks = 0;     // WorkerPool::tasks_run()
  uint64_t cpu_ns = 0;         // the whole process
  uint64_t context_switches = 0;  // the whole process
  uint64_t client_sleeps = 0;  // ClientStats::poll_sleeps, all clients
};

struct ManyDevicesRow {
  int clients = 0;
  double aggregate_per_s = 0;  // all rounds pooled
  // aggregate / the baseline's aggregate, pooled, and its spread over rounds.
  double ratio = 0;
  double ratio_min = 0;
  double ratio_max = 0;
  // The slowest client's replies over the mean client's, all rounds pooled,
  // and in the worst round alone.
  double slowest_share = 0;
  double slowest_share_worst_round = 0;
  int64_t replies = 0;  // measured replies, all clients and rounds
  // Per reply, all rounds: the IO thread's epoll_wait returns and eventfd
  // wake-ups, worker-pool tasks (a strand run serves every command its
  // connection has queued), clients' poll(2) sleeps, and context switches
  // and CPU time of the whole process.
  double epoll_returns_per_reply = 0;
  double wakeups_per_reply = 0;
  double pool_tasks_per_reply = 0;
  double cpu_us_per_reply = 0;
  double context_switches_per_reply = 0;
  double client_sleeps_per_reply = 0;
  // In the round with the lowest share: the fraction of the pass the
  // slowest client's thread, and the mean client's, spent runnable but
  // waiting for a CPU. A slow client that waited for a CPU lost to the
  // scheduler (or other processes); one that did not waited for the server.
  double worst_round_slowest_cpu_wait = 0;
  double worst_round_mean_cpu_wait = 0;
  bool has_target = false;  // every row but the baseline
  bool met = false;
};

// Runs the server and every client thread in the calling process.
absl::StatusOr<std::vector<ManyDevicesRow>> MeasureManyDevices(const ManyDevicesOptions& options);

std::string FormatManyDevices(const std::vector<ManyDevicesRow>& rows);

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_MANY_DEVICES_H_
