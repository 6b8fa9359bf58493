// DEVICE_GET_IRQ_INFO (7) and DEVICE_SET_IRQS (8): interrupt indexes.
//
// GET_IRQ_INFO request and reply share the 16-byte struct vfio_irq_info:
//   Off Size Field   Request      Reply
//    0   4   argsz   >= 16        16
//    4   4   flags   0            VFIO_IRQ_INFO_EVENTFD 1, _MASKABLE 2,
//                                 _AUTOMASKED 4, _NORESIZE 8
//    8   4   index   IRQ index    echo
//   12   4   count   0            number of vectors (0 = unsupported)
//
// SET_IRQS request (20 bytes + data, struct vfio_irq_set); reply: header only.
//   Off Size Field
//    0   4   argsz   size of the request structure, data included (>= 20)
//    4   4   flags   exactly one of VFIO_IRQ_SET_DATA_NONE 1, _BOOL 2,
//                    _EVENTFD 4 and one of VFIO_IRQ_SET_ACTION_MASK 8,
//                    _UNMASK 0x10, _TRIGGER 0x20
//    8   4   index   IRQ index (VFIO_PCI_*_IRQ_INDEX, < 5)
//   12   4   start   first vector
//   16   4   count   number of vectors
//   20  var  data    DATA_BOOL only: `count` bytes, one per vector
// With DATA_EVENTFD the eventfds come as SCM_RIGHTS fds, fd j for vector
// start + j; none at all means de-assign [start, start + count). TRIGGER|NONE
// with start 0 and count 0 disables the whole index.
#ifndef VFU_WIRE_IRQ_H_
#define VFU_WIRE_IRQ_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr size_t kIrqInfoSize = 16;
inline constexpr size_t kSetIrqsFixedSize = 20;

// Both the GET_IRQ_INFO request (argsz and index matter) and its reply.
struct IrqInfo {
  uint32_t argsz = kIrqInfoSize;
  uint32_t flags = 0;
  uint32_t index = 0;
  uint32_t count = 0;

  friend bool operator==(const IrqInfo&, const IrqInfo&) = default;
};

// Checks payload >= 16 and argsz >= 16 (EINVAL). Whether index is below the
// device's num_irqs is the caller's to judge (EINVAL too).
absl::StatusOr<IrqInfo> DecodeIrqInfoRequest(absl::Span<const uint8_t> payload, size_t num_fds);
void EncodeIrqInfoRequest(const IrqInfo& request, std::vector<uint8_t>& out);
// For the client side: payload >= 16 and argsz >= 16 (EINVAL).
absl::StatusOr<IrqInfo> DecodeIrqInfoReply(absl::Span<const uint8_t> payload, size_t num_fds);
void EncodeIrqInfoReply(const IrqInfo& reply, std::vector<uint8_t>& out);

struct SetIrqsRequest {
  uint32_t argsz = kSetIrqsFixedSize;
  uint32_t flags = 0;
  uint32_t index = 0;
  uint32_t start = 0;
  uint32_t count = 0;
  // DATA_BOOL: the `count` bytes, a view into the decoded payload (which
  // must outlive it). Empty for the other data types.
  absl::Span<const uint8_t> data = {};

  friend bool operator==(const SetIrqsRequest&, const SetIrqsRequest&) = default;
};

// Checks everything in PROTOCOL.md section 10 row 22 that needs no device
// knowledge, all EINVAL: payload and argsz >= 20; exactly one data-type bit,
// exactly one action bit, no other bit; index < 5; start + count fits in 32
// bits; count == 0 only as TRIGGER|NONE with start == 0; ERR and REQ only
// with TRIGGER and count <= 1; BOOL payload exactly 20 + count; fds only with
// EVENTFD, and then 0 or exactly `count` of them. Bytes past the 20-byte
// struct are ignored for NONE and EVENTFD.
absl::StatusOr<SetIrqsRequest> DecodeSetIrqsRequest(absl::Span<const uint8_t> payload,
                                                    size_t num_fds);
// Writes the 20-byte struct as given, then `data`.
void EncodeSetIrqsRequest(const SetIrqsRequest& request, std::vector<uint8_t>& out);

// The checks that need the vector count of request.index, for a request that
// DecodeSetIrqsRequest() accepted: start < vector_count and start + count <=
// vector_count (overflow-safe), else EINVAL. count == 0 ("disable the whole
// index", start 0) always succeeds, also on an index with no vectors (a no-op
// there, PROTOCOL.md 4.7, where lvu fails with EINVAL).
absl::Status CheckSetIrqsRange(const SetIrqsRequest& request, uint32_t vector_count);

}  // namespace vfu::wire

#endif  // VFU_WIRE_IRQ_H_
