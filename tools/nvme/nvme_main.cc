// nvme: a small NVMe driver playing the guest against a vfu NVMe controller
// (devices/nvme) over vfio-user, with guest memory shared through DMA_MAP
// and completion interrupts on eventfds.
//
//   nvme --mode=demo SOCKET
//       enable, identify, write a pattern, read it back and verify, then
//       4 KiB random reads at queue depth 32 for a second: IOPS.
//   nvme --mode=bench --file=disk.img [--rw=randread,read] [--bs=4096,131072]
//        [--qd=32] [--queues=1] [--seconds=3] SOCKET
//       an fio-like run of each pattern and size: IOPS, bandwidth, latency
//       p50/p99, next to the floor measured in the same run (the same
//       pattern with preadv/pwritev on --file from this process), and the
//       ratio. --shadow uses shadow doorbells, --poll polls completions,
//       --memory=messages gives the device fd-less memory.
//
// Exit status: 0 when everything worked (and the demo's data verified), 1
// otherwise, 2 for a malformed command line.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_driver.h"
#include "tools/nvme/nvme_workload.h"
#include "vfu/base/status_macros.h"
#include "vfu/client/client.h"

ABSL_FLAG(std::string, mode, "demo", "demo or bench");
ABSL_FLAG(std::string, rw, "randread", "bench patterns: randread, randwrite, read, write (commas)");
ABSL_FLAG(std::string, bs, "4096", "bench block sizes in bytes (commas)");
ABSL_FLAG(uint32_t, qd, 32, "commands in flight per queue");
ABSL_FLAG(uint32_t, queues, 1, "I/O queue pairs");
ABSL_FLAG(double, seconds, 3, "duration of each bench run");
ABSL_FLAG(std::string, file, "", "the namespace's image file, for the floor (bench)");
ABSL_FLAG(std::string, memory, "shared", "guest memory: shared (memfd, zero copy) or messages");
ABSL_FLAG(bool, poll, false, "poll completion queues instead of waiting for interrupts");
ABSL_FLAG(bool, shadow, false,
          "shadow doorbells (Doorbell Buffer Config): doorbells reach the device only when "
          "the controller asks (bench)");
ABSL_FLAG(bool, ioeventfds, false,
          "with --shadow: ring the doorbells the controller asks for through its ioeventfds, "
          "as QEMU with KVM does");
ABSL_FLAG(uint64_t, span_mib, 64, "MiB of the namespace the bench touches");
ABSL_FLAG(std::string, coalescing, "",
          "THR,TIME: Set Features Interrupt Coalescing before the bench (THR 0-based entries, "
          "TIME in 100 us, each 0..255); the bench reports interrupts per completion");

namespace vfu::nvme {
namespace {

// --coalescing as the Feature 08h value (THR 7:0, TIME 15:8); nullopt
// when not given.
absl::StatusOr<std::optional<uint32_t>> CoalescingFlag() {
  const std::string text = absl::GetFlag(FLAGS_coalescing);
  if (text.empty()) return std::optional<uint32_t>();
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  uint32_t thr, time;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &thr) ||
      !absl::SimpleAtoi(parts[1], &time) || thr > 255 || time > 255) {
    return absl::InvalidArgumentError("--coalescing wants THR,TIME, each 0..255");
  }
  return std::optional<uint32_t>(thr | (time << 8));
}

// Interrupts raised on the vectors of queues 1..queues that the driver has
// not read yet (reads and so resets their eventfds).
uint64_t DrainInterrupts(NvmeDriver& driver, uint32_t queues) {
  uint64_t total = 0;
  for (uint32_t q = 1; q <= queues; ++q) {
    uint64_t count = 0;
    if (::read(driver.interrupt_fd(static_cast<uint16_t>(q)), &count, sizeof count) ==
        sizeof count) {
      total += count;
    }
  }
  return total;
}

