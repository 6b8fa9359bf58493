// Fuzzes the DMA_UNMAP codec (vfu/wire/dma_unmap.h): the request decoder,
// the reply built for a decoded request, and the client-side reply decoder,
// all on the same payload.
//
// Input: one selector byte (bits 0-1: number of fds, which DMA_UNMAP
// ignores), then the payload.
//
// Checks:
//  - a rejection carries EINVAL;
//  - a decoded request follows PROTOCOL.md section 10 rows 4-6, 28, 29:
//    24 <= argsz <= 1 MiB, known flags only, not ALL with GET_DIRTY_BITMAP,
//    ALL only with addr == size == 0, and with GET_DIRTY_BITMAP a 40-byte
//    payload, a power-of-two page size and exactly DirtyBitmapSize() bytes
//    of bitmap;
//  - request round trip: re-encoding gives back the payload's first 24 (or
//    40) bytes exactly, and they decode to an equal request;
//  - the reply for a decoded request (with a bitmap of the size asked for)
//    fits in the request's argsz and decodes back to itself;
//  - reply round trip: a decoded reply re-encodes to the payload exactly.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/dma_unmap.h"

namespace vfu::fuzz {
namespace {

using wire::DmaUnmapReply;
using wire::DmaUnmapRequest;

constexpr size_t kWithBitmapSize = wire::kDmaUnmapRequestSize + wire::kDmaUnmapBitmapHeaderSize;

void CheckRequest(const DmaUnmapRequest& r, absl::Span<const uint8_t> payload, size_t num_fds) {
  const bool want_bitmap = (r.flags & wire::kDmaUnmapFlagGetDirtyBitmap) != 0;
  const bool all = (r.flags & wire::kDmaUnmapFlagAll) != 0;
  VFU_FUZZ_CHECK(r.argsz >= wire::kDmaUnmapRequestSize && r.argsz <= wire::kDmaUnmapMaxArgsz,
                 "argsz ", r.argsz, " accepted");
  VFU_FUZZ_CHECK((r.flags & ~(wire::kDmaUnmapFlagGetDirtyBitmap | wire::kDmaUnmapFlagAll)) == 0,
                 "unknown flags accepted: ", r.flags);
  VFU_FUZZ_CHECK(!(all && want_bitmap), "ALL with GET_DIRTY_BITMAP accepted");
  if (all) VFU_FUZZ_CHECK(r.addr == 0 && r.size == 0, "ALL with a range accepted");
  VFU_FUZZ_CHECK(r.bitmap.has_value() == want_bitmap, "bitmap presence disagrees with flags");
  if (want_bitmap) {
    VFU_FUZZ_CHECK(payload.size() >= kWithBitmapSize, "short bitmap request accepted");
    VFU_FUZZ_CHECK(std::has_single_bit(r.bitmap->pgsize), "pgsize ", r.bitmap->pgsize);
    const absl::StatusOr<uint64_t> expected = wire::DirtyBitmapSize(r.size, r.bitmap->pgsize);
    VFU_FUZZ_CHECK(expected.ok() && *expected == r.bitmap->size, "bitmap size ", r.bitmap->size,
                   " for ", r.size, " bytes at ", r.bitmap->pgsize);
    VFU_FUZZ_CHECK(r.bitmap->size <= r.argsz - kWithBitmapSize, "bitmap of ", r.bitmap->size,
                   " does not fit argsz ", r.argsz);
  }

  std::vector<uint8_t> out;
  wire::EncodeDmaUnmapRequest(r, out);
  VFU_FUZZ_CHECK(out.size() == (want_bitmap ? kWithBitmapSize : wire::kDmaUnmapRequestSize) &&
                     std::equal(out.begin(), out.end(), payload.begin()),
                 "request re-encoded as ", Hex(out));
  const absl::StatusOr<DmaUnmapRequest> back = wire::DecodeDmaUnmapRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == r, "request round trip differs");

  // The server's answer: never more than the client's argsz (PROTOCOL.md 2.4).
  std::vector<uint8_t> bitmap(r.bitmap.has_value() ? r.bitmap->size : 0);
  for (size_t i = 0; i < bitmap.size(); ++i) bitmap[i] = static_cast<uint8_t>(i * 37 + 1);
  const DmaUnmapReply reply = wire::DmaUnmapReplyFor(r, bitmap);
  std::vector<uint8_t> reply_bytes;
  wire::EncodeDmaUnmapReply(reply, reply_bytes);
  VFU_FUZZ_CHECK(reply_bytes.size() <= r.argsz, "reply of ", reply_bytes.size(),
                 " bytes exceeds argsz ", r.argsz);
  if (!want_bitmap) {
    VFU_FUZZ_CHECK(reply_bytes.size() == wire::kDmaUnmapRequestSize, "plain reply of ",
                   reply_bytes.size(), " bytes");
  }
  const absl::StatusOr<DmaUnmapReply> decoded = wire::DecodeDmaUnmapReply(reply_bytes, 0);
  VFU_FUZZ_CHECK(decoded.ok(), "our reply rejected: ", decoded.status().ToString());
  VFU_FUZZ_CHECK(*decoded == reply, "reply for the request does not decode back");
}

void Run(InputReader& in) {
  const size_t num_fds = in.U8() & 3;
  const absl::Span<const uint8_t> payload = in.Rest();

  const absl::StatusOr<DmaUnmapRequest> request = wire::DecodeDmaUnmapRequest(payload, num_fds);
  if (request.ok()) {
    CheckRequest(*request, payload, num_fds);
  } else {
    VFU_FUZZ_CHECK(Errno(request.status()) == EINVAL, request.status().ToString());
  }

  const absl::StatusOr<DmaUnmapReply> reply = wire::DecodeDmaUnmapReply(payload, num_fds);
  if (!reply.ok()) {
    VFU_FUZZ_CHECK(Errno(reply.status()) == EINVAL, reply.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(
      reply->bitmap_pgsize.has_value() == ((reply->flags & wire::kDmaUnmapFlagGetDirtyBitmap) != 0),
      "bitmap presence disagrees with flags");
  std::vector<uint8_t> out;
  wire::EncodeDmaUnmapReply(*reply, out);
  VFU_FUZZ_CHECK(
      out.size() == payload.size() && std::equal(out.begin(), out.end(), payload.begin()),
      "reply re-encoded as ", Hex(out));
  const absl::StatusOr<DmaUnmapReply> back = wire::DecodeDmaUnmapReply(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *reply, "reply round trip differs");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
