// Access to client memory through DMA_READ / DMA_WRITE messages.
//
// A transfer larger than the client's max_data_xfer_size is split into
// several commands, each waiting for its own reply. A large DMA_READ chunk
// offers its place in `out` to the channel (ReplySink), so the reply's data
// can be received there without a copy. Replies are checked:
// reply type, the ERROR flag (its errno becomes the status), the exact size
// and the echoed address and count (PROTOCOL.md section 10, row 36).
#ifndef VFU_ENGINE_MESSAGE_DMA_H_
#define VFU_ENGINE_MESSAGE_DMA_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/engine/client_channel.h"
#include "vfu/wire/dma_transfer.h"

namespace vfu {

struct MessageDmaConfig {
  // The client's max_data_xfer_size: no single command carries more.
  uint64_t max_transfer = 1 << 20;
  wire::DmaTransferLayout layout = wire::DmaTransferLayout::kSpec;
  // How long each command may wait for its reply.
  absl::Duration timeout = absl::Seconds(5);
};

absl::Status DmaReadViaMessages(ClientChannel& channel, const MessageDmaConfig& config,
                                uint64_t iova, absl::Span<uint8_t> out);
absl::Status DmaWriteViaMessages(ClientChannel& channel, const MessageDmaConfig& config,
                                 uint64_t iova, absl::Span<const uint8_t> data);

}  // namespace vfu

#endif  // VFU_ENGINE_MESSAGE_DMA_H_
