#include "vfu/wire/irq.h"

#include <linux/vfio.h>

#include <bit>
#include <cerrno>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

static_assert(sizeof(vfio_irq_info) == kIrqInfoSize);
static_assert(sizeof(vfio_irq_set) == kSetIrqsFixedSize);

constexpr uint32_t kDataMask = VFIO_IRQ_SET_DATA_TYPE_MASK;
constexpr uint32_t kActionMask = VFIO_IRQ_SET_ACTION_TYPE_MASK;

absl::StatusOr<IrqInfo> DecodeIrqInfo(absl::Span<const uint8_t> payload, std::string_view what) {
  if (payload.size() < kIrqInfoSize) {
    return WireError(EINVAL, absl::StrCat(what, " payload of ", payload.size(),
                                          " bytes, need 16"));
  }
  IrqInfo info;
  info.argsz = LoadU32(payload, 0);
  info.flags = LoadU32(payload, 4);
  info.index = LoadU32(payload, 8);
  info.count = LoadU32(payload, 12);
  if (info.argsz < kIrqInfoSize) {
    return WireError(EINVAL, absl::StrCat(what, " argsz ", info.argsz, " < 16"));
  }
  return info;
}

void EncodeIrqInfo(const IrqInfo& info, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(info.argsz).U32(info.flags).U32(info.index).U32(info.count);
}

absl::Status SetIrqsError(const SetIrqsRequest& r, std::string_view problem) {
  return WireError(EINVAL, absl::StrCat("DEVICE_SET_IRQS (flags 0x", absl::Hex(r.flags),
                                        ", index ", r.index, ", start ", r.start, ", count ",
                                        r.count, "): ", problem));
}

}  // namespace

absl::StatusOr<IrqInfo> DecodeIrqInfoRequest(absl::Span<const uint8_t> payload,
                                             size_t num_fds) {
  return DecodeIrqInfo(payload, "DEVICE_GET_IRQ_INFO");
}

void EncodeIrqInfoRequest(const IrqInfo& request, std::vector<uint8_t>& out) {
  EncodeIrqInfo(request, out);
}

absl::StatusOr<IrqInfo> DecodeIrqInfoReply(absl::Span<const uint8_t> payload, size_t num_fds) {
  return DecodeIrqInfo(payload, "DEVICE_GET_IRQ_INFO reply");
}

void EncodeIrqInfoReply(const IrqInfo& reply, std::vector<uint8_t>& out) {
  EncodeIrqInfo(reply, out);
}

absl::StatusOr<SetIrqsRequest> DecodeSetIrqsRequest(absl::Span<const uint8_t> payload,
                                                    size_t num_fds) {
  if (payload.size() < kSetIrqsFixedSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_SET_IRQS payload of ", payload.size(),
                                          " bytes, need 20"));
  }
  SetIrqsRequest r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  r.index = LoadU32(payload, 8);
  r.start = LoadU32(payload, 12);
  r.count = LoadU32(payload, 16);
  if (r.argsz < kSetIrqsFixedSize) return SetIrqsError(r, absl::StrCat("argsz ", r.argsz, " < 20"));
  if ((r.flags & ~(kDataMask | kActionMask)) != 0) return SetIrqsError(r, "unknown flag bits");
  if (std::popcount(r.flags & kDataMask) != 1) {
    return SetIrqsError(r, "not exactly one data type");
  }
  if (std::popcount(r.flags & kActionMask) != 1) {
    return SetIrqsError(r, "not exactly one action");
  }
  const uint32_t data_type = r.flags & kDataMask;
  const uint32_t action = r.flags & kActionMask;
  if (r.index >= VFIO_PCI_NUM_IRQS) return SetIrqsError(r, "no such IRQ index");
  if (uint64_t{r.start} + r.count > std::numeric_limits<uint32_t>::max()) {
    return SetIrqsError(r, "start + count overflows");
  }
  if (r.count == 0 &&
      (data_type != VFIO_IRQ_SET_DATA_NONE || action != VFIO_IRQ_SET_ACTION_TRIGGER ||
       r.start != 0)) {
    return SetIrqsError(r, "count 0 is only TRIGGER|NONE with start 0");
  }
  if ((r.index == VFIO_PCI_ERR_IRQ_INDEX || r.index == VFIO_PCI_REQ_IRQ_INDEX) &&
      (action != VFIO_IRQ_SET_ACTION_TRIGGER || r.count > 1)) {
    return SetIrqsError(r, "ERR and REQ take only TRIGGER of at most one vector");
  }
  if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
    if (payload.size() != kSetIrqsFixedSize + uint64_t{r.count}) {
      return SetIrqsError(r, absl::StrCat("BOOL payload of ", payload.size(),
                                          " bytes, need 20 + count"));
    }
    r.data = payload.subspan(kSetIrqsFixedSize, r.count);
  }
  if (data_type != VFIO_IRQ_SET_DATA_EVENTFD) {
    if (num_fds != 0) return SetIrqsError(r, absl::StrCat(num_fds, " fds without DATA_EVENTFD"));
  } else if (num_fds != 0 && num_fds != r.count) {
    return SetIrqsError(r, absl::StrCat(num_fds, " fds, need 0 or count"));
  }
  return r;
}

void EncodeSetIrqsRequest(const SetIrqsRequest& r, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(r.argsz).U32(r.flags).U32(r.index).U32(r.start).U32(r.count).Bytes(r.data);
}

absl::Status CheckSetIrqsRange(const SetIrqsRequest& r, uint32_t vector_count) {
  if (r.count == 0) {
    // Disable all: nothing to range-check, even with no vectors.
    if (r.start != 0) return SetIrqsError(r, "count 0 needs start 0");
    return absl::OkStatus();
  }
  if (r.start >= vector_count) {
    return SetIrqsError(r, absl::StrCat("start beyond the index's ", vector_count, " vectors"));
  }
  if (uint64_t{r.start} + r.count > vector_count) {
    return SetIrqsError(r, absl::StrCat("range beyond the index's ", vector_count, " vectors"));
  }
  return absl::OkStatus();
}

}  // namespace vfu::wire
