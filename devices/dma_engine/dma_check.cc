#include "devices/dma_engine/dma_check.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::devices {
namespace {

constexpr uint64_t kPageSize = 4096;

absl::StatusOr<uint32_t> Read32(Client& client, uint64_t offset) {
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, client.RegionRead(kBar0Region, offset, 4));
  if (bytes.size() != 4) {
    return absl::DataLossError(
        absl::StrCat("register 0x", absl::Hex(offset), ": ", bytes.size(), " of 4 bytes read"));
  }
  uint32_t value;
  std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

template <typename T>
absl::Status Write(Client& client, uint64_t offset, T value) {
  uint8_t bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  return client.RegionWrite(kBar0Region, offset, bytes);
}

uint64_t Channel(const DmaCheckOptions& options, uint64_t reg) {
  return dma_engine::ChannelRegister(options.channel, reg);
}

// A stream of bytes no copy at the wrong offset reproduces: each 8-byte
// word is a hash of its index.
uint64_t PatternWord(uint64_t index) {
  uint64_t z = index + 0x9e3779b97f4a7c15;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

uint8_t PatternByte(uint64_t offset) {
  return static_cast<uint8_t>(PatternWord(offset / 8) >> (8 * (offset % 8)));
}

const char* MemoryName(DmaCheckMemory memory) {
  return memory == DmaCheckMemory::kFdBacked ? "fd-backed" : "messages";
}

std::string ErrorName(uint32_t error) {
  switch (error) {
    case dma_engine::kErrorNone:
      return "none";
    case dma_engine::kErrorSourceFault:
      return "source fault";
    case dma_engine::kErrorDestinationFault:
      return "destination fault";
    case dma_engine::kErrorAborted:
      return "aborted";
    case dma_engine::kErrorDetached:
      return "detached";
    case dma_engine::kErrorInvalid:
      return "invalid ranges";
    default:
      return absl::StrCat("unknown error ", error);
  }
}

// Waits until `fd` is readable or `deadline` passes; consumes the count.
absl::StatusOr<bool> WaitForEventfd(int fd, absl::Time deadline) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    const int timeout_ms =
        left <= absl::ZeroDuration() ? 0 : static_cast<int>(absl::ToInt64Milliseconds(left) + 1);
    pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "poll of the interrupt eventfd");
    }
    if (n == 0) {
      if (absl::Now() >= deadline) return false;
      continue;
    }
    uint64_t count;
    if (::read(fd, &count, sizeof count) != sizeof count) {
      return absl::ErrnoToStatus(errno, "read of the interrupt eventfd");
    }
    return true;
  }
}

}  // namespace

