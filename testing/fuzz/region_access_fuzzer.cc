// Fuzzes the REGION_READ / REGION_WRITE / REGION_WRITE_MULTI codec
// (vfu/wire/region_access.h) and CheckRegionAccess(), every decoder on the
// same payload.
//
// Input: one selector byte, then the payload. Selector bits 0-2: the
// max_data_xfer_size limit (0, 1, 8, 16, 4096, 1 MiB, 64 MiB, 2^64 - 1);
// bits 3-5: the region size for CheckRegionAccess() (0, 1, 8, 256, 4096,
// 2^32, 2^63, 2^64 - 1); bits 6-7: number of fds (ignored by these).
//
// Checks:
//  - a rejection carries EINVAL;
//  - READ request: exactly 16 bytes and count <= limit; WRITE request and
//    READ reply: payload exactly 16 + count (and count <= limit for the
//    request); WRITE reply: exactly 16 bytes; WRITE_MULTI: 8 + 24 * wr_cnt
//    bytes with every count in 1..8; WRITE_MULTI reply: exactly 8 bytes;
//  - round trip: each decoded message re-encodes to the payload byte for
//    byte (WRITE_MULTI: except the unused data bytes, written as zeros)
//    and decodes to an equal message;
//  - CheckRegionAccess(offset, count, size) accepts exactly
//    offset + count <= size, computed without overflow.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/region_access.h"

