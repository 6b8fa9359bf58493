// DMA throughput figures for vfu_bench: how fast device code moves client
// memory, next to floors measured in the same run.
//
//   mapped    DeviceContext::DmaRead over memory the client shared with an
//             fd, vs plain memcpy from the same kind of memory (target:
//             at least 0.9x);
//   messages  DeviceContext::DmaRead over fd-less memory, so every chunk is
//             a DMA_READ the client (another process) answers, vs a raw
//             UNIX-socket request/response moving the same bytes (target:
//             at least 0.7x at 1 MiB).
// The same two paths are then measured writing (DmaWrite, DMA_WRITE
// messages; floors memcpy into the mapping, and a raw send of the bytes
// answered by an 8-byte acknowledgement), without targets.
#ifndef VFU_TOOLS_BENCH_DMA_THROUGHPUT_H_
#define VFU_TOOLS_BENCH_DMA_THROUGHPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vfu::bench {

struct DmaThroughputRow {
  std::string path;     // "mapped" or "messages"
  bool write;           // DmaWrite rather than DmaRead
  uint64_t transfer;    // bytes per call
  double mib_per_s;     // vfu
  double floor_mib_per_s;
  double ratio;         // median over rounds of vfu / floor
  double ratio_min;
  double ratio_max;
  double target;        // 0 when the row has none
};

struct DmaThroughputOptions {
  double pass_seconds = 0.3;
  int rounds = 5;
};

// Forks the client process itself; call it while the calling process has
// no other threads.
absl::StatusOr<std::vector<DmaThroughputRow>> MeasureDmaThroughput(
    const DmaThroughputOptions& options);

std::string FormatDmaThroughput(const std::vector<DmaThroughputRow>& rows);

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_DMA_THROUGHPUT_H_
