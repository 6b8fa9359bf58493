// Connect rate: how many connect / VERSION / close cycles per second one
// client makes against a vfu::Server, next to a floor measured in the same
// run: a raw UNIX-socket connect, one round trip of the same VERSION bytes
// (echoed back by a trivial accept loop) and close.
//
// A cycle that fails (the server refused the connection, closed it before
// the VERSION reply, or anything else) is counted, not fatal: the figure
// goes on and reports the failures with their first messages. A run with
// any failure has failed (vfu_bench exits non-zero); nothing paces the
// cycles to avoid one. The rate counts completed cycles only.
#ifndef VFU_TOOLS_BENCH_CONNECT_RATE_H_
#define VFU_TOOLS_BENCH_CONNECT_RATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vfu::bench {

struct ConnectRateOptions {
  double pass_seconds = 1.0;
  int rounds = 3;
  // A pass also stops after this many attempted cycles.
  int max_cycles = 100000;
};

// Cycles one side made over all rounds.
struct ConnectCycles {
  int64_t completed = 0;
  int64_t elapsed_ns = 0;
  // Failed cycles by kind: refused = the server closed the connection before
  // answering VERSION (or refused the connect); other = anything else.
  int64_t refused = 0;
  int64_t other_failures = 0;
  // The first few distinct failure messages.
  std::vector<std::string> failure_samples;

  int64_t failures() const { return refused + other_failures; }
  // Counts a failed cycle by its kind (Unavailable: refused) and keeps its
  // message if it is new and fewer than three are kept.
  void CountFailure(const absl::Status& status);
  // Adds `other`'s counts and failure messages.
  void Add(const ConnectCycles& other);
  double rate() const {
    return elapsed_ns > 0 ? static_cast<double>(completed) * 1e9 / static_cast<double>(elapsed_ns)
                          : 0;
  }
};

struct ConnectRateResult {
  ConnectCycles vfu;
  ConnectCycles raw;
  double ratio = 0;  // vfu.rate() / raw.rate(), pooled
  double ratio_min = 0;
  double ratio_max = 0;
};

// Runs `cycle` for `pass_ns` nanoseconds (at least once) or `max_cycles`
// times, whichever comes first, counting completed and failed cycles and
// the time taken into `cycles`.
void CountConnectCycles(absl::FunctionRef<absl::Status()> cycle, int64_t pass_ns, int max_cycles,
                        ConnectCycles& cycles);

// Runs the server, the raw accept loop and the client in the calling
// process.
absl::StatusOr<ConnectRateResult> MeasureConnectRate(const ConnectRateOptions& options);

std::string FormatConnectRate(const ConnectRateResult& result);

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_CONNECT_RATE_H_
