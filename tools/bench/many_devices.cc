#include "tools/bench/many_devices.h"

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tools/bench/pipelined_reads.h"
#include "tools/bench/register_device.h"
#include "testing/temp_dir.h"
#include "tools/bench/bench_io.h"
#include "vfu/base/status_macros.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu::bench {
namespace {

// One pass of K clients: what each collected, and how long the pass took
// from the common start to the last client's end.
struct PassResult {
  std::vector<int64_t> replies;  // per client
  // Per client: time its thread was runnable but waiting for a CPU.
  std::vector<int64_t> cpu_wait_ns;
  int64_t elapsed_ns = 0;
  PassCounters counters;  // during the pass

  int64_t total() const {
    int64_t sum = 0;
    for (int64_t n : replies) sum += n;
    return sum;
  }
  size_t slowest() const {
    return static_cast<size_t>(std::min_element(replies.begin(), replies.end()) -
                               replies.begin());
  }
  // Fractions of the pass the slowest client's thread, and the mean
  // client's, spent waiting for a CPU: a slow client that waited for a CPU
  // lost to the scheduler, one that did not waited for the server.
  double slowest_cpu_wait() const {
    return static_cast<double>(cpu_wait_ns[slowest()]) / static_cast<double>(elapsed_ns);
  }
  double mean_cpu_wait() const {
    int64_t sum = 0;
    for (int64_t n : cpu_wait_ns) sum += n;
    return static_cast<double>(sum) / static_cast<double>(cpu_wait_ns.size()) /
           static_cast<double>(elapsed_ns);
  }
  // The slowest client's replies over the mean client's.
  double slowest_share() const {
    const double mean = static_cast<double>(total()) / static_cast<double>(replies.size());
    return static_cast<double>(*std::min_element(replies.begin(), replies.end())) / mean;
  }
};

// Nanoseconds the calling thread has spent runnable but waiting for a CPU
// (the second field of its schedstat); 0 where the kernel does not say.
int64_t ThreadCpuWaitNs() {
  std::ifstream schedstat("/proc/thread-self/schedstat");
  int64_t on_cpu = 0, waiting = 0;
  schedstat >> on_cpu >> waiting;
  return waiting;
}

// The server's counters, and the CPU time of the whole process (server and
// clients), at one moment; the clients' sleeps are counted by their threads.
PassCounters ReadCounters(Server& server) {
  struct rusage usage = {};
  ::getrusage(RUSAGE_SELF, &usage);
  auto ns = [](const struct timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1000000000 + static_cast<uint64_t>(tv.tv_usec) * 1000;
  };
  return {.epoll_returns = server.reactor().loop_iterations(),
          .wakeups = server.reactor().wakeups(),
          .pool_tasks = server.pool().tasks_run(),
          .cpu_ns = ns(usage.ru_utime) + ns(usage.ru_stime),
          .context_switches = static_cast<uint64_t>(usage.ru_nvcsw + usage.ru_nivcsw)};
}

PassCounters operator-(const PassCounters& a, const PassCounters& b) {
  return {a.epoll_returns - b.epoll_returns, a.wakeups - b.wakeups, a.pool_tasks - b.pool_tasks,
          a.cpu_ns - b.cpu_ns, a.context_switches - b.context_switches,
          a.client_sleeps - b.client_sleeps};
}

// Starts the first `k` clients at one moment, each on its own thread, and
// stops them all at one deadline. Checks that the devices served exactly
// the reads the clients saw answered.
absl::StatusOr<PassResult> RunPass(Server& server, std::vector<std::unique_ptr<Client>>& clients,
                                   std::vector<std::unique_ptr<RegisterDevice>>& devices, int k,
                                   int window, int64_t pass_ns) {
  uint64_t reads_before = 0;
  for (int i = 0; i < k; ++i) reads_before += devices[i]->reads();

  absl::Mutex mu;
  int waiting = 0;  // guarded by mu
  absl::Notification go;
  int64_t start_ns = 0;   // written before `go`
  int64_t deadline_ns = 0;
  std::vector<absl::StatusOr<int64_t>> replies(k, int64_t{0});
  std::vector<int64_t> end_ns(k, 0);
  std::vector<int64_t> cpu_wait_ns(k, 0);
  std::vector<uint64_t> sleeps(k, 0);
  std::vector<std::thread> threads;
  threads.reserve(k);
  for (int i = 0; i < k; ++i) {
    threads.emplace_back([&, i] {
      {
        absl::MutexLock lock(&mu);
        ++waiting;
      }
      go.WaitForNotification();
      const int64_t deadline = deadline_ns;
      const int64_t wait_before = ThreadCpuWaitNs();
      const uint64_t sleeps_before = clients[i]->stats().poll_sleeps;
      replies[i] = RunPipelinedReads(*clients[i], window, std::numeric_limits<int64_t>::max(),
                                     [deadline] { return NowNs() >= deadline; });
      end_ns[i] = NowNs();
      cpu_wait_ns[i] = ThreadCpuWaitNs() - wait_before;
      sleeps[i] = clients[i]->stats().poll_sleeps - sleeps_before;
    });
  }
  {
    // Every thread is at the start line: none is still being created while
    // the others run.
    absl::MutexLock lock(&mu);
    auto all_waiting = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return waiting == k; };
    mu.Await(absl::Condition(&all_waiting));
  }
  const PassCounters before = ReadCounters(server);
  start_ns = NowNs();
  deadline_ns = start_ns + pass_ns;
  go.Notify();
  for (std::thread& thread : threads) thread.join();

