#include "vfu/wire/region_access.h"

#include <cerrno>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

RegionAccess LoadPrefix(absl::Span<const uint8_t> payload) {
  return RegionAccess{.offset = LoadU64(payload, 0),
                      .region = LoadU32(payload, 8),
                      .count = LoadU32(payload, 12)};
}

void WritePrefix(uint64_t offset, uint32_t region, size_t count, std::vector<uint8_t>& out) {
  VFU_CHECK(count <= std::numeric_limits<uint32_t>::max(), "region access count over 32 bits");
  ByteWriter(out).U64(offset).U32(region).U32(static_cast<uint32_t>(count));
}

absl::Status ShortPayload(std::string_view what, size_t size) {
  return WireError(EINVAL, absl::StrCat(what, " payload of ", size, " bytes, need 16"));
}

// Decodes the prefix and data of a message whose payload must be exactly
// 16 + count bytes.
absl::StatusOr<RegionAccessData> DecodeWithData(absl::Span<const uint8_t> payload,
                                                std::string_view what) {
  if (payload.size() < kRegionAccessPrefixSize) return ShortPayload(what, payload.size());
  const RegionAccess prefix = LoadPrefix(payload);
  if (payload.size() - kRegionAccessPrefixSize != prefix.count) {
    return WireError(EINVAL, absl::StrCat(what, " payload of ", payload.size(),
                                          " bytes, count ", prefix.count, " needs 16 + count"));
  }
  return RegionAccessData{.offset = prefix.offset,
                          .region = prefix.region,
                          .data = payload.subspan(kRegionAccessPrefixSize)};
}

