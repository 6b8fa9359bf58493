// RunDmaCheck: proves, from the client side, that a DMA engine device
// (dma_engine_device.h) copies client memory correctly and signals the end
// of the job with its MSI-X interrupt.
//
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(path));
//   VFU_ASSIGN_OR_RETURN(DmaCheckReport report,
//                        RunDmaCheck(*client, {.memory = DmaCheckMemory::kMessages}));
//   std::cout << FormatDmaCheckReport(report) << "\n";
//
// The check shares 2 x `bytes` (each half rounded up to whole pages) of its
// own memory with the device at `iova`: the source half filled with a
// pattern, the destination half with something else. It installs an eventfd
// on the channel's MSI-X vector, programs the channel to copy the source to
// the destination, rings the doorbell, waits on the eventfd with poll(2),
// then reads the channel's registers and compares the bytes. Whatever
// happens it removes what it set up: the eventfd (that vector is de-assigned
// afterwards), the mapping, the memory; and the client's serving thread if
// it started it.
//
// Memory kinds: kFdBacked shares a memfd with DMA_MAP, so the device copies
// straight between its own mappings of it; kMessages shares fd-less memory
// (Client::DmaMapMemory), so every byte travels in DMA_READ / DMA_WRITE
// messages, which the client's serving thread answers (started here unless
// it runs already).
//
// Threads: runs on the caller's thread and uses the client like any other
// caller. The device's channel and the IOVA range must not be in use by
// others meanwhile.
#ifndef VFU_DEVICES_DMA_ENGINE_DMA_CHECK_H_
#define VFU_DEVICES_DMA_ENGINE_DMA_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vfu/client/client.h"

namespace vfu::devices {

enum class DmaCheckMemory {
  kFdBacked,  // a memfd shared with DMA_MAP: direct copies in the server
  kMessages,  // fd-less memory: every access a DMA_READ / DMA_WRITE message
};

struct DmaCheckOptions {
  DmaCheckMemory memory = DmaCheckMemory::kFdBacked;
  // Bytes the job copies: 1 .. 2^32 - 1 (the LENGTH register).
  uint64_t bytes = 1 << 20;
  // Start of the mapping; page aligned, free in the client's IOVA space.
  uint64_t iova = uint64_t{1} << 36;
  uint32_t channel = 0;
  // How long to wait for the completion interrupt.
  absl::Duration timeout = absl::Seconds(10);
};

struct DmaCheckReport {
  DmaCheckMemory memory = DmaCheckMemory::kFdBacked;
  uint32_t channel = 0;
  uint64_t bytes = 0;
  // From the doorbell write to the interrupt (or to giving up).
  absl::Duration elapsed;
  // The completion interrupt came within the timeout.
  bool interrupt = false;
  // The channel's STATUS, ERROR and PROGRESS registers afterwards.
  uint32_t status = 0;
  uint32_t error = 0;
  uint32_t progress = 0;
  // Offset of the first destination byte that differs from the source.
  std::optional<uint64_t> first_mismatch;
  // DMA message bytes the client served during the check (0 and 0 for a
  // direct copy).
  uint64_t message_read_bytes = 0;
  uint64_t message_write_bytes = 0;
  // Interrupt received, STATUS done, ERROR none and every byte right.
  bool ok = false;
  // Why not ok, for people; empty when ok.
  std::string problem;
};

// Runs the check (see the file comment). A device that misbehaves gives a
// report with ok == false. Errors mean the check could not run:
// InvalidArgument for bad options; FailedPrecondition when the device is
// not a DMA engine, lacks the channel, or the channel is busy; the errno of
// a system call; the client's errors (e.g. Unavailable, or EEXIST when the
// IOVA range is taken).
absl::StatusOr<DmaCheckReport> RunDmaCheck(Client& client, const DmaCheckOptions& options = {});

// One line: "dma check fd-backed channel 0: 1048576 bytes in 1.2ms
// (850.0 MiB/s): ok", or what went wrong instead of "ok".
std::string FormatDmaCheckReport(const DmaCheckReport& report);

}  // namespace vfu::devices

#endif  // VFU_DEVICES_DMA_ENGINE_DMA_CHECK_H_
