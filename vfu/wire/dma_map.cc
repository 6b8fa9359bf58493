#include "vfu/wire/dma_map.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {

absl::StatusOr<DmaMapRequest> DecodeDmaMapRequest(absl::Span<const uint8_t> payload,
                                                  size_t num_fds) {
  if (payload.size() < kDmaMapRequestSize) {
    return WireError(EINVAL, absl::StrCat("DMA_MAP payload of ", payload.size(),
                                          " bytes, need 32"));
  }
  DmaMapRequest r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.offset = LoadU64(payload, 8);
  r.addr = LoadU64(payload, 16);
  r.size = LoadU64(payload, 24);
  if (r.argsz < kDmaMapRequestSize) {
    return WireError(EINVAL, absl::StrCat("DMA_MAP argsz ", r.argsz, " < 32"));
  }
  if ((r.flags & ~(kDmaMapFlagRead | kDmaMapFlagWrite)) != 0) {
    return WireError(EINVAL, absl::StrCat("DMA_MAP unknown flags 0x", absl::Hex(r.flags)));
  }
  if (num_fds > 1) {
    return WireError(EINVAL, absl::StrCat("DMA_MAP with ", num_fds, " fds, at most 1"));
  }
  if (r.size == 0) return WireError(EINVAL, "DMA_MAP of size 0");
  if (r.addr + r.size < r.addr) {
    return WireError(EINVAL, "DMA_MAP range wraps around the address space");
  }
  if (num_fds == 1 && r.offset + r.size < r.offset) {
    return WireError(EINVAL, "DMA_MAP file range wraps around");
  }
  return r;
}

void EncodeDmaMapRequest(const DmaMapRequest& r, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(r.argsz).U32(r.flags).U64(r.offset).U64(r.addr).U64(r.size);
}

}  // namespace vfu::wire
