// DEVICE_GET_REGION_IO_FDS (6): which parts of a region the client may serve
// through fds (ioeventfd, ioregionfd) instead of forwarding each access.
//
// Request (16 bytes):
//   Off Size Field
//    0   4   argsz   largest reply payload the client accepts (16..1 MiB)
//    4   4   flags   must be 0
//    8   4   index   region index
//   12   4   count   must be 0
//
// Reply: a 16-byte header {argsz = 16 + count x entry size, flags = 0, index,
// count = total number of entries} followed by `count` entries of one size.
// Two entry layouts exist (PROTOCOL.md 4.5):
//   Off Size  40-byte (spec)            48-byte (lvu; what we send)
//    0   8    offset in the region      offset (lvu: gpa_offset)
//    8   8    size (0 = any width)      size
//   16   4    fd_index                  fd_index
//   20   4    type (IoFdType)           type
//   24   4    flags (KVM's)             flags
//   28   4    padding                   shadow_mem_fd_index (shadow only)
//   32   8    datamatch / user_data     shadow_offset (shadow only)
//   40   8    -                         datamatch / user_data
// fd_index (and shadow_mem_fd_index) index the fds attached to the reply;
// several entries may share an fd. Our encoder always writes 48-byte entries,
// as lvu does: that is the one layout every entry type fits, and readers must
// compute the stride as (argsz - 16) / count anyway.
//
// Truncation: if the request's argsz cannot hold every entry, the reply is the
// 16-byte header alone (argsz = full size, count = total) with no fds.
#ifndef VFU_WIRE_REGION_IO_FDS_H_
#define VFU_WIRE_REGION_IO_FDS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {

inline constexpr size_t kRegionIoFdsHeaderSize = 16;
// Largest request argsz accepted (lvu's limit).
inline constexpr uint32_t kRegionIoFdsMaxArgsz = 1u << 20;
// The entry layouts; see the table above.
inline constexpr size_t kIoFdEntrySpecSize = 40;
inline constexpr size_t kIoFdEntryLvuSize = 48;
// What EncodeRegionIoFdsReply() writes.
inline constexpr size_t kIoFdEntryEncodedSize = kIoFdEntryLvuSize;

struct RegionIoFdsRequest {
  uint32_t argsz = kRegionIoFdsHeaderSize;
  uint32_t flags = 0;
  uint32_t index = 0;
  uint32_t count = 0;

  friend bool operator==(const RegionIoFdsRequest&, const RegionIoFdsRequest&) = default;
};

struct IoFdEntry {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t fd_index = 0;
  IoFdType type = IoFdType::kIoeventfd;
  uint32_t flags = 0;
  // kShadowIoeventfd only (48-byte layout); 0 otherwise.
  uint32_t shadow_mem_fd_index = 0;
  uint64_t shadow_offset = 0;
  // ioeventfd: value to match (with KVM_IOEVENTFD_FLAG_DATAMATCH);
  // ioregionfd: user_data.
  uint64_t datamatch = 0;

  friend bool operator==(const IoFdEntry&, const IoFdEntry&) = default;
};

struct RegionIoFdsReply {
  uint32_t argsz = 0;
  uint32_t flags = 0;
  uint32_t index = 0;
  // Total number of entries the region has.
  uint32_t count = 0;
  // All `count` entries, or none for a header-only (truncated) reply.
  std::vector<IoFdEntry> entries;

  // True for a truncated reply: the client must retry with argsz.
  bool header_only() const { return entries.size() != count; }

  friend bool operator==(const RegionIoFdsReply&, const RegionIoFdsReply&) = default;
};

// Checks payload >= 16, 16 <= argsz <= 1 MiB, flags == 0 and count == 0, all
// EINVAL. Whether index names a configured region is the caller's to judge.
absl::StatusOr<RegionIoFdsRequest> DecodeRegionIoFdsRequest(absl::Span<const uint8_t> payload,
                                                            size_t num_fds);
void EncodeRegionIoFdsRequest(const RegionIoFdsRequest& request, std::vector<uint8_t>& out);

// Payload size of the complete reply with `num_entries` 48-byte entries.
uint64_t RegionIoFdsReplyFullSize(size_t num_entries);

// What EncodeRegionIoFdsReply() sent.
enum class RegionIoFdsReplyKind {
  // Header and every entry: attach the fds the entries index.
  kComplete,
  // The 16-byte header only: attach no fds.
  kHeaderOnly,
};

// Appends the reply for region `index` with `entries` to a request whose
// (validated) argsz is `request_argsz`. argsz and count are computed (and
// saturate at UINT32_MAX, which can never be complete); the caller makes
// fd_index values point into the fds it attaches.
[[nodiscard]] RegionIoFdsReplyKind EncodeRegionIoFdsReply(uint32_t index,
                                                          absl::Span<const IoFdEntry> entries,
                                                          uint32_t request_argsz,
                                                          std::vector<uint8_t>& out);

// For the client side and inspection tools. Checks payload >= 16, argsz >=
// 16 and flags == 0. With count > 0 and a 16-byte payload the reply is header
// only (no entries). Otherwise the stride (argsz - 16) / count must divide
// exactly and be 40 or 48, the payload must hold argsz bytes, every type
// must be known (shadow only in 48-byte entries), and every fd index must be
// below `num_fds`. Errors carry EINVAL.
absl::StatusOr<RegionIoFdsReply> DecodeRegionIoFdsReply(absl::Span<const uint8_t> payload,
                                                        size_t num_fds);

}  // namespace vfu::wire

#endif  // VFU_WIRE_REGION_IO_FDS_H_
