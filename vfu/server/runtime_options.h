// Tunables of the threaded runtime, with the reasons for their defaults.
#ifndef VFU_SERVER_RUNTIME_OPTIONS_H_
#define VFU_SERVER_RUNTIME_OPTIONS_H_

#include <cstddef>

#include "absl/time/time.h"
#include "vfu/wire/dma_transfer.h"

namespace vfu {

struct RuntimeOptions {
  // Commands received from one client but not yet run. Past this the IO
  // thread stops reading that client's socket (unless a DMA reply is
  // awaited), so a flooding client is slowed down by its own socket buffer.
  size_t max_queued_commands = 256;
  // Reply bytes queued for a client that is not reading. Above the high
  // mark the client's commands stop running; below the low mark they
  // resume.
  size_t outbound_high_water = 8 << 20;
  size_t outbound_low_water = 2 << 20;
  // A client whose replies have not drained for this long is disconnected.
  absl::Duration max_write_stall = absl::Seconds(30);
  // How long a server-initiated command (DMA_READ/WRITE) waits for its reply.
  absl::Duration dma_timeout = absl::Seconds(5);
  // Layout of DMA_READ/DMA_WRITE messages. QEMU's client uses its own
  // variant (PROTOCOL.md 4.10).
  wire::DmaTransferLayout dma_layout = wire::DmaTransferLayout::kSpec;
};

}  // namespace vfu

#endif  // VFU_SERVER_RUNTIME_OPTIONS_H_