struct Setup {
  std::unique_ptr<Client> client;
  std::unique_ptr<NvmeDriver> driver;
  uint32_t lba_bytes = 512;
  uint64_t namespace_bytes = 0;
};

absl::StatusOr<Setup> Connect(const std::string& socket, uint32_t queues, uint32_t depth,
                              uint64_t memory_bytes) {
  Setup setup;
  ClientOptions client_options;
  client_options.timeout = absl::Seconds(20);
  VFU_ASSIGN_OR_RETURN(setup.client, Client::Connect(socket, client_options));
  NvmeDriverOptions options;
  options.memory_bytes = memory_bytes;
  options.shared_memory = absl::GetFlag(FLAGS_memory) != "messages";
  options.interrupts = !absl::GetFlag(FLAGS_poll);
  options.ioeventfds = absl::GetFlag(FLAGS_ioeventfds);
  VFU_ASSIGN_OR_RETURN(setup.driver, NvmeDriver::Attach(*setup.client, options));
  NvmeDriver& driver = *setup.driver;
  VFU_RETURN_IF_ERROR(driver.Enable());
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> id, driver.Identify(kCnsController));
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> ns, driver.Identify(kCnsNamespace, 1));
  uint64_t nsze;
  std::memcpy(&nsze, ns.data(), 8);
  uint32_t lbaf;
  std::memcpy(&lbaf, ns.data() + 128, 4);
  setup.lba_bytes = 1u << ((lbaf >> 16) & 0xff);
  setup.namespace_bytes = nsze * setup.lba_bytes;
  std::printf("controller: %.40s, serial %.20s, NVMe %d.%d\n", &id[24], &id[4], id[82], id[81]);
  std::printf("namespace 1: %llu LBAs of %u bytes (%.1f MiB)\n",
              static_cast<unsigned long long>(nsze), setup.lba_bytes,
              static_cast<double>(setup.namespace_bytes) / (1 << 20));
  if (absl::GetFlag(FLAGS_shadow)) VFU_RETURN_IF_ERROR(driver.EnableShadowDoorbells());
  VFU_ASSIGN_OR_RETURN(uint32_t allocated, driver.SetQueueCount(queues));
  if (allocated < queues) return absl::ResourceExhaustedError("fewer queues than asked");
  for (uint32_t q = 1; q <= queues; ++q) {
    VFU_RETURN_IF_ERROR(driver.CreateIoQueuePair(static_cast<uint16_t>(q), depth + 1));
  }
  return setup;
}