absl::StatusOr<DmaCheckReport> RunDmaCheck(Client& client, const DmaCheckOptions& options) {
  if (options.bytes == 0 || options.bytes > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the check copies 1 to 4294967295 bytes, not ", options.bytes));
  }
  if (options.iova % kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOVA 0x", absl::Hex(options.iova), " is not page aligned"));
  }
  const uint64_t half = (options.bytes + kPageSize - 1) / kPageSize * kPageSize;
  const uint64_t size = 2 * half;
  if (options.iova > std::numeric_limits<uint64_t>::max() - (size - 1)) {
    return absl::InvalidArgumentError(absl::StrCat("IOVA 0x", absl::Hex(options.iova), " + 0x",
                                                   absl::Hex(size), " wraps around"));
  }

  VFU_ASSIGN_OR_RETURN(uint32_t id, Read32(client, dma_engine::kRegId));
  if (id != dma_engine::kIdValue) {
    return absl::FailedPreconditionError(absl::StrCat("not a DMA engine: BAR0 ID reads 0x",
                                                      absl::Hex(id), ", expected 0x",
                                                      absl::Hex(dma_engine::kIdValue)));
  }
  VFU_ASSIGN_OR_RETURN(uint32_t channels, Read32(client, dma_engine::kRegChannels));
  if (options.channel >= channels) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", options.channel, " does not exist; the device has ", channels));
  }
  VFU_ASSIGN_OR_RETURN(uint32_t status, Read32(client, Channel(options, dma_engine::kRegStatus)));
  if (status == dma_engine::kStatusBusy) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", options.channel, " is busy with another job"));
  }

  // The memory, filled before the device can see it. Cleanups run in
  // reverse: interrupt, mapping, serving thread, memory.
  UniqueFd memfd;
  void* memory = MAP_FAILED;
  if (options.memory == DmaCheckMemory::kFdBacked) {
    memfd.reset(::memfd_create("vfu-dma-check", MFD_CLOEXEC));
    if (!memfd) return absl::ErrnoToStatus(errno, "memfd_create");
    if (::ftruncate(memfd.get(), static_cast<off_t>(size)) != 0) {
      return absl::ErrnoToStatus(errno, "ftruncate of the check memory");
    }
    memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  } else {
    memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  if (memory == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap of the check memory");
  absl::Cleanup free_memory = [&] { ::munmap(memory, size); };
  const absl::Span<uint8_t> bytes(static_cast<uint8_t*>(memory), size);
  const absl::Span<uint8_t> source = bytes.subspan(0, options.bytes);
  const absl::Span<uint8_t> destination = bytes.subspan(half, options.bytes);
  for (uint64_t i = 0; i < options.bytes; ++i) {
    source[i] = PatternByte(i);
    destination[i] = static_cast<uint8_t>(~PatternByte(i));
  }

  bool started_serving = false;
  if (options.memory == DmaCheckMemory::kMessages) {
    absl::Status serving = client.StartServingThread();
    if (serving.ok()) {
      started_serving = true;
    } else if (serving.code() != absl::StatusCode::kFailedPrecondition) {
      return serving;  // FailedPrecondition: it runs already
    }
  }
  absl::Cleanup stop_serving = [&] {
    if (started_serving) client.StopServingThread();
  };

  const uint32_t access = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
  if (options.memory == DmaCheckMemory::kFdBacked) {
    UniqueFd shared = DuplicateFd(memfd.get());
    if (!shared) return absl::ErrnoToStatus(errno, "dup of the check memfd");
    VFU_RETURN_IF_ERROR(client.DmaMap(options.iova, size, access, std::move(shared)));
  } else {
    VFU_RETURN_IF_ERROR(client.DmaMapMemory(options.iova, bytes, access));
  }
  absl::Cleanup unmap = [&] {
    absl::Status unmapped = client.DmaUnmap(options.iova, size);
    if (unmapped.ok()) return;
    VFU_LOG(kWarning, "dma check: DMA_UNMAP failed: ", unmapped.ToString());
    // The memory is freed next: the client must not serve from it any more.
    if (options.memory == DmaCheckMemory::kMessages) (void)client.RemoveDmaMemory(options.iova);
  };

  UniqueFd irq(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!irq) return absl::ErrnoToStatus(errno, "eventfd");
  {
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(irq.get()));
    if (!fds.back()) return absl::ErrnoToStatus(errno, "dup of the interrupt eventfd");
    VFU_RETURN_IF_ERROR(client.SetIrqEventfds(kMsixIrq, options.channel, std::move(fds)));
  }
  absl::Cleanup deassign = [&] {
    std::vector<UniqueFd> none;
    none.emplace_back();
    absl::Status status = client.SetIrqEventfds(kMsixIrq, options.channel, std::move(none));
    if (!status.ok())
      VFU_LOG(kWarning, "dma check: de-assigning the eventfd failed: ", status.ToString());
  };

  const uint64_t source_iova = options.iova;
  const uint64_t destination_iova = options.iova + half;
  VFU_RETURN_IF_ERROR(Write<uint32_t>(client, dma_engine::kRegIrqStatus, 1u << options.channel));
  VFU_RETURN_IF_ERROR(
      Write<uint64_t>(client, Channel(options, dma_engine::kRegSourceLo), source_iova));
  VFU_RETURN_IF_ERROR(
      Write<uint64_t>(client, Channel(options, dma_engine::kRegDestinationLo), destination_iova));
  VFU_RETURN_IF_ERROR(Write<uint32_t>(client, Channel(options, dma_engine::kRegLength),
                                      static_cast<uint32_t>(options.bytes)));
  const ClientStats before = client.stats();

  DmaCheckReport report;
  report.memory = options.memory;
  report.channel = options.channel;
  report.bytes = options.bytes;
  const absl::Time start = absl::Now();
  VFU_RETURN_IF_ERROR(Write<uint32_t>(client, Channel(options, dma_engine::kRegDoorbell),
                                      dma_engine::kDoorbellStart));
  VFU_ASSIGN_OR_RETURN(report.interrupt, WaitForEventfd(irq.get(), start + options.timeout));
  report.elapsed = absl::Now() - start;

  // Reading the registers through the client also orders this thread after
  // the serving thread's writes into the memory.
  VFU_ASSIGN_OR_RETURN(report.status, Read32(client, Channel(options, dma_engine::kRegStatus)));
  VFU_ASSIGN_OR_RETURN(report.error, Read32(client, Channel(options, dma_engine::kRegError)));
  VFU_ASSIGN_OR_RETURN(report.progress, Read32(client, Channel(options, dma_engine::kRegProgress)));
  if (report.status == dma_engine::kStatusBusy) {
    // Stop it before the memory goes (the unmap would fail it anyway).
    VFU_RETURN_IF_ERROR(Write<uint32_t>(client, Channel(options, dma_engine::kRegDoorbell),
                                        dma_engine::kDoorbellAbort));
  }
  const ClientStats after = client.stats();
  report.message_read_bytes = after.dma_read_bytes - before.dma_read_bytes;
  report.message_write_bytes = after.dma_write_bytes - before.dma_write_bytes;

  if (report.status == dma_engine::kStatusDone) {
    for (uint64_t i = 0; i < options.bytes; ++i) {
      if (destination[i] != source[i]) {
        report.first_mismatch = i;
        break;
      }
    }
  }

  std::vector<std::string> problems;
  if (!report.interrupt) {
    problems.push_back(
        absl::StrCat("no completion interrupt within ", absl::FormatDuration(options.timeout)));
  }
  if (report.status == dma_engine::kStatusError) {
    problems.push_back(absl::StrCat("the job failed: ", ErrorName(report.error), " after ",
                                    report.progress, " bytes"));
  } else if (report.status != dma_engine::kStatusDone) {
    problems.push_back(absl::StrCat("STATUS reads ", report.status, " (", report.progress, " of ",
                                    options.bytes, " bytes copied)"));
  }
  if (report.first_mismatch) {
    problems.push_back(
        absl::StrCat("the destination differs from the source at byte ", *report.first_mismatch));
  }
  report.ok = problems.empty();
  report.problem = absl::StrJoin(problems, "; ");
  return report;
}

std::string FormatDmaCheckReport(const DmaCheckReport& report) {
  const double seconds = absl::ToDoubleSeconds(report.elapsed);
  const std::string rate =
      seconds > 0 ? absl::StrFormat(" (%.1f MiB/s)", report.bytes / seconds / (1 << 20)) : "";
  return absl::StrCat("dma check ", MemoryName(report.memory), " channel ", report.channel, ": ",
                      report.bytes, " bytes in ", absl::FormatDuration(report.elapsed), rate, ": ",
                      report.ok ? "ok" : absl::StrCat("FAILED: ", report.problem));
}

}  // namespace vfu::devices