  PassResult result;
  result.counters = ReadCounters(server) - before;
  result.cpu_wait_ns = cpu_wait_ns;
  for (uint64_t n : sleeps) result.counters.client_sleeps += n;
  result.elapsed_ns = *std::max_element(end_ns.begin(), end_ns.end()) - start_ns;
  for (int i = 0; i < k; ++i) {
    if (!replies[i].ok()) {
      return absl::Status(replies[i].status().code(),
                          absl::StrCat("client ", i, ": ", replies[i].status().message()));
    }
    result.replies.push_back(*replies[i]);
  }
  uint64_t reads_after = 0;
  for (int i = 0; i < k; ++i) reads_after += devices[i]->reads();
  if (reads_after - reads_before != static_cast<uint64_t>(result.total())) {
    return absl::InternalError(absl::StrCat("the devices served ", reads_after - reads_before,
                                            " reads, the clients saw ", result.total()));
  }
  return result;
}

// What one K accumulates over the rounds.
struct Series {
  std::vector<int64_t> replies;  // per client, all rounds
  int64_t elapsed_ns = 0;
  std::vector<double> aggregates;  // per round, replies per second
  std::vector<double> shares;      // per round
  // In the round with the lowest share: see PassResult.
  double worst_slowest_cpu_wait = 0;
  double worst_mean_cpu_wait = 0;
  PassCounters counters;

  void Add(const PassResult& pass) {
    counters.epoll_returns += pass.counters.epoll_returns;
    counters.wakeups += pass.counters.wakeups;
    counters.pool_tasks += pass.counters.pool_tasks;
    counters.cpu_ns += pass.counters.cpu_ns;
    counters.context_switches += pass.counters.context_switches;
    counters.client_sleeps += pass.counters.client_sleeps;
    if (replies.empty()) replies.assign(pass.replies.size(), 0);
    for (size_t i = 0; i < replies.size(); ++i) replies[i] += pass.replies[i];
    elapsed_ns += pass.elapsed_ns;
    aggregates.push_back(static_cast<double>(pass.total()) * 1e9 /
                         static_cast<double>(pass.elapsed_ns));
    if (shares.empty() || pass.slowest_share() < *std::min_element(shares.begin(), shares.end())) {
      worst_slowest_cpu_wait = pass.slowest_cpu_wait();
      worst_mean_cpu_wait = pass.mean_cpu_wait();
    }
    shares.push_back(pass.slowest_share());
  }
};

