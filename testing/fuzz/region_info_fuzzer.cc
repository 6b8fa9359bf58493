// Fuzzes the DEVICE_GET_REGION_INFO codec (vfu/wire/region_info.h): the
// request decoder and the reply's capability-chain decoder on the same
// payload, and the reply encoder on whatever the chain decoder accepts.
//
// Input: one selector byte, then the payload. Selector bits 0-1: number of
// fds (0..3); bits 2-7: the request argsz the reply is re-encoded for
// (32 + 8 * n).
//
// Checks:
//  - a rejection carries EINVAL; a reply with more than one fd is rejected;
//  - request round trip: argsz and index survive re-encoding exactly;
//  - a decoded reply has capabilities only with CAPS set;
//  - reply round trip: re-encoding a decoded reply for an unlimited argsz
//    is complete, RegionInfoReplyFullSize() bytes long, and decodes to the
//    same reply (argsz normalized to the full size, CAPS to "has
//    capabilities");
//  - truncation (PROTOCOL.md 4.4): for a smaller request argsz the reply is
//    the 32-byte fixed part with CAPS clear and argsz = full size, and no
//    reply is ever longer than the request's argsz.
#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/region_info.h"

namespace vfu::fuzz {
namespace {

using wire::RegionInfoReply;
using wire::RegionInfoReplyKind;
using wire::RegionInfoRequest;

constexpr uint32_t kFlagCaps = VFIO_REGION_INFO_FLAG_CAPS;

bool HasCaps(const RegionInfoReply& r) {
  return r.sparse_mmap.has_value() || r.type.has_value() || r.msix_mappable;
}

void CheckRequest(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<RegionInfoRequest> r = wire::DecodeRegionInfoRequest(payload, num_fds);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() >= wire::kRegionInfoSize && r->argsz >= wire::kRegionInfoSize,
                 "short request accepted");
  VFU_FUZZ_CHECK(r->argsz == wire::LoadU32(payload, 0) && r->index == wire::LoadU32(payload, 8),
                 "argsz or index misread");
  std::vector<uint8_t> out;
  wire::EncodeRegionInfoRequest(*r, out);
  VFU_FUZZ_CHECK(out.size() == wire::kRegionInfoSize, "request of ", out.size(), " bytes");
  const absl::StatusOr<RegionInfoRequest> back = wire::DecodeRegionInfoRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "request round trip differs");
}

// Encodes `r` for `request_argsz` and checks the truncation rules; returns
// the decoded result of the encoding.
RegionInfoReply EncodeAndDecode(const RegionInfoReply& r, uint32_t request_argsz) {
  const uint64_t full = wire::RegionInfoReplyFullSize(r);
  std::vector<uint8_t> out;
  const RegionInfoReplyKind kind = wire::EncodeRegionInfoReply(r, request_argsz, out);
  VFU_FUZZ_CHECK(out.size() <= request_argsz, "reply of ", out.size(),
                 " bytes exceeds the request argsz ", request_argsz);
  if (full <= request_argsz) {
    VFU_FUZZ_CHECK(kind == RegionInfoReplyKind::kComplete && out.size() == full,
                   "complete reply of ", out.size(), " bytes, full size ", full);
  } else {
    VFU_FUZZ_CHECK(
        kind == RegionInfoReplyKind::kFixedPartOnly && out.size() == wire::kRegionInfoSize,
        "truncated reply of ", out.size(), " bytes");
  }
  const absl::StatusOr<RegionInfoReply> back = wire::DecodeRegionInfoReply(out, 0);
  VFU_FUZZ_CHECK(back.ok(), "own reply rejected: ", back.status().ToString(), " ", Hex(out));
  VFU_FUZZ_CHECK(back->argsz == std::min<uint64_t>(full, std::numeric_limits<uint32_t>::max()),
                 "reply argsz ", back->argsz, ", full size ", full);
  if (kind == RegionInfoReplyKind::kFixedPartOnly) {
    VFU_FUZZ_CHECK((back->flags & kFlagCaps) == 0 && !HasCaps(*back) && wire::LoadU32(out, 12) == 0,
                   "truncated reply with capabilities");
  }
  return *back;
}

void CheckReply(absl::Span<const uint8_t> payload, size_t num_fds, uint32_t request_argsz) {
  const absl::StatusOr<RegionInfoReply> r = wire::DecodeRegionInfoReply(payload, num_fds);
  if (num_fds > 1) VFU_FUZZ_CHECK(!r.ok(), "reply with ", num_fds, " fds accepted");
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(r->argsz >= wire::kRegionInfoSize, "argsz ", r->argsz, " accepted");
  if ((r->flags & kFlagCaps) == 0) VFU_FUZZ_CHECK(!HasCaps(*r), "capabilities without CAPS");

  RegionInfoReply expected = *r;
  expected.argsz = static_cast<uint32_t>(wire::RegionInfoReplyFullSize(*r));
  expected.flags = (r->flags & ~kFlagCaps) | (HasCaps(*r) ? kFlagCaps : 0);
  const RegionInfoReply complete = EncodeAndDecode(*r, std::numeric_limits<uint32_t>::max());
  VFU_FUZZ_CHECK(complete == expected, "reply round trip differs");

  const RegionInfoReply sized = EncodeAndDecode(*r, request_argsz);
  if (wire::RegionInfoReplyFullSize(*r) <= request_argsz) {
    VFU_FUZZ_CHECK(sized == expected, "reply round trip for argsz ", request_argsz, " differs");
  }
}

void Run(InputReader& in) {
  const uint8_t selector = in.U8();
  const size_t num_fds = selector & 3;
  const uint32_t request_argsz = wire::kRegionInfoSize + 8 * (selector >> 2);
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckRequest(payload, num_fds);
  CheckReply(payload, num_fds, request_argsz);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