absl::Status CheckMaxCount(std::string_view what, uint32_t count, uint64_t max_count) {
  if (count > max_count) {
    return WireError(EINVAL, absl::StrCat(what, " count ", count, " above max_data_xfer_size ",
                                          max_count));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RegionAccess> DecodeRegionReadRequest(absl::Span<const uint8_t> payload,
                                                     size_t num_fds, uint64_t max_count) {
  if (payload.size() != kRegionAccessPrefixSize) {
    return WireError(EINVAL, absl::StrCat("REGION_READ payload of ", payload.size(),
                                          " bytes, must be 16"));
  }
  const RegionAccess r = LoadPrefix(payload);
  if (absl::Status s = CheckMaxCount("REGION_READ", r.count, max_count); !s.ok()) return s;
  return r;
}

void EncodeRegionReadRequest(const RegionAccess& request, std::vector<uint8_t>& out) {
  WritePrefix(request.offset, request.region, request.count, out);
}

void EncodeRegionReadReply(const RegionAccess& request, absl::Span<const uint8_t> data,
                           std::vector<uint8_t>& out) {
  out.reserve(out.size() + kRegionAccessPrefixSize + data.size());
  WritePrefix(request.offset, request.region, data.size(), out);
  ByteWriter(out).Bytes(data);
}

absl::StatusOr<RegionAccessData> DecodeRegionReadReply(absl::Span<const uint8_t> payload,
                                                       size_t num_fds) {
  return DecodeWithData(payload, "REGION_READ reply");
}

absl::StatusOr<RegionAccessData> DecodeRegionWriteRequest(absl::Span<const uint8_t> payload,
                                                          size_t num_fds, uint64_t max_count) {
  absl::StatusOr<RegionAccessData> r = DecodeWithData(payload, "REGION_WRITE");
  if (!r.ok()) return r;
  if (absl::Status s = CheckMaxCount("REGION_WRITE", static_cast<uint32_t>(r->data.size()),
                                     max_count);
      !s.ok()) {
    return s;
  }
  return r;
}

void EncodeRegionWriteRequest(const RegionAccessData& request, std::vector<uint8_t>& out) {
  out.reserve(out.size() + kRegionAccessPrefixSize + request.data.size());
  WritePrefix(request.offset, request.region, request.data.size(), out);
  ByteWriter(out).Bytes(request.data);
}

void EncodeRegionWriteReply(const RegionAccess& reply, std::vector<uint8_t>& out) {
  WritePrefix(reply.offset, reply.region, reply.count, out);
}

absl::StatusOr<RegionAccess> DecodeRegionWriteReply(absl::Span<const uint8_t> payload,
                                                    size_t num_fds) {
  if (payload.size() != kRegionAccessPrefixSize) {
    return WireError(EINVAL, absl::StrCat("REGION_WRITE reply payload of ", payload.size(),
                                          " bytes, must be 16"));
  }
  return LoadPrefix(payload);
}

absl::Status CheckRegionAccess(uint64_t offset, uint32_t count, uint64_t region_size) {
  if (offset > region_size || count > region_size - offset) {
    return WireError(EINVAL, absl::StrCat("access of ", count, " bytes at ", offset,
                                          " outside a region of ", region_size, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RegionWriteMultiEntry>> DecodeRegionWriteMultiRequest(
    absl::Span<const uint8_t> payload, size_t num_fds) {
  if (payload.size() < kWriteMultiCountSize) {
    return WireError(EINVAL, absl::StrCat("REGION_WRITE_MULTI payload of ", payload.size(),
                                          " bytes, need 8"));
  }
  const uint64_t wr_cnt = LoadU64(payload, 0);
  // Compare by division so that a huge wr_cnt cannot overflow the product.
  const size_t entry_bytes = payload.size() - kWriteMultiCountSize;
  if (entry_bytes % kWriteMultiEntrySize != 0 || entry_bytes / kWriteMultiEntrySize != wr_cnt) {
    return WireError(EINVAL, absl::StrCat("REGION_WRITE_MULTI payload of ", payload.size(),
                                          " bytes, wr_cnt ", wr_cnt, " needs 8 + 24 * wr_cnt"));
  }
  std::vector<RegionWriteMultiEntry> entries;
  entries.reserve(wr_cnt);  // Bounded by the payload size, checked above.
  for (uint64_t i = 0; i < wr_cnt; ++i) {
    const size_t at = kWriteMultiCountSize + i * kWriteMultiEntrySize;
    const uint32_t count = LoadU32(payload, at + 12);
    if (count < 1 || count > kWriteMultiMaxCount) {
      return WireError(EINVAL, absl::StrCat("REGION_WRITE_MULTI entry ", i, ": count ", count,
                                            " outside 1..8"));
    }
    entries.push_back(RegionWriteMultiEntry{.offset = LoadU64(payload, at),
                                            .region = LoadU32(payload, at + 8),
                                            .data = payload.subspan(at + 16, count)});
  }
  return entries;
}

void EncodeRegionWriteMultiRequest(absl::Span<const RegionWriteMultiEntry> entries,
                                   std::vector<uint8_t>& out) {
  out.reserve(out.size() + kWriteMultiCountSize + kWriteMultiEntrySize * entries.size());
  ByteWriter w(out);
  w.U64(entries.size());
  for (const RegionWriteMultiEntry& e : entries) {
    VFU_CHECK(!e.data.empty() && e.data.size() <= kWriteMultiMaxCount,
              "REGION_WRITE_MULTI entry data must be 1..8 bytes");
    w.U64(e.offset).U32(e.region).U32(static_cast<uint32_t>(e.data.size()));
    w.Bytes(e.data).Zeros(kWriteMultiMaxCount - e.data.size());
  }
}

void EncodeRegionWriteMultiReply(uint64_t writes_completed, std::vector<uint8_t>& out) {
  ByteWriter(out).U64(writes_completed);
}

absl::StatusOr<uint64_t> DecodeRegionWriteMultiReply(absl::Span<const uint8_t> payload,
                                                     size_t num_fds) {
  if (payload.size() != kWriteMultiCountSize) {
    return WireError(EINVAL, absl::StrCat("REGION_WRITE_MULTI reply payload of ", payload.size(),
                                          " bytes, must be 8"));
  }
  return LoadU64(payload, 0);
}

}  // namespace vfu::wire
