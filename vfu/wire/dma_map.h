// DMA_MAP (2): the client shares a range of its memory with the device.
//
// Request payload (32 bytes), reply: header only.
//   Off Size Field
//    0   4   argsz    size of this structure (32)
//    4   4   flags    READ 1, WRITE 2 (what the device may do)
//    8   8   offset   file offset of the range in the passed fd (0 without)
//   16   8   addr     IO virtual address of the range
//   24   8   size     length of the range
// Carries 0 fds (message-based access) or 1 (the backing file).
#ifndef VFU_WIRE_DMA_MAP_H_
#define VFU_WIRE_DMA_MAP_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr uint32_t kDmaMapFlagRead = 1u << 0;
inline constexpr uint32_t kDmaMapFlagWrite = 1u << 1;
inline constexpr size_t kDmaMapRequestSize = 32;

struct DmaMapRequest {
  uint32_t argsz = kDmaMapRequestSize;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t addr = 0;
  uint64_t size = 0;

  friend bool operator==(const DmaMapRequest&, const DmaMapRequest&) = default;
};

// Checks the structure (payload and argsz >= 32, only READ/WRITE flag bits,
// at most one fd, size > 0, addr + size does not wrap). Whether the range
// overlaps a mapping or fits the page sizes is for the DMA layer to judge.
// Errors carry EINVAL.
absl::StatusOr<DmaMapRequest> DecodeDmaMapRequest(absl::Span<const uint8_t> payload,
                                                  size_t num_fds);
void EncodeDmaMapRequest(const DmaMapRequest& request, std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DMA_MAP_H_