namespace vfu::fuzz {
namespace {

using wire::RegionAccess;
using wire::RegionAccessData;
using wire::RegionWriteMultiEntry;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

bool SameBytes(const std::vector<uint8_t>& out, absl::Span<const uint8_t> payload) {
  return out.size() == payload.size() && std::equal(out.begin(), out.end(), payload.begin());
}

void CheckEinval(const absl::Status& status) {
  VFU_FUZZ_CHECK(Errno(status) == EINVAL, status.ToString());
}

void CheckReadRequest(absl::Span<const uint8_t> payload, size_t num_fds, uint64_t max_count) {
  const absl::StatusOr<RegionAccess> r = wire::DecodeRegionReadRequest(payload, num_fds, max_count);
  if (!r.ok()) return CheckEinval(r.status());
  VFU_FUZZ_CHECK(payload.size() == wire::kRegionAccessPrefixSize && r->count <= max_count,
                 "READ of ", payload.size(), " bytes, count ", r->count, " accepted");
  std::vector<uint8_t> out;
  wire::EncodeRegionReadRequest(*r, out);
  VFU_FUZZ_CHECK(SameBytes(out, payload), "READ re-encoded as ", Hex(out));
  const absl::StatusOr<RegionAccess> back = wire::DecodeRegionReadRequest(out, 0, max_count);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ round trip differs");
}

void CheckReadReply(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<RegionAccessData> r = wire::DecodeRegionReadReply(payload, num_fds);
  if (!r.ok()) return CheckEinval(r.status());
  VFU_FUZZ_CHECK(payload.size() == wire::kRegionAccessPrefixSize + r->data.size() &&
                     wire::LoadU32(payload, 12) == r->data.size(),
                 "READ reply of ", payload.size(), " bytes with ", r->data.size(), " data");
  std::vector<uint8_t> out;
  wire::EncodeRegionReadReply(
      RegionAccess{
          .offset = r->offset, .region = r->region, .count = static_cast<uint32_t>(r->data.size())},
      r->data, out);
  VFU_FUZZ_CHECK(SameBytes(out, payload), "READ reply re-encoded as ", Hex(out));
  const absl::StatusOr<RegionAccessData> back = wire::DecodeRegionReadReply(out, 0);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ reply round trip differs");
}

void CheckWriteRequest(absl::Span<const uint8_t> payload, size_t num_fds, uint64_t max_count) {
  const absl::StatusOr<RegionAccessData> r =
      wire::DecodeRegionWriteRequest(payload, num_fds, max_count);
  if (!r.ok()) return CheckEinval(r.status());
  VFU_FUZZ_CHECK(payload.size() == wire::kRegionAccessPrefixSize + r->data.size() &&
                     r->data.size() <= max_count && wire::LoadU32(payload, 12) == r->data.size(),
                 "WRITE of ", payload.size(), " bytes with ", r->data.size(), " data accepted");
  std::vector<uint8_t> out;
  wire::EncodeRegionWriteRequest(*r, out);
  VFU_FUZZ_CHECK(SameBytes(out, payload), "WRITE re-encoded as ", Hex(out));
  const absl::StatusOr<RegionAccessData> back = wire::DecodeRegionWriteRequest(out, 0, max_count);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "WRITE round trip differs");
}

void CheckWriteReply(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<RegionAccess> r = wire::DecodeRegionWriteReply(payload, num_fds);
  if (!r.ok()) return CheckEinval(r.status());
  VFU_FUZZ_CHECK(payload.size() == wire::kRegionAccessPrefixSize, "WRITE reply of ", payload.size(),
                 " bytes accepted");
  std::vector<uint8_t> out;
  wire::EncodeRegionWriteReply(*r, out);
  VFU_FUZZ_CHECK(SameBytes(out, payload), "WRITE reply re-encoded as ", Hex(out));
}

void CheckWriteMulti(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<std::vector<RegionWriteMultiEntry>> entries =
      wire::DecodeRegionWriteMultiRequest(payload, num_fds);
  if (!entries.ok()) return CheckEinval(entries.status());
  VFU_FUZZ_CHECK(
      payload.size() == wire::kWriteMultiCountSize + wire::kWriteMultiEntrySize * entries->size() &&
          wire::LoadU64(payload, 0) == entries->size(),
      "WRITE_MULTI of ", payload.size(), " bytes with ", entries->size(), " entries accepted");
  std::vector<uint8_t> expected(payload.begin(), payload.end());
  for (size_t i = 0; i < entries->size(); ++i) {
    const RegionWriteMultiEntry& e = (*entries)[i];
    VFU_FUZZ_CHECK(!e.data.empty() && e.data.size() <= wire::kWriteMultiMaxCount, "entry ", i,
                   " with ", e.data.size(), " bytes");
    // The encoder writes the unused data bytes as zeros.
    const size_t data_at =
        wire::kWriteMultiCountSize + i * wire::kWriteMultiEntrySize + 16 + e.data.size();
    std::fill(expected.begin() + data_at,
              expected.begin() + data_at + (wire::kWriteMultiMaxCount - e.data.size()), 0);
  }
  std::vector<uint8_t> out;
  wire::EncodeRegionWriteMultiRequest(*entries, out);
  VFU_FUZZ_CHECK(out == expected, "WRITE_MULTI re-encoded as ", Hex(out));
  const absl::StatusOr<std::vector<RegionWriteMultiEntry>> back =
      wire::DecodeRegionWriteMultiRequest(out, 0);
  VFU_FUZZ_CHECK(back.ok() && *back == *entries, "WRITE_MULTI round trip differs");
}

void CheckWriteMultiReply(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<uint64_t> n = wire::DecodeRegionWriteMultiReply(payload, num_fds);
  if (!n.ok()) return CheckEinval(n.status());
  std::vector<uint8_t> out;
  wire::EncodeRegionWriteMultiReply(*n, out);
  VFU_FUZZ_CHECK(SameBytes(out, payload), "WRITE_MULTI reply re-encoded as ", Hex(out));
}

void CheckRange(absl::Span<const uint8_t> payload, uint64_t region_size) {
  InputReader fields(payload);
  const uint64_t offset = fields.U64();
  fields.U32();  // region
  const uint32_t count = fields.U32();
  const absl::Status s = wire::CheckRegionAccess(offset, count, region_size);
  const bool inside = static_cast<unsigned __int128>(offset) + count <= region_size;
  VFU_FUZZ_CHECK(s.ok() == inside, "CheckRegionAccess(", offset, ", ", count, ", ", region_size,
                 ") = ", s.ToString());
  if (!s.ok()) CheckEinval(s);
}

void Run(InputReader& in) {
  static constexpr uint64_t kMaxCounts[] = {0, 1, 8, 16, 4096, 1 << 20, 64 << 20, kU64Max};
  static constexpr uint64_t kRegionSizes[] = {0, 1, 8, 256, 4096, 1ull << 32, 1ull << 63, kU64Max};
  const uint8_t selector = in.U8();
  const uint64_t max_count = kMaxCounts[selector & 7];
  const uint64_t region_size = kRegionSizes[(selector >> 3) & 7];
  const size_t num_fds = selector >> 6;
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckReadRequest(payload, num_fds, max_count);
  CheckReadReply(payload, num_fds);
  CheckWriteRequest(payload, num_fds, max_count);
  CheckWriteReply(payload, num_fds);
  CheckWriteMulti(payload, num_fds);
  CheckWriteMultiReply(payload, num_fds);
  CheckRange(payload, region_size);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
