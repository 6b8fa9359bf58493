#include "vfu/wire/region_io_fds.h"

#include <algorithm>
#include <cerrno>
#include <limits>

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

constexpr uint32_t kU32Max = std::numeric_limits<uint32_t>::max();

bool IsKnownType(uint32_t type) {
  return type == static_cast<uint32_t>(IoFdType::kIoeventfd) ||
         type == static_cast<uint32_t>(IoFdType::kIoregionfd) ||
         type == static_cast<uint32_t>(IoFdType::kShadowIoeventfd);
}

}  // namespace

absl::StatusOr<RegionIoFdsRequest> DecodeRegionIoFdsRequest(absl::Span<const uint8_t> payload,
                                                            size_t num_fds) {
  if (payload.size() < kRegionIoFdsHeaderSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS payload of ",
                                          payload.size(), " bytes, need 16"));
  }
  RegionIoFdsRequest r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.index = LoadU32(payload, 8);
  r.count = LoadU32(payload, 12);
  if (r.argsz < kRegionIoFdsHeaderSize || r.argsz > kRegionIoFdsMaxArgsz) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS argsz ", r.argsz,
                                          " outside [16, 1 MiB]"));
  }
  if (r.flags != 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS flags 0x",
                                          absl::Hex(r.flags), ", must be 0"));
  }
  if (r.count != 0) {
    return WireError(EINVAL,
                     absl::StrCat("DEVICE_GET_REGION_IO_FDS count ", r.count, ", must be 0"));
  }
  return r;
}

void EncodeRegionIoFdsRequest(const RegionIoFdsRequest& request, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(request.argsz).U32(request.flags).U32(request.index).U32(request.count);
}

uint64_t RegionIoFdsReplyFullSize(size_t num_entries) {
  // A vector of 48-byte entries has fewer than 2^58 elements: no overflow.
  return kRegionIoFdsHeaderSize + kIoFdEntryEncodedSize * static_cast<uint64_t>(num_entries);
}

RegionIoFdsReplyKind EncodeRegionIoFdsReply(uint32_t index, absl::Span<const IoFdEntry> entries,
                                            uint32_t request_argsz, std::vector<uint8_t>& out) {
  const uint64_t full = RegionIoFdsReplyFullSize(entries.size());
  const uint32_t argsz = static_cast<uint32_t>(std::min<uint64_t>(full, kU32Max));
  const uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(entries.size(), kU32Max));
  const bool complete = full <= request_argsz;
  if (complete) out.reserve(out.size() + full);
  ByteWriter w(out);
  w.U32(argsz).U32(0).U32(index).U32(count);
  if (!complete) return RegionIoFdsReplyKind::kHeaderOnly;
  for (const IoFdEntry& e : entries) {
    w.U64(e.offset).U64(e.size).U32(e.fd_index).U32(static_cast<uint32_t>(e.type)).U32(e.flags);
    w.U32(e.shadow_mem_fd_index).U64(e.shadow_offset).U64(e.datamatch);
  }
  return RegionIoFdsReplyKind::kComplete;
}

absl::StatusOr<RegionIoFdsReply> DecodeRegionIoFdsReply(absl::Span<const uint8_t> payload,
                                                        size_t num_fds) {
  if (payload.size() < kRegionIoFdsHeaderSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS reply payload of ",
                                          payload.size(), " bytes, need 16"));
  }
  RegionIoFdsReply r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.index = LoadU32(payload, 8);
  r.count = LoadU32(payload, 12);
  if (r.argsz < kRegionIoFdsHeaderSize) {
    return WireError(EINVAL,
                     absl::StrCat("DEVICE_GET_REGION_IO_FDS reply argsz ", r.argsz, " < 16"));
  }
  if (r.flags != 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS reply flags 0x",
                                          absl::Hex(r.flags), ", must be 0"));
  }
  if (r.count == 0) return r;

  // The stride is judged even for a header-only reply: its argsz is what the
  // client will ask for next, so it must describe whole entries.
  const uint32_t entry_bytes = r.argsz - kRegionIoFdsHeaderSize;
  const uint32_t stride = entry_bytes / r.count;
  if (entry_bytes % r.count != 0 ||
      (stride != kIoFdEntrySpecSize && stride != kIoFdEntryLvuSize)) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS reply argsz ", r.argsz,
                                          " and count ", r.count,
                                          " give no 40- or 48-byte entry size"));
  }
  if (payload.size() == kRegionIoFdsHeaderSize) return r;  // Header only.
  if (payload.size() < r.argsz) {
    return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS reply of ", payload.size(),
                                          " bytes, argsz says ", r.argsz));
  }

  // count * stride == argsz - 16 <= payload size - 16: bounded allocation.
  r.entries.reserve(r.count);
  for (uint64_t i = 0; i < r.count; ++i) {
    const uint64_t at = kRegionIoFdsHeaderSize + i * stride;
    IoFdEntry e;
    e.offset = LoadU64(payload, at);
    e.size = LoadU64(payload, at + 8);
    e.fd_index = LoadU32(payload, at + 16);
    const uint32_t type = LoadU32(payload, at + 20);
    e.flags = LoadU32(payload, at + 24);
    if (stride == kIoFdEntryLvuSize) {
      e.shadow_mem_fd_index = LoadU32(payload, at + 28);
      e.shadow_offset = LoadU64(payload, at + 32);
      e.datamatch = LoadU64(payload, at + 40);
    } else {
      e.datamatch = LoadU64(payload, at + 32);
    }
    if (!IsKnownType(type)) {
      return WireError(EINVAL,
                       absl::StrCat("DEVICE_GET_REGION_IO_FDS entry ", i, ": type ", type));
    }
    e.type = static_cast<IoFdType>(type);
    if (e.type == IoFdType::kShadowIoeventfd && stride != kIoFdEntryLvuSize) {
      return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS entry ", i,
                                            ": shadow ioeventfd in a 40-byte entry"));
    }
    if (e.fd_index >= num_fds ||
        (e.type == IoFdType::kShadowIoeventfd && e.shadow_mem_fd_index >= num_fds)) {
      return WireError(EINVAL, absl::StrCat("DEVICE_GET_REGION_IO_FDS entry ", i,
                                            ": fd index out of range of ", num_fds, " fds"));
    }
    r.entries.push_back(e);
  }
  return r;
}

}  // namespace vfu::wire