absl::Status Demo(const std::string& socket) {
  constexpr uint32_t kDepth = 32;
  VFU_ASSIGN_OR_RETURN(Setup setup, Connect(socket, 1, kDepth, 64ull << 20));
  NvmeDriver& driver = *setup.driver;
  // Write 4 MiB of a pattern in 128 KiB commands, read it back, compare.
  constexpr uint64_t kTotal = 4ull << 20;
  constexpr uint32_t kChunk = 128 * 1024;
  if (setup.namespace_bytes < kTotal) return absl::FailedPreconditionError("namespace < 4 MiB");
  const uint64_t out = driver.Allocate(kTotal);
  const uint64_t in = driver.Allocate(kTotal);
  for (uint64_t i = 0; i < kTotal; ++i) {
    driver.Host(out)[i] = static_cast<uint8_t>((i * 131) ^ (i >> 12));
  }
  const uint32_t blocks = kChunk / setup.lba_bytes;
  const absl::Time start = absl::Now();
  for (uint64_t offset = 0; offset < kTotal; offset += kChunk) {
    VFU_ASSIGN_OR_RETURN(Completion done,
                         driver.Run(1, driver.WriteCommand(1, offset / setup.lba_bytes, blocks,
                                                           out + offset, kChunk)));
    if (done.status != kSuccess) return absl::InternalError("write failed");
  }
  SubmissionEntry flush = {};
  flush.opcode = kNvmFlush;
  flush.nsid = 1;
  VFU_ASSIGN_OR_RETURN(Completion flushed, driver.Run(1, flush));
  if (flushed.status != kSuccess) return absl::InternalError("flush failed");
  for (uint64_t offset = 0; offset < kTotal; offset += kChunk) {
    VFU_ASSIGN_OR_RETURN(Completion done,
                         driver.Run(1, driver.ReadCommand(1, offset / setup.lba_bytes, blocks,
                                                          in + offset, kChunk)));
    if (done.status != kSuccess) return absl::InternalError("read failed");
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (std::memcmp(driver.Host(out), driver.Host(in), kTotal) != 0) {
    return absl::DataLossError("the data read back differs from the pattern written");
  }
  std::printf("wrote, flushed and read back 4 MiB in 128 KiB commands (%.1f MiB/s): verified\n",
              8.0 / seconds);
  Workload workload;
  workload.queue_depth = kDepth;
  workload.duration = absl::Seconds(1);
  workload.lba_bytes = setup.lba_bytes;
  workload.span_bytes = std::min<uint64_t>(setup.namespace_bytes, 64ull << 20);
  VFU_ASSIGN_OR_RETURN(WorkloadResult result, RunOnController(driver, workload));
  if (result.errors != 0) return absl::InternalError("random reads failed");
  std::printf("%s: %.0f IOPS, p50 %.1f us, p99 %.1f us\n", Describe(workload).c_str(),
              result.iops, result.p50_us, result.p99_us);
  VFU_RETURN_IF_ERROR(driver.Shutdown());
  VFU_RETURN_IF_ERROR(driver.Disable());
  std::printf("controller shut down and disabled\n");
  return absl::OkStatus();
}

absl::Status Bench(const std::string& socket) {
  const uint32_t queues = absl::GetFlag(FLAGS_queues);
  const uint32_t depth = absl::GetFlag(FLAGS_qd);
  if (queues == 0 || queues > kMaxIoQueues || depth == 0 || depth >= kMaxQueueEntries) {
    return absl::InvalidArgumentError("--queues 1..64, --qd 1..4095");
  }
  std::vector<uint32_t> sizes;
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_bs), ',')) {
    uint32_t size;
    if (!absl::SimpleAtoi(text, &size) || size == 0 || size > kMaxTransferBytes) {
      return absl::InvalidArgumentError("--bs wants sizes in bytes up to 1 MiB");
    }
    sizes.push_back(size);
  }
  const uint64_t largest = *std::max_element(sizes.begin(), sizes.end());
  const uint64_t memory =
      ((uint64_t{queues} * depth * (largest + NvmeDriver::kPage)) + (64ull << 20) + 4095) &
      ~uint64_t{4095};
  VFU_ASSIGN_OR_RETURN(std::optional<uint32_t> coalescing, CoalescingFlag());
  VFU_ASSIGN_OR_RETURN(Setup setup, Connect(socket, queues, depth, memory));
  if (coalescing.has_value()) {
    SubmissionEntry set = {};
    set.opcode = kAdminSetFeatures;
    set.cdw10 = kFeatInterruptCoalescing;
    set.cdw11 = *coalescing;
    VFU_ASSIGN_OR_RETURN(Completion done, setup.driver->Run(0, set));
    if (done.status != kSuccess) return absl::InternalError("Set Features 08h failed");
    std::printf("interrupt coalescing: THR %u (%u entries), TIME %u (%u us)\n",
                *coalescing & 0xff, (*coalescing & 0xff) + 1, *coalescing >> 8,
                (*coalescing >> 8) * 100);
  }
  const std::string file = absl::GetFlag(FLAGS_file);
  std::printf("doorbells: %s, completions: %s, guest memory: %s\n",
              absl::GetFlag(FLAGS_shadow)
                  ? (absl::GetFlag(FLAGS_ioeventfds) ? "shadow (EventIdx), rung by ioeventfd"
                                                     : "shadow (EventIdx), rung by REGION_WRITE")
                  : "trapped (REGION_WRITE)",
              absl::GetFlag(FLAGS_poll) ? "polled" : "MSI-X eventfd",
              absl::GetFlag(FLAGS_memory) == "messages" ? "fd-less (DMA messages)"
                                                        : "memfd (zero copy)");
  std::printf("%-32s %10s %10s %9s %9s | %10s %10s %9s | %6s\n", "workload", "IOPS", "MiB/s",
              "p50 us", "p99 us", "floor IOPS", "MiB/s", "p50 us", "ratio");
  for (absl::string_view pattern : absl::StrSplit(absl::GetFlag(FLAGS_rw), ',')) {
    Workload workload;
    if (pattern == "randread") {
      workload.random = true;
    } else if (pattern == "randwrite") {
      workload.random = workload.write = true;
    } else if (pattern == "read") {
      workload.random = false;
    } else if (pattern == "write") {
      workload.random = false;
      workload.write = true;
    } else {
      return absl::InvalidArgumentError("--rw: randread, randwrite, read or write");
    }
    for (uint32_t size : sizes) {
      workload.block_bytes = size;
      workload.queue_depth = depth;
      workload.queues = queues;
      workload.lba_bytes = setup.lba_bytes;
      workload.duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
      workload.span_bytes =
          std::min<uint64_t>(setup.namespace_bytes, absl::GetFlag(FLAGS_span_mib) << 20);
      const uint64_t doorbells_before = setup.driver->mmio_doorbells();
      DrainInterrupts(*setup.driver, queues);
      const uint64_t interrupts_before = setup.driver->interrupts_seen();
      VFU_ASSIGN_OR_RETURN(WorkloadResult device, RunOnController(*setup.driver, workload));
      const uint64_t interrupts = setup.driver->interrupts_seen() - interrupts_before +
                                  DrainInterrupts(*setup.driver, queues);
      const double doorbells_per_io =
          device.ios > 0 ? static_cast<double>(setup.driver->mmio_doorbells() - doorbells_before) /
                               static_cast<double>(device.ios)
                         : 0;
      std::printf("%-32s %10.0f %10.1f %9.1f %9.1f |", Describe(workload).c_str(), device.iops,
                  device.mib_per_second, device.p50_us, device.p99_us);
      if (file.empty()) {
        std::printf(" %10s %10s %9s | %6s\n", "-", "-", "-", "-");
      } else {
        VFU_ASSIGN_OR_RETURN(WorkloadResult floor, RunOnFile(file, workload));
        std::printf(" %10.0f %10.1f %9.1f | %5.2fx  (%.2f doorbells per I/O)\n",
                    floor.iops, floor.mib_per_second, floor.p50_us,
                    floor.iops > 0 ? device.iops / floor.iops : 0, doorbells_per_io);
      }
      if (!absl::GetFlag(FLAGS_poll) && device.ios > 0) {
        std::printf("%-32s %.3f interrupts per completion\n", "",
                    static_cast<double>(interrupts) / static_cast<double>(device.ios));
      }
      if (device.errors != 0) {
        return absl::InternalError(absl::StrFormat("%d commands failed", device.errors));
      }
      std::fflush(stdout);
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace vfu::nvme

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Drives a vfu NVMe controller as a guest would.\n"
      "Usage: nvme [--mode=demo|bench] [--file=IMAGE] SOCKET_PATH");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: nvme [--mode=demo|bench] [flags] SOCKET_PATH (see --help)\n");
    return 2;
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  absl::Status status;
  if (mode == "demo") {
    status = vfu::nvme::Demo(args[1]);
  } else if (mode == "bench") {
    status = vfu::nvme::Bench(args[1]);
  } else {
    std::fprintf(stderr, "nvme: --mode is demo or bench, not \"%s\"\n", mode.c_str());
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "nvme: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
