#include "vfu/wire/region_info.h"

#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

static_assert(sizeof(vfio_region_info) == kRegionInfoSize);
static_assert(sizeof(vfio_info_cap_header) == kCapHeaderSize);
static_assert(sizeof(vfio_region_info_cap_sparse_mmap) == kSparseMmapCapFixedSize);
static_assert(sizeof(vfio_region_sparse_mmap_area) == kSparseMmapAreaSize);
static_assert(sizeof(vfio_region_info_cap_type) == kRegionTypeCapSize);
// Every capability is a multiple of 8 bytes, so laying them out back to back
// after the 32-byte fixed part keeps each one 8-byte aligned.
static_assert(kRegionInfoSize % 8 == 0 && kSparseMmapCapFixedSize % 8 == 0 &&
              kSparseMmapAreaSize % 8 == 0 && kRegionTypeCapSize % 8 == 0 &&
              kMsixMappableCapSize % 8 == 0);

constexpr uint32_t kFlagCaps = VFIO_REGION_INFO_FLAG_CAPS;

uint64_t SparseMmapCapSize(uint64_t nr_areas) {
  // nr_areas is a vector size (< 2^59 for 16-byte elements) or a u32: no
  // overflow.
  return kSparseMmapCapFixedSize + kSparseMmapAreaSize * nr_areas;
}

absl::Status ChainError(uint64_t offset, std::string_view problem) {
  return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_INFO reply: capability at ",
                                        offset, ": ", problem));
}

}  // namespace

absl::StatusOr<RegionInfoRequest> DecodeRegionInfoRequest(absl::Span<const uint8_t> payload,
                                                          size_t num_fds) {
  if (payload.size() < kRegionInfoSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_INFO payload of ",
                                          payload.size(), " bytes, need 32"));
  }
  RegionInfoRequest r;
  r.argsz = LoadU32(payload, 0);
  r.index = LoadU32(payload, 8);
  if (r.argsz < kRegionInfoSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_INFO argsz ", r.argsz, " < 32"));
  }
  return r;
}

void EncodeRegionInfoRequest(const RegionInfoRequest& request, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(request.argsz).U32(0).U32(request.index).U32(0).U64(0).U64(0);
}

uint64_t RegionInfoReplyFullSize(const RegionInfoReply& reply) {
  uint64_t size = kRegionInfoSize;
  if (reply.sparse_mmap.has_value()) size += SparseMmapCapSize(reply.sparse_mmap->size());
  if (reply.type.has_value()) size += kRegionTypeCapSize;
  if (reply.msix_mappable) size += kMsixMappableCapSize;
  return size;
}

RegionInfoReplyKind EncodeRegionInfoReply(const RegionInfoReply& reply, uint32_t request_argsz,
                                          std::vector<uint8_t>& out) {
  const uint64_t full = RegionInfoReplyFullSize(reply);
  const bool complete = full <= request_argsz;
  const bool send_caps = complete && full > kRegionInfoSize;
  const uint32_t argsz = static_cast<uint32_t>(
      std::min<uint64_t>(full, std::numeric_limits<uint32_t>::max()));
  const uint32_t flags = (reply.flags & ~kFlagCaps) | (send_caps ? kFlagCaps : 0);
  const uint32_t cap_offset = send_caps ? kRegionInfoSize : 0;

  if (complete) out.reserve(out.size() + full);
  ByteWriter w(out);
  w.U32(argsz).U32(flags).U32(reply.index).U32(cap_offset).U64(reply.size).U64(reply.offset);
  if (!complete) return RegionInfoReplyKind::kFixedPartOnly;
  if (!send_caps) return RegionInfoReplyKind::kComplete;

  // Each capability's `next` is where the following one starts; the last
  // one's is 0. `end` tracks the payload offset just past what is written.
  uint64_t end = kRegionInfoSize;
  auto header = [&](uint16_t id, uint64_t cap_size) {
    end += cap_size;
    const uint32_t next = end < full ? static_cast<uint32_t>(end) : 0;
    w.U16(id).U16(kRegionCapVersion).U32(next);
  };
  if (reply.sparse_mmap.has_value()) {
    const std::vector<SparseMmapArea>& areas = *reply.sparse_mmap;
    header(VFIO_REGION_INFO_CAP_SPARSE_MMAP, SparseMmapCapSize(areas.size()));
    // Fits: the whole reply fits in a u32 argsz, so nr_areas does too.
    w.U32(static_cast<uint32_t>(areas.size())).U32(0);
    for (const SparseMmapArea& area : areas) w.U64(area.offset).U64(area.size);
  }
  if (reply.type.has_value()) {
    header(VFIO_REGION_INFO_CAP_TYPE, kRegionTypeCapSize);
    w.U32(reply.type->type).U32(reply.type->subtype);
  }
  if (reply.msix_mappable) {
    header(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, kMsixMappableCapSize);
  }
  return RegionInfoReplyKind::kComplete;
}

