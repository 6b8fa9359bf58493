// DMA_UNMAP (3): the client withdraws a range it shared with DMA_MAP.
//
// Request payload (24 bytes; 40 with GET_DIRTY_BITMAP):
//   Off Size Field
//    0   4   argsz          largest reply payload the client accepts
//    4   4   flags          GET_DIRTY_BITMAP 1 (legacy), ALL 2
//    8   8   addr           start of the mapping (0 with ALL)
//   16   8   size           length of the mapping (0 with ALL)
//   24   8   bitmap.pgsize  only with GET_DIRTY_BITMAP
//   32   8   bitmap.size    bitmap length in bytes, ditto
//
// Reply payload: the first 24 bytes echoed; with GET_DIRTY_BITMAP followed by
//   24   8   bitmap.pgsize
//   32   8   bitmap.size    n
//   40   n   the dirty bitmap (format and size rule in dirty_bitmap.h)
// A plain reply is exactly 24 bytes: QEMU's reply buffer has no room for more.
//
// No fds belong to this command. Any that arrive are the transport's to close
// and the command proceeds (section 10 row 16), so the decoders ignore
// `num_fds`.
#ifndef VFU_WIRE_DMA_UNMAP_H_
#define VFU_WIRE_DMA_UNMAP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

// Legacy (pre-v2 migration): also return the range's dirty bitmap.
inline constexpr uint32_t kDmaUnmapFlagGetDirtyBitmap = 1u << 0;
// Remove every mapping; addr and size must be 0.
inline constexpr uint32_t kDmaUnmapFlagAll = 1u << 1;

inline constexpr size_t kDmaUnmapRequestSize = 24;
inline constexpr size_t kDmaUnmapBitmapHeaderSize = 16;
// lvu rejects a larger argsz (section 10 row 6); it also bounds the bitmap.
inline constexpr uint32_t kDmaUnmapMaxArgsz = 1u << 20;

// The legacy bitmap request that follows the 24 bytes.
struct DmaUnmapBitmap {
  uint64_t pgsize = 0;
  uint64_t size = 0;  // bitmap bytes wanted

  friend bool operator==(const DmaUnmapBitmap&, const DmaUnmapBitmap&) = default;
};

struct DmaUnmapRequest {
  uint32_t argsz = kDmaUnmapRequestSize;
  uint32_t flags = 0;
  uint64_t addr = 0;
  uint64_t size = 0;
  // Set by the decoder exactly when flags has GET_DIRTY_BITMAP. The encoder
  // writes it whenever it is set, whatever the flags say.
  std::optional<DmaUnmapBitmap> bitmap;

  friend bool operator==(const DmaUnmapRequest&, const DmaUnmapRequest&) = default;
};

// Checks everything the message alone can tell, all EINVAL:
// - payload >= 24, or >= 40 with GET_DIRTY_BITMAP (row 4);
// - argsz >= 24, or >= 40 + bitmap.size with GET_DIRTY_BITMAP (row 5), and
//   argsz <= 1 MiB (row 6);
// - no unknown flag bits, not ALL together with GET_DIRTY_BITMAP, and ALL
//   only with addr == size == 0 (row 28);
// - with GET_DIRTY_BITMAP: pgsize a power of two and bitmap.size exactly
//   DirtyBitmapSize(size, pgsize) (row 29).
// Whether a mapping matches (ENOENT), logging is on or the region is
// fd-backed is for the DMA layer to judge. Bytes past the structure are
// ignored.
absl::StatusOr<DmaUnmapRequest> DecodeDmaUnmapRequest(absl::Span<const uint8_t> payload,
                                                      size_t num_fds);
void EncodeDmaUnmapRequest(const DmaUnmapRequest& request, std::vector<uint8_t>& out);

struct DmaUnmapReply {
  uint32_t argsz = kDmaUnmapRequestSize;
  uint32_t flags = 0;
  uint64_t addr = 0;
  uint64_t size = 0;
  // With GET_DIRTY_BITMAP: the page size, present exactly when the bitmap
  // header is on the wire.
  std::optional<uint64_t> bitmap_pgsize;
  // The bitmap; on the wire bitmap.size is dirty_bitmap.size(). A decoded
  // reply's span points into the payload and is valid while the payload
  // buffer lives; for encoding it is whatever buffer the caller owns.
  absl::Span<const uint8_t> dirty_bitmap;

  friend bool operator==(const DmaUnmapReply&, const DmaUnmapReply&) = default;
};

// The reply to `request`: its 24 bytes echoed and, when it asked for one,
// the bitmap header with `dirty_bitmap` (which the caller keeps alive).
DmaUnmapReply DmaUnmapReplyFor(const DmaUnmapRequest& request,
                               absl::Span<const uint8_t> dirty_bitmap = {});

// Client side. Checks the reply's structure, all EINVAL: payload exactly 24
// bytes without GET_DIRTY_BITMAP in flags; with it, at least 40 and exactly
// 40 + bitmap.size. Whether it echoes the request is the caller's check.
absl::StatusOr<DmaUnmapReply> DecodeDmaUnmapReply(absl::Span<const uint8_t> payload,
                                                  size_t num_fds);
void EncodeDmaUnmapReply(const DmaUnmapReply& reply, std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DMA_UNMAP_H_
