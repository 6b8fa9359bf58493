// REGION_READ (9), REGION_WRITE (10) and REGION_WRITE_MULTI (15): the
// client accesses device regions through messages.
//
// REGION_READ / REGION_WRITE payloads:
//   Off Size Field   READ req  READ reply   WRITE req     WRITE reply
//    0   8   offset  yes       echo         yes           echo
//    8   4   region  yes       echo         yes           echo
//   12   4   count   yes       bytes read   yes           bytes written
//   16  var  data    -         count bytes  count bytes   -
// A READ request is exactly 16 bytes; a WRITE request exactly 16 + count.
//
// REGION_WRITE_MULTI request: wr_cnt u64 @0, then wr_cnt 24-byte entries
// {offset u64 @0, region u32 @8, count u32 @12 (1..8), data 8 bytes @16, of
// which the first count are used}. Reply: wr_cnt u64 (writes completed).
//
// Decoded data are views into the payload, which must outlive them. None of
// these messages carries fds; stray ones are closed by the caller and the
// command proceeds (PROTOCOL.md section 10 row 16).
#ifndef VFU_WIRE_REGION_ACCESS_H_
#define VFU_WIRE_REGION_ACCESS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr size_t kRegionAccessPrefixSize = 16;
inline constexpr size_t kWriteMultiCountSize = 8;
inline constexpr size_t kWriteMultiEntrySize = 24;
inline constexpr uint32_t kWriteMultiMaxCount = 8;

// A REGION_READ request or a REGION_WRITE reply: the 16-byte prefix alone.
struct RegionAccess {
  uint64_t offset = 0;
  uint32_t region = 0;
  uint32_t count = 0;

  friend bool operator==(const RegionAccess&, const RegionAccess&) = default;
};

// A REGION_WRITE request or a REGION_READ reply: the prefix and its data.
// The wire `count` is data.size().
struct RegionAccessData {
  uint64_t offset = 0;
  uint32_t region = 0;
  absl::Span<const uint8_t> data = {};

  friend bool operator==(const RegionAccessData&, const RegionAccessData&) = default;
};

// Payload exactly 16 bytes and count <= `max_count` (the server's
// max_data_xfer_size), else EINVAL. count 0 is valid.
absl::StatusOr<RegionAccess> DecodeRegionReadRequest(absl::Span<const uint8_t> payload,
                                                     size_t num_fds, uint64_t max_count);
void EncodeRegionReadRequest(const RegionAccess& request, std::vector<uint8_t>& out);

// Echoes the request's offset and region; count is data.size(), which must
// fit in 32 bits (the caller read at most request.count bytes).
void EncodeRegionReadReply(const RegionAccess& request, absl::Span<const uint8_t> data,
                           std::vector<uint8_t>& out);
// For the client side: payload exactly 16 + count (EINVAL). Whether the
// reply matches the request (echo, count not above it) is the caller's check.
absl::StatusOr<RegionAccessData> DecodeRegionReadReply(absl::Span<const uint8_t> payload,
                                                       size_t num_fds);

// Payload exactly 16 + count and count <= `max_count`, else EINVAL.
absl::StatusOr<RegionAccessData> DecodeRegionWriteRequest(absl::Span<const uint8_t> payload,
                                                          size_t num_fds, uint64_t max_count);
// count is data.size(), which must fit in 32 bits.
void EncodeRegionWriteRequest(const RegionAccessData& request, std::vector<uint8_t>& out);

// Writes the 16-byte reply as given (a full write echoes the request).
void EncodeRegionWriteReply(const RegionAccess& reply, std::vector<uint8_t>& out);
// For the client side: payload exactly 16 bytes, else EINVAL.
absl::StatusOr<RegionAccess> DecodeRegionWriteReply(absl::Span<const uint8_t> payload,
                                                    size_t num_fds);

// The device-dependent check of section 10 row 17: [offset, offset + count)
// must lie inside a region of `region_size` bytes, computed without overflow
// (EINVAL otherwise). An empty access at offset == region_size is inside.
absl::Status CheckRegionAccess(uint64_t offset, uint32_t count, uint64_t region_size);

struct RegionWriteMultiEntry {
  uint64_t offset = 0;
  uint32_t region = 0;
  // 1 to 8 bytes; the wire `count` is data.size().
  absl::Span<const uint8_t> data = {};

  friend bool operator==(const RegionWriteMultiEntry&, const RegionWriteMultiEntry&) = default;
};

// Checks payload >= 8, payload exactly 8 + 24 * wr_cnt (computed without
// overflow, so the entry list is bounded by the payload) and every count in
// 1..8, all EINVAL. wr_cnt 0 is an empty batch. Region indexes and ranges are
// for the caller (CheckRegionAccess), entry by entry, in order.
absl::StatusOr<std::vector<RegionWriteMultiEntry>> DecodeRegionWriteMultiRequest(
    absl::Span<const uint8_t> payload, size_t num_fds);
// Each entry's data must hold 1..8 bytes; the unused data bytes are zero.
void EncodeRegionWriteMultiRequest(absl::Span<const RegionWriteMultiEntry> entries,
                                   std::vector<uint8_t>& out);

// Reply: the number of writes completed.
void EncodeRegionWriteMultiReply(uint64_t writes_completed, std::vector<uint8_t>& out);
// For the client side: payload exactly 8 bytes, else EINVAL.
absl::StatusOr<uint64_t> DecodeRegionWriteMultiReply(absl::Span<const uint8_t> payload,
                                                     size_t num_fds);

}  // namespace vfu::wire

#endif  // VFU_WIRE_REGION_ACCESS_H_