absl::StatusOr<RegionInfoReply> DecodeRegionInfoReply(absl::Span<const uint8_t> payload,
                                                      size_t num_fds) {
  if (payload.size() < kRegionInfoSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_INFO reply payload of ",
                                          payload.size(), " bytes, need 32"));
  }
  if (num_fds > 1) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_INFO reply with ", num_fds,
                                          " fds, at most 1"));
  }
  RegionInfoReply r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.index = LoadU32(payload, 8);
  const uint32_t cap_offset = LoadU32(payload, 12);
  r.size = LoadU64(payload, 16);
  r.offset = LoadU64(payload, 24);
  if (r.argsz < kRegionInfoSize) {
    return WireError(EINVAL,
                     absl::StrCat("DEVICE_GET_REGION_INFO reply argsz ", r.argsz, " < 32"));
  }
  if ((r.flags & kFlagCaps) == 0) return r;
  if (cap_offset == 0) return ChainError(0, "CAPS set but cap_offset is 0");

  // Capabilities must lie inside both what arrived and what argsz declares.
  const uint64_t limit = std::min<uint64_t>(payload.size(), r.argsz);
  uint64_t offset = cap_offset;
  while (offset != 0) {
    if (offset < kRegionInfoSize) return ChainError(offset, "inside the fixed part");
    if (offset > limit || limit - offset < kCapHeaderSize) {
      return ChainError(offset, absl::StrCat("header past the end (", limit, " bytes)"));
    }
    const uint64_t available = limit - offset;
    const uint16_t id = LoadU16(payload, offset);
    const uint32_t next = LoadU32(payload, offset + 4);
    switch (id) {
      case VFIO_REGION_INFO_CAP_SPARSE_MMAP: {
        if (r.sparse_mmap.has_value()) return ChainError(offset, "second SPARSE_MMAP");
        if (available < kSparseMmapCapFixedSize) return ChainError(offset, "SPARSE_MMAP cut short");
        const uint32_t nr_areas = LoadU32(payload, offset + 8);
        if (SparseMmapCapSize(nr_areas) > available) {
          return ChainError(offset, absl::StrCat("SPARSE_MMAP nr_areas ", nr_areas,
                                                 " does not fit in ", available, " bytes"));
        }
        std::vector<SparseMmapArea>& areas = r.sparse_mmap.emplace();
        areas.reserve(nr_areas);
        for (uint64_t i = 0; i < nr_areas; ++i) {
          const uint64_t at = offset + kSparseMmapCapFixedSize + i * kSparseMmapAreaSize;
          areas.push_back({.offset = LoadU64(payload, at), .size = LoadU64(payload, at + 8)});
        }
        break;
      }
      case VFIO_REGION_INFO_CAP_TYPE:
        if (r.type.has_value()) return ChainError(offset, "second TYPE");
        if (available < kRegionTypeCapSize) return ChainError(offset, "TYPE cut short");
        r.type = RegionType{.type = LoadU32(payload, offset + 8),
                            .subtype = LoadU32(payload, offset + 12)};
        break;
      case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
        if (r.msix_mappable) return ChainError(offset, "second MSIX_MAPPABLE");
        r.msix_mappable = true;
        break;
      default:
        break;  // Unknown capabilities are skipped.
    }
    // Strictly increasing offsets bound the walk by the payload size.
    if (next != 0 && next <= offset) {
      return ChainError(offset, absl::StrCat("next ", next, " does not move forward"));
    }
    offset = next;
  }
  return r;
}

}  // namespace vfu::wire
