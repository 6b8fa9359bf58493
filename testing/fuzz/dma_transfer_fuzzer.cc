// Fuzzes the DMA_READ / DMA_WRITE codec (vfu/wire/dma_transfer.h) in both
// layouts (the specification's and QEMU's), every decoder on the same
// payload.
//
// Input: one selector byte, then the payload. Selector bit 0: layout (0
// spec, 1 QEMU); bits 1-3: the count limit (0, 1, 16, 4096, 1 MiB,
// 64 MiB, 2^32 - 1, 2^64 - 1).
//
// Checks:
//  - requests are rejected with EINVAL only; replies with EINVAL, or with
//    ECONNRESET exactly when the payload is shorter than the layout needs
//    (section 10 row 36);
//  - what decodes has the documented sizes: a READ request and a spec
//    WRITE reply exactly 16 bytes, a READ reply and a WRITE request exactly
//    16 + count, a QEMU WRITE reply empty; counts within the limit;
//  - round trip: re-encoding in the same layout gives back the payload
//    (QEMU's tail padding written as zeros) and decodes to an equal value;
//  - for count < 2^32 a READ request is byte-identical in both layouts;
//  - CheckDmaReplyEcho() accepts a reply against the request it echoes and
//    rejects it against a different count.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/dma_transfer.h"

namespace vfu::fuzz {
namespace {

using wire::DmaReadReply;
using wire::DmaReadRequest;
using wire::DmaTransferLayout;
using wire::DmaWriteReply;
using wire::DmaWriteRequest;

constexpr size_t kFixed = wire::kDmaTransferFixedSize;
constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();

// The payload as our encoder would write it: QEMU's padding zeroed.
std::vector<uint8_t> Canonical(absl::Span<const uint8_t> payload, DmaTransferLayout layout,
                               bool has_padding) {
  std::vector<uint8_t> bytes(payload.begin(), payload.end());
  if (layout == DmaTransferLayout::kQemu && has_padding && bytes.size() >= 4) {
    std::fill(bytes.end() - 4, bytes.end(), 0);
  }
  return bytes;
}

// The count field as the layout reads it, or 0 if the payload is short.
uint64_t WireCount(absl::Span<const uint8_t> payload, DmaTransferLayout layout) {
  if (payload.size() < kFixed) return 0;
  return layout == DmaTransferLayout::kSpec ? wire::LoadU64(payload, 8) : wire::LoadU32(payload, 8);
}

// A reply decoder's failure: ECONNRESET exactly when too short.
void CheckReplyError(const absl::Status& s, bool short_payload) {
  const int e = Errno(s);
  VFU_FUZZ_CHECK(e == (short_payload ? ECONNRESET : EINVAL), "errno ", e, " for ",
                 short_payload ? "a short" : "a malformed", " reply: ", s.ToString());
}

void CheckReadRequest(absl::Span<const uint8_t> payload, DmaTransferLayout layout,
                      uint64_t max_count) {
  const absl::StatusOr<DmaReadRequest> r =
      wire::DecodeDmaReadRequest(payload, 0, layout, max_count);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() == kFixed && r->count <= max_count, "READ request of ",
                 payload.size(), " bytes, count ", r->count, " accepted");
  std::vector<uint8_t> out;
  wire::EncodeDmaReadRequest(*r, layout, out);
  VFU_FUZZ_CHECK(out == Canonical(payload, layout, true), "READ request re-encoded as ", Hex(out));
  const absl::StatusOr<DmaReadRequest> back = wire::DecodeDmaReadRequest(out, 0, layout, max_count);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ request round trip differs");
  if (r->count <= kU32Max) {
    std::vector<uint8_t> spec, qemu;
    wire::EncodeDmaReadRequest(*r, DmaTransferLayout::kSpec, spec);
    wire::EncodeDmaReadRequest(*r, DmaTransferLayout::kQemu, qemu);
    VFU_FUZZ_CHECK(spec == qemu, "READ request layouts differ: ", Hex(spec), " vs ", Hex(qemu));
  }
}

void CheckReadReply(absl::Span<const uint8_t> payload, DmaTransferLayout layout,
                    uint64_t max_count) {
  const absl::StatusOr<DmaReadReply> r = wire::DecodeDmaReadReply(payload, 0, layout, max_count);
  const uint64_t count = WireCount(payload, layout);
  if (!r.ok()) {
    CheckReplyError(r.status(), payload.size() < kFixed ||
                                    (count <= max_count && payload.size() - kFixed < count));
    return;
  }
  VFU_FUZZ_CHECK(
      payload.size() == kFixed + r->count() && r->count() == count && r->count() <= max_count,
      "READ reply of ", payload.size(), " bytes, count ", r->count(), " accepted");
  std::vector<uint8_t> out;
  wire::EncodeDmaReadReply(*r, layout, out);
  VFU_FUZZ_CHECK(out == Canonical(payload, layout, true), "READ reply re-encoded as ", Hex(out));
  const absl::StatusOr<DmaReadReply> back = wire::DecodeDmaReadReply(out, 0, layout, max_count);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ reply round trip differs");

  const DmaReadRequest asked{.address = r->address, .count = r->count()};
  VFU_FUZZ_CHECK(wire::CheckDmaReplyEcho(asked, *r).ok(), "echo of the right request rejected");
  const DmaReadRequest other{.address = r->address, .count = r->count() + 1};
  const absl::Status mismatch = wire::CheckDmaReplyEcho(other, *r);
  VFU_FUZZ_CHECK(!mismatch.ok() && Errno(mismatch) == EINVAL, "count mismatch accepted");
}

void CheckWriteRequest(absl::Span<const uint8_t> payload, DmaTransferLayout layout,
                       uint64_t max_count) {
  const absl::StatusOr<DmaWriteRequest> r =
      wire::DecodeDmaWriteRequest(payload, 0, layout, max_count);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() == kFixed + r->count() &&
                     r->count() == WireCount(payload, layout) && r->count() <= max_count,
                 "WRITE request of ", payload.size(), " bytes, count ", r->count(), " accepted");
  std::vector<uint8_t> out;
  wire::EncodeDmaWriteRequest(*r, layout, out);
  VFU_FUZZ_CHECK(out == Canonical(payload, layout, true), "WRITE request re-encoded as ", Hex(out));
  const absl::StatusOr<DmaWriteRequest> back =
      wire::DecodeDmaWriteRequest(out, 0, layout, max_count);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "WRITE request round trip differs");

  // The reply a client sends back echoes it.
  std::vector<uint8_t> reply_bytes;
  wire::EncodeDmaWriteReply(
      DmaWriteReply{
          .address = r->address, .count = r->count(), .echoed = layout == DmaTransferLayout::kSpec},
      layout, reply_bytes);
  const absl::StatusOr<DmaWriteReply> reply = wire::DecodeDmaWriteReply(reply_bytes, 0, layout);
  VFU_FUZZ_CHECK(reply.ok() && wire::CheckDmaReplyEcho(*r, *reply).ok(),
                 "echoing WRITE reply rejected");
}