absl::Status Validate(const ManyDevicesOptions& options) {
  if (options.clients.empty() || options.clients.front() < 1 ||
      !std::is_sorted(options.clients.begin(), options.clients.end())) {
    return absl::InvalidArgumentError("clients: K values must be positive and ascending");
  }
  if (options.window < 1 || options.window > 4096 || options.pass_seconds <= 0 ||
      options.rounds < 1 || options.workers < 1) {
    return absl::InvalidArgumentError(
        "window must be in 1..4096; pass_seconds, rounds and workers positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ManyDevicesRow>> MeasureManyDevices(const ManyDevicesOptions& options) {
  VFU_RETURN_IF_ERROR(Validate(options));
  const int max_k = options.clients.back();
  const int64_t pass_ns = static_cast<int64_t>(options.pass_seconds * 1e9);
  const testing::ScopedTempDir dir("vfu-bench");

  std::vector<std::unique_ptr<RegisterDevice>> devices;
  ServerOptions server_options;
  server_options.worker_threads = static_cast<size_t>(options.workers);
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Create(server_options));
  for (int i = 0; i < max_k; ++i) {
    devices.push_back(std::make_unique<RegisterDevice>());
    VFU_RETURN_IF_ERROR(server->AddDevice(dir.File(absl::StrCat("dev", i, ".sock")), *devices[i]));
  }
  VFU_RETURN_IF_ERROR(server->Start());

  // Every client connects once and stays for all passes: the figure is about
  // serving, not about connecting (see the connect figure).
  std::vector<std::unique_ptr<Client>> clients;
  absl::Status status;
  for (int i = 0; i < max_k && status.ok(); ++i) {
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(dir.File(absl::StrCat("dev", i, ".sock")));
    if (client.ok()) {
      clients.push_back(std::move(*client));
    } else {
      status = client.status();
    }
  }

  std::vector<Series> series(options.clients.size());
  for (int round = 0; round < options.rounds && status.ok(); ++round) {
    for (size_t j = 0; j < options.clients.size() && status.ok(); ++j) {
      const int k = options.clients[j];
      absl::StatusOr<PassResult> warmup = RunPass(*server, clients, devices, k, options.window, pass_ns / 10);
      absl::StatusOr<PassResult> pass =
          warmup.ok() ? RunPass(*server, clients, devices, k, options.window, pass_ns) : warmup;
      if (pass.ok()) {
        series[j].Add(*pass);
      } else {
        status = pass.status();
      }
    }
  }
  clients.clear();
  server->Stop();
  VFU_RETURN_IF_ERROR(status);

  std::vector<ManyDevicesRow> rows;
  const Series& baseline = series.front();
  const double baseline_aggregate =
      [&] {
        int64_t total = 0;
        for (int64_t n : baseline.replies) total += n;
        return static_cast<double>(total) * 1e9 / static_cast<double>(baseline.elapsed_ns);
      }();
  for (size_t j = 0; j < series.size(); ++j) {
    const Series& s = series[j];
    ManyDevicesRow row;
    row.clients = options.clients[j];
    for (int64_t n : s.replies) row.replies += n;
    row.aggregate_per_s = static_cast<double>(row.replies) * 1e9 / static_cast<double>(s.elapsed_ns);
    row.ratio = row.aggregate_per_s / baseline_aggregate;
    std::vector<double> ratios;
    for (size_t r = 0; r < s.aggregates.size(); ++r) {
      ratios.push_back(s.aggregates[r] / baseline.aggregates[r]);
    }
    row.ratio_min = *std::min_element(ratios.begin(), ratios.end());
    row.ratio_max = *std::max_element(ratios.begin(), ratios.end());
    const double mean = static_cast<double>(row.replies) / static_cast<double>(s.replies.size());
    row.slowest_share =
        static_cast<double>(*std::min_element(s.replies.begin(), s.replies.end())) / mean;
    row.slowest_share_worst_round = *std::min_element(s.shares.begin(), s.shares.end());
    const double replies = static_cast<double>(row.replies);
    row.epoll_returns_per_reply = static_cast<double>(s.counters.epoll_returns) / replies;
    row.wakeups_per_reply = static_cast<double>(s.counters.wakeups) / replies;
    row.pool_tasks_per_reply = static_cast<double>(s.counters.pool_tasks) / replies;
    row.cpu_us_per_reply = static_cast<double>(s.counters.cpu_ns) / 1e3 / replies;
    row.context_switches_per_reply = static_cast<double>(s.counters.context_switches) / replies;
    row.client_sleeps_per_reply = static_cast<double>(s.counters.client_sleeps) / replies;
    row.worst_round_slowest_cpu_wait = s.worst_slowest_cpu_wait;
    row.worst_round_mean_cpu_wait = s.worst_mean_cpu_wait;
    row.has_target = j > 0;
    row.met = row.has_target && row.ratio >= kManyDevicesRatioTarget &&
              row.slowest_share >= kManyDevicesShareTarget;
    rows.push_back(row);
  }
  return rows;
}

std::string FormatManyDevices(const std::vector<ManyDevicesRow>& rows) {
  std::string out = absl::StrFormat("%-8s %14s %7s %12s %14s %12s %s\n", "clients",
                                    "aggregate", "ratio", "round ratios", "slowest share",
                                    "worst round", "target");
  std::string costs =
      absl::StrFormat("%-8s %8s %8s %8s %8s %8s %8s %13s %11s\n", "clients", "epoll", "wakeup",
                      "p.task", "c.sleep", "cs", "cpu us", "slowest.wait", "mean.wait");
  for (const ManyDevicesRow& r : rows) {
    const std::string target =
        r.has_target ? absl::StrFormat("ratio >= %.1f, share >= %.1f: %s", kManyDevicesRatioTarget,
                                       kManyDevicesShareTarget, r.met ? "met" : "MISSED")
                     : "- (baseline)";
    absl::StrAppendFormat(&out, "%-8d %8.1f kmsg/s %6.2fx %5.2f..%-6.2f %14.2f %12.2f %s\n",
                          r.clients, r.aggregate_per_s / 1e3, r.ratio, r.ratio_min, r.ratio_max,
                          r.slowest_share, r.slowest_share_worst_round, target.c_str());
    absl::StrAppendFormat(&costs, "%-8d %8.3f %8.3f %8.3f %8.3f %8.3f %8.2f %12.0f%% %10.0f%%\n",
                          r.clients, r.epoll_returns_per_reply, r.wakeups_per_reply,
                          r.pool_tasks_per_reply, r.client_sleeps_per_reply,
                          r.context_switches_per_reply, r.cpu_us_per_reply, 100 * r.worst_round_slowest_cpu_wait,
                          100 * r.worst_round_mean_cpu_wait);
  }
  out +=
      "aggregate: REGION_READ replies per second of all clients together (one device and one\n"
      "thread per client, each with its window of reads in flight, one server); ratio: to the\n"
      "first row's aggregate, measured in the same rounds; slowest share: the slowest client's\n"
      "replies over the mean client's, all rounds pooled (worst round: in one round alone).\n"
      "\nPer reply: epoll_wait returns of the IO thread, its eventfd wake-ups, worker-pool\n"
      "tasks (strand runs), clients' poll(2) sleeps, context switches and CPU time of the whole\n"
      "process (server and clients); in the\n"
      "worst round, the share of the pass the slowest client's thread, and the mean client's,\n"
      "spent runnable but waiting for a CPU (the scheduler's part in a slow client):\n";
  out += costs;
  return out;
}

}  // namespace vfu::bench
