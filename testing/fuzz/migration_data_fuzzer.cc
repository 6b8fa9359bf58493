// Fuzzes the MIG_DATA_READ / MIG_DATA_WRITE codec
// (vfu/wire/migration_data.h), every decoder on the same payload.
//
// Input: one selector byte (the size limit: 0, 1, 8, 4096, 1 MiB, 64 MiB,
// 2^32 - 1, 2^64 - 1), then the payload.
//
// Checks:
//  - a rejection carries EINVAL;
//  - READ request: payload >= 8, size <= limit, argsz >= 8 + size without
//    wrapping; WRITE request: payload exactly 8 + size, size <= limit,
//    argsz >= 8 + size; READ reply: payload and argsz exactly 8 + size;
//  - round trip: each decoded message re-encodes to the payload (READ
//    request: its first 8 bytes) and decodes to an equal message;
//  - the reply a source sends for a decoded READ request (here with up to
//    `size` bytes) fits the request's argsz and decodes on the client side
//    with the requested size as its limit.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/migration_data.h"

namespace vfu::fuzz {
namespace {

using wire::MigDataReadReply;
using wire::MigDataReadRequest;
using wire::MigDataWriteRequest;

constexpr size_t kFixed = wire::kMigDataFixedSize;
// Most bytes the fuzzer puts into a READ reply it builds.
constexpr uint32_t kMaxReplyData = 4096;

void CheckReadRequest(absl::Span<const uint8_t> payload, uint64_t max_size) {
  const absl::StatusOr<MigDataReadRequest> r = wire::DecodeMigDataReadRequest(payload, 0, max_size);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() >= kFixed && r->size <= max_size &&
                     uint64_t{r->argsz} >= kFixed + uint64_t{r->size},
                 "READ argsz ", r->argsz, " size ", r->size, " accepted");
  std::vector<uint8_t> out;
  wire::EncodeMigDataReadRequest(*r, out);
  VFU_FUZZ_CHECK(out.size() == kFixed && std::equal(out.begin(), out.end(), payload.begin()),
                 "READ re-encoded as ", Hex(out));
  const absl::StatusOr<MigDataReadRequest> back = wire::DecodeMigDataReadRequest(out, 0, max_size);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ round trip differs");

  // The source's answer: at most `size` bytes, never beyond argsz.
  std::vector<uint8_t> data(std::min(r->size, kMaxReplyData), 0x5a);
  std::vector<uint8_t> reply_bytes;
  wire::EncodeMigDataReadReply(MigDataReadReply{.data = data}, reply_bytes);
  VFU_FUZZ_CHECK(reply_bytes.size() <= r->argsz, "reply of ", reply_bytes.size(),
                 " bytes exceeds argsz ", r->argsz);
  const absl::StatusOr<MigDataReadReply> reply =
      wire::DecodeMigDataReadReply(reply_bytes, 0, r->size);
  VFU_FUZZ_CHECK(reply.ok(), "own reply rejected: ", reply.status().ToString());
  VFU_FUZZ_CHECK(reply->data == absl::MakeConstSpan(data), "reply data differs");
}

void CheckReadReply(absl::Span<const uint8_t> payload, uint64_t max_size) {
  const absl::StatusOr<MigDataReadReply> r = wire::DecodeMigDataReadReply(payload, 0, max_size);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() == kFixed + r->data.size() && r->data.size() <= max_size &&
                     wire::LoadU32(payload, 0) == kFixed + r->data.size() &&
                     wire::LoadU32(payload, 4) == r->data.size(),
                 "READ reply of ", payload.size(), " bytes accepted");
  std::vector<uint8_t> out;
  wire::EncodeMigDataReadReply(*r, out);
  VFU_FUZZ_CHECK(
      out.size() == payload.size() && std::equal(out.begin(), out.end(), payload.begin()),
      "READ reply re-encoded as ", Hex(out));
  const absl::StatusOr<MigDataReadReply> back = wire::DecodeMigDataReadReply(out, 0, max_size);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "READ reply round trip differs");
}

void CheckWriteRequest(absl::Span<const uint8_t> payload, uint64_t max_size) {
  const absl::StatusOr<MigDataWriteRequest> r =
      wire::DecodeMigDataWriteRequest(payload, 0, max_size);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(payload.size() == kFixed + r->data.size() && r->size() <= max_size &&
                     wire::LoadU32(payload, 4) == r->size() &&
                     uint64_t{r->argsz} >= kFixed + uint64_t{r->size()},
                 "WRITE of ", payload.size(), " bytes, argsz ", r->argsz, " accepted");
  std::vector<uint8_t> out;
  wire::EncodeMigDataWriteRequest(*r, out);
  VFU_FUZZ_CHECK(
      out.size() == payload.size() && std::equal(out.begin(), out.end(), payload.begin()),
      "WRITE re-encoded as ", Hex(out));
  const absl::StatusOr<MigDataWriteRequest> back =
      wire::DecodeMigDataWriteRequest(out, 0, max_size);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "WRITE round trip differs");
}

void Run(InputReader& in) {
  static constexpr uint64_t kMaxSizes[] = {0,
                                           1,
                                           8,
                                           4096,
                                           1 << 20,
                                           64 << 20,
                                           std::numeric_limits<uint32_t>::max(),
                                           std::numeric_limits<uint64_t>::max()};
  const uint64_t max_size = kMaxSizes[in.U8() & 7];
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckReadRequest(payload, max_size);
  CheckReadReply(payload, max_size);
  CheckWriteRequest(payload, max_size);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
