// DEVICE_GET_REGION_INFO (5): the client asks about one region.
//
// Request and the reply's fixed part share the 32-byte struct vfio_region_info:
//   Off Size Field       Request         Reply
//    0   4   argsz       max reply size  size of the full answer (32 + caps)
//    4   4   flags       0               VFIO_REGION_INFO_FLAG_READ 1, _WRITE 2,
//                                        _MMAP 4, _CAPS 8
//    8   4   index       region queried  echo
//   12   4   cap_offset  0               first capability (payload offset), 0 if none
//   16   8   size        0               region size, 0 = not implemented
//   24   8   offset      0               file offset of the region in the reply's fd
//
// Reply capabilities follow the fixed part, each starting with the 8-byte
// struct vfio_info_cap_header {id u16 @0, version u16 @2, next u32 @4}; `next`
// is a payload offset too, 0 ends the chain:
//   SPARSE_MMAP (1)    nr_areas u32 @8, reserved u32 @12,
//                      nr_areas x {offset u64, size u64} @16   (16 + 16n bytes)
//   TYPE (2)           type u32 @8, subtype u32 @12            (16 bytes)
//   MSIX_MAPPABLE (3)  header only                             (8 bytes)
//
// Truncation (PROTOCOL.md 4.4): the reply's argsz is always the full size; if
// that exceeds the request's argsz, only the 32-byte fixed part goes out, with
// CAPS clear and cap_offset 0, and the client retries with a larger argsz. The
// region's fd (MMAP regions) is attached only to a complete reply.
#ifndef VFU_WIRE_REGION_INFO_H_
#define VFU_WIRE_REGION_INFO_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr size_t kRegionInfoSize = 32;
inline constexpr size_t kCapHeaderSize = 8;
// Sparse-mmap capability up to its first area: header, nr_areas, reserved.
inline constexpr size_t kSparseMmapCapFixedSize = 16;
inline constexpr size_t kSparseMmapAreaSize = 16;
inline constexpr size_t kRegionTypeCapSize = 16;
inline constexpr size_t kMsixMappableCapSize = 8;
// Version this encoder writes into every capability header.
inline constexpr uint16_t kRegionCapVersion = 1;

// Only argsz and index mean something in a request; the encoder writes the
// other fields as zero and the decoder ignores them.
struct RegionInfoRequest {
  uint32_t argsz = kRegionInfoSize;
  uint32_t index = 0;

  friend bool operator==(const RegionInfoRequest&, const RegionInfoRequest&) = default;
};

// Part of the region the client may mmap, relative to the region's start.
struct SparseMmapArea {
  uint64_t offset = 0;
  uint64_t size = 0;

  friend bool operator==(const SparseMmapArea&, const SparseMmapArea&) = default;
};

// TYPE capability: what a device-specific region (index >= 9) is.
struct RegionType {
  uint32_t type = 0;
  uint32_t subtype = 0;

  friend bool operator==(const RegionType&, const RegionType&) = default;
};

struct RegionInfoReply {
  // Decoded: as received (the size of the full answer). Encoding ignores it
  // and writes the computed full size.
  uint32_t argsz = 0;
  // Decoded: as received. Encoding ignores the CAPS bit and sets it exactly
  // when capabilities go out.
  uint32_t flags = 0;
  uint32_t index = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
  // Capabilities; an engaged but empty sparse_mmap is a SPARSE_MMAP with
  // nr_areas 0 (nothing mappable).
  std::optional<std::vector<SparseMmapArea>> sparse_mmap = std::nullopt;
  std::optional<RegionType> type = std::nullopt;
  bool msix_mappable = false;

  friend bool operator==(const RegionInfoReply&, const RegionInfoReply&) = default;
};

// Checks payload >= 32 and argsz >= 32 (EINVAL otherwise). Whether index is
// below the device's num_regions is for the caller to judge (EINVAL too).
absl::StatusOr<RegionInfoRequest> DecodeRegionInfoRequest(absl::Span<const uint8_t> payload,
                                                          size_t num_fds);
void EncodeRegionInfoRequest(const RegionInfoRequest& request, std::vector<uint8_t>& out);

// Size of the complete reply payload for `reply`: 32 plus its capabilities,
// in the order SPARSE_MMAP, TYPE, MSIX_MAPPABLE, each 8-byte aligned.
uint64_t RegionInfoReplyFullSize(const RegionInfoReply& reply);

// What EncodeRegionInfoReply() sent.
enum class RegionInfoReplyKind {
  // Fixed part and every capability: attach the region fd if MMAP is set.
  kComplete,
  // The 32-byte fixed part only (CAPS clear, cap_offset 0): attach no fd.
  kFixedPartOnly,
};

// Appends the reply to a request whose (validated, >= 32) argsz is
// `request_argsz`. The reply's argsz is the full size, saturated at
// UINT32_MAX (such a reply can never be complete).
[[nodiscard]] RegionInfoReplyKind EncodeRegionInfoReply(const RegionInfoReply& reply,
                                                        uint32_t request_argsz,
                                                        std::vector<uint8_t>& out);

// For the client side and inspection tools. Checks payload >= 32, argsz >= 32
// and at most one fd, then, when CAPS is set, walks the chain: cap_offset and
// every non-zero next must be >= 32 and leave room for the capability inside
// both the payload and argsz; each next must lie beyond its capability's
// offset (so the walk ends); a known id may appear only once; a SPARSE_MMAP's
// areas must fit. Any violation is EINVAL. Unknown ids and versions are
// skipped; offsets need not be aligned. With CAPS clear, cap_offset and any
// bytes past 32 are ignored.
absl::StatusOr<RegionInfoReply> DecodeRegionInfoReply(absl::Span<const uint8_t> payload,
                                                      size_t num_fds);

}  // namespace vfu::wire

#endif  // VFU_WIRE_REGION_INFO_H_
