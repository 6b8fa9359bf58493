// Fuzzes the DMA_MAP request decoder (vfu/wire/dma_map.h).
//
// Input: one selector byte (bits 0-1: number of fds, 0..3), then the
// payload.
//
// Checks:
//  - a rejection carries EINVAL;
//  - what decodes satisfies the documented rules: payload and argsz >= 32,
//    only READ/WRITE flags, at most one fd, size > 0, addr + size does not
//    wrap (nor offset + size with an fd);
//  - round trip: re-encoding gives back the first 32 payload bytes exactly,
//    and they decode to an equal request.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/dma_map.h"

namespace vfu::fuzz {
namespace {

using wire::DmaMapRequest;

void Run(InputReader& in) {
  const size_t num_fds = in.U8() & 3;
  const absl::Span<const uint8_t> payload = in.Rest();
  const absl::StatusOr<DmaMapRequest> r = wire::DecodeDmaMapRequest(payload, num_fds);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() >= wire::kDmaMapRequestSize && r->argsz >= wire::kDmaMapRequestSize,
                 "short DMA_MAP accepted");
  VFU_FUZZ_CHECK((r->flags & ~(wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite)) == 0,
                 "unknown flags accepted: ", r->flags);
  VFU_FUZZ_CHECK(num_fds <= 1, num_fds, " fds accepted");
  VFU_FUZZ_CHECK(r->size > 0 && r->addr + r->size >= r->addr, "empty or wrapping range");
  if (num_fds == 1) VFU_FUZZ_CHECK(r->offset + r->size >= r->offset, "wrapping file range");

  std::vector<uint8_t> out;
  wire::EncodeDmaMapRequest(*r, out);
  VFU_FUZZ_CHECK(
      out.size() == wire::kDmaMapRequestSize && std::equal(out.begin(), out.end(), payload.begin()),
      "re-encoded ", Hex(out));
  const absl::StatusOr<DmaMapRequest> back = wire::DecodeDmaMapRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "round trip differs");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
