// Fuzzes the DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS codec (vfu/wire/irq.h),
// including CheckSetIrqsRange(), on the same payload.
//
// Input: a selector byte (bits 0-2: number of fds, 0..7), a byte giving the
// vector count of the IRQ index for CheckSetIrqsRange() (255 means
// UINT32_MAX), then the payload.
//
// Checks:
//  - a rejection carries EINVAL;
//  - GET_IRQ_INFO request and reply: accepted exactly when payload and
//    argsz are >= 16, and re-encode to the payload's first 16 bytes;
//  - a decoded SET_IRQS follows PROTOCOL.md section 10 row 22 (one data
//    type, one action, no other bit, index < 5, start + count in 32 bits,
//    count 0 only as TRIGGER|NONE with start 0, ERR/REQ only TRIGGER of at
//    most one vector, BOOL payload exactly 20 + count, fds only with
//    EVENTFD and then 0 or count of them);
//  - SET_IRQS round trip: re-encoding gives back the payload's first
//    20 + data bytes exactly, which decode to an equal request;
//  - CheckSetIrqsRange() accepts exactly count == 0 or
//    start < vectors && start + count <= vectors.
#include <linux/vfio.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/irq.h"

namespace vfu::fuzz {
namespace {

using wire::IrqInfo;
using wire::SetIrqsRequest;

void CheckIrqInfo(absl::Span<const uint8_t> payload, size_t num_fds) {
  const bool valid =
      payload.size() >= wire::kIrqInfoSize && wire::LoadU32(payload, 0) >= wire::kIrqInfoSize;
  const absl::StatusOr<IrqInfo> request = wire::DecodeIrqInfoRequest(payload, num_fds);
  const absl::StatusOr<IrqInfo> reply = wire::DecodeIrqInfoReply(payload, num_fds);
  VFU_FUZZ_CHECK(request.ok() == valid && reply.ok() == valid, "valid ", valid, ": ",
                 request.status().ToString(), " / ", reply.status().ToString());
  if (!valid) {
    VFU_FUZZ_CHECK(Errno(request.status()) == EINVAL && Errno(reply.status()) == EINVAL,
                   request.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(*request == *reply, "request and reply decode differently");
  std::vector<uint8_t> out;
  wire::EncodeIrqInfoRequest(*request, out);
  VFU_FUZZ_CHECK(
      out.size() == wire::kIrqInfoSize && std::equal(out.begin(), out.end(), payload.begin()),
      "request re-encoded as ", Hex(out));
  out.clear();
  wire::EncodeIrqInfoReply(*reply, out);
  VFU_FUZZ_CHECK(
      out.size() == wire::kIrqInfoSize && std::equal(out.begin(), out.end(), payload.begin()),
      "reply re-encoded as ", Hex(out));
  const absl::StatusOr<IrqInfo> back = wire::DecodeIrqInfoReply(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *reply, "round trip differs");
}

void CheckSetIrqs(absl::Span<const uint8_t> payload, size_t num_fds, uint32_t vectors) {
  const absl::StatusOr<SetIrqsRequest> r = wire::DecodeSetIrqsRequest(payload, num_fds);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  const uint32_t data_type = r->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const uint32_t action = r->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  VFU_FUZZ_CHECK(r->argsz >= wire::kSetIrqsFixedSize, "argsz ", r->argsz);
  VFU_FUZZ_CHECK((r->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) == 0 &&
                     std::popcount(data_type) == 1 && std::popcount(action) == 1,
                 "flags 0x", absl::Hex(r->flags), " accepted");
  VFU_FUZZ_CHECK(r->index < VFIO_PCI_NUM_IRQS, "index ", r->index);
  VFU_FUZZ_CHECK(uint64_t{r->start} + r->count <= std::numeric_limits<uint32_t>::max(),
                 "start + count overflows");
  if (r->count == 0) {
    VFU_FUZZ_CHECK(data_type == VFIO_IRQ_SET_DATA_NONE && action == VFIO_IRQ_SET_ACTION_TRIGGER &&
                       r->start == 0,
                   "count 0 with flags 0x", absl::Hex(r->flags), " start ", r->start);
  }
  if (r->index == VFIO_PCI_ERR_IRQ_INDEX || r->index == VFIO_PCI_REQ_IRQ_INDEX) {
    VFU_FUZZ_CHECK(action == VFIO_IRQ_SET_ACTION_TRIGGER && r->count <= 1, "ERR/REQ with action ",
                   action, " count ", r->count);
  }
  size_t encoded_size = wire::kSetIrqsFixedSize;
  if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
    VFU_FUZZ_CHECK(payload.size() == wire::kSetIrqsFixedSize + uint64_t{r->count} &&
                       r->data.size() == r->count,
                   "BOOL payload of ", payload.size(), " bytes for count ", r->count);
    encoded_size += r->count;
  } else {
    VFU_FUZZ_CHECK(r->data.empty(), "data without DATA_BOOL");
  }
  if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
    VFU_FUZZ_CHECK(num_fds == 0 || num_fds == r->count, num_fds, " fds for count ", r->count);
  } else {
    VFU_FUZZ_CHECK(num_fds == 0, num_fds, " fds without DATA_EVENTFD");
  }

  std::vector<uint8_t> out;
  wire::EncodeSetIrqsRequest(*r, out);
  VFU_FUZZ_CHECK(out.size() == encoded_size && std::equal(out.begin(), out.end(), payload.begin()),
                 "SET_IRQS re-encoded as ", Hex(out));
  const absl::StatusOr<SetIrqsRequest> back = wire::DecodeSetIrqsRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "SET_IRQS round trip differs");

  const absl::Status range = wire::CheckSetIrqsRange(*r, vectors);
  const bool in_range =
      r->count == 0 || (r->start < vectors && uint64_t{r->start} + r->count <= vectors);
  VFU_FUZZ_CHECK(range.ok() == in_range, "CheckSetIrqsRange(start ", r->start, ", count ", r->count,
                 ", vectors ", vectors, ") = ", range.ToString());
  if (!range.ok()) VFU_FUZZ_CHECK(Errno(range) == EINVAL, range.ToString());
}

void Run(InputReader& in) {
  const size_t num_fds = in.U8() & 7;
  const uint8_t vector_byte = in.U8();
  const uint32_t vectors = vector_byte == 255 ? std::numeric_limits<uint32_t>::max() : vector_byte;
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckIrqInfo(payload, num_fds);
  CheckSetIrqs(payload, num_fds, vectors);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
