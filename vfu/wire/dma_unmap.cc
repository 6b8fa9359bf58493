#include "vfu/wire/dma_unmap.h"

#include <linux/vfio.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

// The wire flags are the kernel's; the request is its 24-byte struct.
static_assert(kDmaUnmapFlagGetDirtyBitmap == VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
static_assert(kDmaUnmapFlagAll == VFIO_DMA_UNMAP_FLAG_ALL);
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == kDmaUnmapRequestSize);

constexpr uint32_t kKnownFlags = kDmaUnmapFlagGetDirtyBitmap | kDmaUnmapFlagAll;
constexpr size_t kWithBitmapSize = kDmaUnmapRequestSize + kDmaUnmapBitmapHeaderSize;

}  // namespace

absl::StatusOr<DmaUnmapRequest> DecodeDmaUnmapRequest(absl::Span<const uint8_t> payload,
                                                      size_t /*num_fds*/) {
  if (payload.size() < kDmaUnmapRequestSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP payload of ", payload.size(),
                                          " bytes, need 24"));
  }
  DmaUnmapRequest r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.addr = LoadU64(payload, 8);
  r.size = LoadU64(payload, 16);
  if ((r.flags & ~kKnownFlags) != 0) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP unknown flags 0x", absl::Hex(r.flags)));
  }
  const bool want_bitmap = (r.flags & kDmaUnmapFlagGetDirtyBitmap) != 0;
  const bool all = (r.flags & kDmaUnmapFlagAll) != 0;
  if (want_bitmap && payload.size() < kWithBitmapSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP with GET_DIRTY_BITMAP: payload of ",
                                          payload.size(), " bytes, need 40"));
  }
  if (r.argsz < kDmaUnmapRequestSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP argsz ", r.argsz, " < 24"));
  }
  if (r.argsz > kDmaUnmapMaxArgsz) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP argsz ", r.argsz, " > 1 MiB"));
  }
  if (all && want_bitmap) {
    return WireError(EINVAL, "DMA_UNMAP with both ALL and GET_DIRTY_BITMAP");
  }
  if (all && (r.addr != 0 || r.size != 0)) {
    return WireError(EINVAL, "DMA_UNMAP ALL with a non-zero addr or size");
  }
  if (!want_bitmap) return r;

  DmaUnmapBitmap bitmap{.pgsize = LoadU64(payload, 24), .size = LoadU64(payload, 32)};
  // The reply (echo, bitmap header, bitmap) must fit in argsz; subtract
  // rather than add so a huge bitmap.size cannot wrap.
  if (r.argsz < kWithBitmapSize || bitmap.size > r.argsz - kWithBitmapSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP argsz ", r.argsz,
                                          " cannot hold a bitmap of ", bitmap.size,
                                          " bytes after 40"));
  }
  VFU_ASSIGN_OR_RETURN(uint64_t expected, DirtyBitmapSize(r.size, bitmap.pgsize));
  if (bitmap.size != expected) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP bitmap.size ", bitmap.size, ", need ",
                                          expected, " for ", r.size, " bytes at page size ",
                                          bitmap.pgsize));
  }
  r.bitmap = bitmap;
  return r;
}

void EncodeDmaUnmapRequest(const DmaUnmapRequest& r, std::vector<uint8_t>& out) {
  ByteWriter w(out);
  w.U32(r.argsz).U32(r.flags).U64(r.addr).U64(r.size);
  if (r.bitmap.has_value()) w.U64(r.bitmap->pgsize).U64(r.bitmap->size);
}

DmaUnmapReply DmaUnmapReplyFor(const DmaUnmapRequest& request,
                               absl::Span<const uint8_t> dirty_bitmap) {
  DmaUnmapReply reply;
  reply.argsz = request.argsz;
  reply.flags = request.flags;
  reply.addr = request.addr;
  reply.size = request.size;
  if (request.bitmap.has_value()) {
    reply.bitmap_pgsize = request.bitmap->pgsize;
    reply.dirty_bitmap = dirty_bitmap;
  }
  return reply;
}

absl::StatusOr<DmaUnmapReply> DecodeDmaUnmapReply(absl::Span<const uint8_t> payload,
                                                  size_t /*num_fds*/) {
  if (payload.size() < kDmaUnmapRequestSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP reply of ", payload.size(),
                                          " bytes, need 24"));
  }
  DmaUnmapReply r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.addr = LoadU64(payload, 8);
  r.size = LoadU64(payload, 16);
  if ((r.flags & kDmaUnmapFlagGetDirtyBitmap) == 0) {
    if (payload.size() != kDmaUnmapRequestSize) {
      return WireError(EINVAL, absl::StrCat("DMA_UNMAP reply of ", payload.size(),
                                            " bytes, expected exactly 24"));
    }
    return r;
  }
  if (payload.size() < kWithBitmapSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP bitmap reply of ", payload.size(),
                                          " bytes, need 40"));
  }
  const uint64_t bitmap_size = LoadU64(payload, 32);
  if (bitmap_size != payload.size() - kWithBitmapSize) {
    return WireError(EINVAL, absl::StrCat("DMA_UNMAP reply bitmap.size ", bitmap_size,
                                          " but ", payload.size() - kWithBitmapSize,
                                          " bitmap bytes follow"));
  }
  r.bitmap_pgsize = LoadU64(payload, 24);
  r.dirty_bitmap = payload.subspan(kWithBitmapSize);
  return r;
}

void EncodeDmaUnmapReply(const DmaUnmapReply& r, std::vector<uint8_t>& out) {
  ByteWriter w(out);
  w.U32(r.argsz).U32(r.flags).U64(r.addr).U64(r.size);
  if (r.bitmap_pgsize.has_value()) {
    w.U64(*r.bitmap_pgsize).U64(r.dirty_bitmap.size()).Bytes(r.dirty_bitmap);
  }
}

}  // namespace vfu::wire
