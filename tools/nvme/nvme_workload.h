// The fio-like workload of tools/nvme: a pattern of reads or writes
// (random or sequential, any block size) kept at a queue depth on each of
// several queues for a time, measured as IOPS, bandwidth and latency
// percentiles; and the same pattern as the floor, with preadv/pwritev on
// the namespace's file from one thread of this process.
#ifndef VFU_TOOLS_NVME_NVME_WORKLOAD_H_
#define VFU_TOOLS_NVME_NVME_WORKLOAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "devices/nvme/nvme_driver.h"

namespace vfu::nvme {

struct Workload {
  bool random = true;
  bool write = false;
  uint32_t block_bytes = 4096;
  uint32_t queue_depth = 32;
  uint32_t queues = 1;
  absl::Duration duration = absl::Seconds(3);
  // The part of the namespace used, from LBA 0.
  uint64_t span_bytes = 64ull << 20;
  uint32_t lba_bytes = 512;
  uint32_t nsid = 1;
};

struct WorkloadResult {
  uint64_t ios = 0;
  double seconds = 0;
  double iops = 0;
  double mib_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  uint64_t errors = 0;
};

// "randread 4KiB qd32 x1 queue"
std::string Describe(const Workload& workload);

// Runs `workload` through `driver`, whose I/O queues 1..queues exist with
// room for queue_depth commands each.
absl::StatusOr<WorkloadResult> RunOnController(NvmeDriver& driver, const Workload& workload);

// The floor: the same offsets with preadv/pwritev on `path`, one at a time
// from this thread, for the same duration.
absl::StatusOr<WorkloadResult> RunOnFile(const std::string& path, const Workload& workload);

}  // namespace vfu::nvme

#endif  // VFU_TOOLS_NVME_NVME_WORKLOAD_H_
