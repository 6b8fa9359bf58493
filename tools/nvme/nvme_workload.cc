#include "tools/nvme/nvme_workload.h"

#include <fcntl.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/unique_fd.h"

namespace vfu::nvme {
namespace {

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Offsets of the pattern: random over the span, or sequential wrapping.
class OffsetSource {
 public:
  explicit OffsetSource(const Workload& workload, uint64_t seed)
      : blocks_(std::max<uint64_t>(1, workload.span_bytes / workload.block_bytes)),
        block_bytes_(workload.block_bytes),
        random_(workload.random),
        state_(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t Next() {
    if (random_) {
      state_ ^= state_ << 13;
      state_ ^= state_ >> 7;
      state_ ^= state_ << 17;
      return (state_ % blocks_) * block_bytes_;
    }
    const uint64_t offset = next_ * block_bytes_;
    next_ = (next_ + 1) % blocks_;
    return offset;
  }

 private:
  uint64_t blocks_;
  uint64_t block_bytes_;
  bool random_;
  uint64_t state_;
  uint64_t next_ = 0;
};

void Finish(WorkloadResult& result, std::vector<int64_t>& latencies_ns, int64_t elapsed_ns,
            uint32_t block_bytes) {
  result.seconds = static_cast<double>(elapsed_ns) / 1e9;
  result.iops = result.seconds > 0 ? static_cast<double>(result.ios) / result.seconds : 0;
  result.mib_per_second = result.iops * block_bytes / (1024.0 * 1024.0);
  if (!latencies_ns.empty()) {
    std::sort(latencies_ns.begin(), latencies_ns.end());
    result.p50_us = static_cast<double>(latencies_ns[latencies_ns.size() / 2]) / 1e3;
    result.p99_us = static_cast<double>(latencies_ns[latencies_ns.size() * 99 / 100]) / 1e3;
  }
}

}  // namespace

std::string Describe(const Workload& workload) {
  const std::string size = workload.block_bytes % 1024 == 0
                               ? absl::StrCat(workload.block_bytes / 1024, "KiB")
                               : absl::StrCat(workload.block_bytes, "B");
  return absl::StrCat(workload.random ? "rand" : "seq", workload.write ? "write" : "read", " ",
                      size, " qd", workload.queue_depth, " x", workload.queues,
                      workload.queues == 1 ? " queue" : " queues");
}

absl::StatusOr<WorkloadResult> RunOnController(NvmeDriver& driver, const Workload& workload) {
  if (workload.block_bytes % workload.lba_bytes != 0 || workload.block_bytes == 0) {
    return absl::InvalidArgumentError("block size is not a multiple of the LBA size");
  }
  const uint32_t slots = workload.queues * workload.queue_depth;
  if (slots > 0xffff) return absl::InvalidArgumentError("too many commands in flight");
  const uint64_t buffers = driver.Allocate(uint64_t{slots} * workload.block_bytes);
  // One PRP list page per command slot (a list is only needed past 8 KiB).
  const uint64_t lists = driver.Allocate(uint64_t{slots} * NvmeDriver::kPage);
  if (buffers == 0 || lists == 0) return absl::ResourceExhaustedError("guest memory too small");
  for (uint32_t i = 0; i < slots; ++i) {
    std::memset(driver.Host(buffers + uint64_t{i} * workload.block_bytes), 0x5a,
                workload.block_bytes);
  }
  std::vector<OffsetSource> sources;
  for (uint32_t q = 0; q < workload.queues; ++q) sources.emplace_back(workload, q + 1);
  std::vector<int64_t> started(slots, 0);
  std::vector<int64_t> latencies;
  latencies.reserve(1 << 20);
  WorkloadResult result;
  const uint32_t blocks = workload.block_bytes / workload.lba_bytes;

  auto submit = [&](uint32_t slot) -> absl::Status {
    const uint16_t qid = static_cast<uint16_t>(slot / workload.queue_depth + 1);
    const uint64_t offset = sources[qid - 1].Next();
    const uint64_t buffer = buffers + uint64_t{slot} * workload.block_bytes;
    SubmissionEntry sqe = workload.write
                              ? driver.WriteCommand(workload.nsid, offset / workload.lba_bytes,
                                                    blocks, buffer, workload.block_bytes)
                              : driver.ReadCommand(workload.nsid, offset / workload.lba_bytes,
                                                   blocks, buffer, workload.block_bytes);
    driver.SetPrps(sqe, buffer, workload.block_bytes, lists + uint64_t{slot} * NvmeDriver::kPage);
    sqe.cid = static_cast<uint16_t>(slot);
    started[slot] = NowNs();
    return driver.Submit(qid, sqe, /*ring=*/false);
  };

  const int64_t begin = NowNs();
  const int64_t end = begin + absl::ToInt64Nanoseconds(workload.duration);
  for (uint32_t slot = 0; slot < slots; ++slot) VFU_RETURN_IF_ERROR(submit(slot));
  for (uint32_t q = 1; q <= workload.queues; ++q) {
    VFU_RETURN_IF_ERROR(driver.RingSubmission(static_cast<uint16_t>(q)));
  }
  uint32_t in_flight = slots;
  bool stopping = false;
  std::vector<Completion> done(workload.queue_depth);
  while (in_flight > 0) {
    for (uint32_t q = 1; q <= workload.queues; ++q) {
      // With one queue, wait for its interrupt; with several, sweep them.
      VFU_ASSIGN_OR_RETURN(size_t n, driver.Reap(static_cast<uint16_t>(q), absl::MakeSpan(done),
                                                 /*wait=*/workload.queues == 1));
      if (n == 0) continue;
      const int64_t now = NowNs();
      stopping = stopping || now >= end;
      bool resubmitted = false;
      for (size_t i = 0; i < n; ++i) {
        const uint32_t slot = done[i].cid;
        if (slot >= slots) return absl::DataLossError("completion with an unknown CID");
        if (done[i].status != kSuccess) ++result.errors;
        ++result.ios;
        latencies.push_back(now - started[slot]);
        if (stopping) {
          --in_flight;
        } else {
          VFU_RETURN_IF_ERROR(submit(slot));
          resubmitted = true;
        }
      }
      if (resubmitted) VFU_RETURN_IF_ERROR(driver.RingSubmission(static_cast<uint16_t>(q)));
    }
  }
  Finish(result, latencies, NowNs() - begin, workload.block_bytes);
  return result;
}

absl::StatusOr<WorkloadResult> RunOnFile(const std::string& path, const Workload& workload) {
  UniqueFd fd(::open(path.c_str(), (workload.write ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  std::vector<uint8_t> buffer(workload.block_bytes, 0x5a);
  OffsetSource source(workload, 1);
  std::vector<int64_t> latencies;
  latencies.reserve(1 << 20);
  WorkloadResult result;
  const int64_t begin = NowNs();
  const int64_t end = begin + absl::ToInt64Nanoseconds(workload.duration);
  int64_t now = begin;
  while (now < end) {
    struct iovec iov = {buffer.data(), buffer.size()};
    const off_t offset = static_cast<off_t>(source.Next());
    const ssize_t n = workload.write ? ::pwritev(fd.get(), &iov, 1, offset)
                                     : ::preadv(fd.get(), &iov, 1, offset);
    const int64_t after = NowNs();
    if (n != static_cast<ssize_t>(buffer.size())) ++result.errors;
    ++result.ios;
    latencies.push_back(after - now);
    now = after;
  }
  Finish(result, latencies, now - begin, workload.block_bytes);
  return result;
}

}  // namespace vfu::nvme
