// LocalDmaContext: a DeviceContext over a DmaMapTable with no client to
// send messages to. Memory the client mapped with an fd works; fd-less
// memory fails with Unavailable. For engine tests and fuzzers that run a
// Session without a runtime.
#ifndef VFU_TESTING_LOCAL_DMA_CONTEXT_H_
#define VFU_TESTING_LOCAL_DMA_CONTEXT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"

namespace vfu::testing {

class LocalDmaContext : public DeviceContext, private MessageDmaPath {
 public:
  LocalDmaContext() : memory_(table_, *this) {}

  DmaMapTable& table() { return table_; }

  absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) override {
    return memory_.Read(iova, out);
  }
  absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) override {
    return memory_.Write(iova, data);
  }
  absl::StatusOr<DmaSgList> DmaPin(uint64_t iova, uint64_t length,
                                   DmaDirection direction) override {
    return memory_.Pin(iova, length, direction);
  }

 private:
  absl::Status Read(uint64_t, absl::Span<uint8_t>) override {
    return absl::UnavailableError("no client to send DMA_READ to");
  }
  absl::Status Write(uint64_t, absl::Span<const uint8_t>) override {
    return absl::UnavailableError("no client to send DMA_WRITE to");
  }

  DmaMapTable table_;
  DmaMemory memory_;
};

}  // namespace vfu::testing

#endif  // VFU_TESTING_LOCAL_DMA_CONTEXT_H_