void CheckWriteReply(absl::Span<const uint8_t> payload, DmaTransferLayout layout) {
  const absl::StatusOr<DmaWriteReply> r = wire::DecodeDmaWriteReply(payload, 0, layout);
  if (!r.ok()) {
    CheckReplyError(r.status(), layout == DmaTransferLayout::kSpec && payload.size() < kFixed);
    return;
  }
  if (layout == DmaTransferLayout::kQemu) {
    VFU_FUZZ_CHECK(payload.empty() && !r->echoed, "QEMU WRITE reply of ", payload.size(),
                   " bytes accepted");
  } else {
    VFU_FUZZ_CHECK(payload.size() == kFixed && r->echoed, "WRITE reply of ", payload.size(),
                   " bytes accepted");
  }
  std::vector<uint8_t> out;
  wire::EncodeDmaWriteReply(*r, layout, out);
  VFU_FUZZ_CHECK(out == Canonical(payload, layout, false), "WRITE reply re-encoded as ", Hex(out));
  const absl::StatusOr<DmaWriteReply> back = wire::DecodeDmaWriteReply(out, 0, layout);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "WRITE reply round trip differs");
}

void Run(InputReader& in) {
  static constexpr uint64_t kMaxCounts[] = {
      0, 1, 16, 4096, 1 << 20, 64 << 20, kU32Max, std::numeric_limits<uint64_t>::max()};
  const uint8_t selector = in.U8();
  const DmaTransferLayout layout =
      (selector & 1) ? DmaTransferLayout::kQemu : DmaTransferLayout::kSpec;
  const uint64_t max_count = kMaxCounts[(selector >> 1) & 7];
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckReadRequest(payload, layout, max_count);
  CheckReadReply(payload, layout, max_count);
  CheckWriteRequest(payload, layout, max_count);
  CheckWriteReply(payload, layout);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
