#include "vfu/wire/dma_transfer.h"

#include <cerrno>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

// Which end decodes: a short request is a plain EINVAL, a short reply to one
// of our commands is ECONNRESET (section 10 row 36).
enum class Sender { kServer, kClient };

constexpr size_t kQemuPaddingSize = 4;

size_t DataOffset(DmaTransferLayout layout) {
  return layout == DmaTransferLayout::kSpec ? 16 : 12;
}

std::string_view LayoutName(DmaTransferLayout layout) {
  return layout == DmaTransferLayout::kSpec ? "spec" : "QEMU";
}

int ShortErrno(Sender sender) { return sender == Sender::kClient ? ECONNRESET : EINVAL; }

struct Prefix {
  uint64_t address = 0;
  uint64_t count = 0;
};

// Reads address and count once the payload holds the 16-byte fixed part.
absl::StatusOr<Prefix> DecodePrefix(absl::Span<const uint8_t> payload, DmaTransferLayout layout,
                                    Sender sender, std::string_view what) {
  if (payload.size() < kDmaTransferFixedSize) {
    return WireError(ShortErrno(sender), absl::StrCat(what, " (", LayoutName(layout),
                                                      " layout) payload of ", payload.size(),
                                                      " bytes, need 16"));
  }
  Prefix p;
  p.address = LoadU64(payload, 0);
  p.count = layout == DmaTransferLayout::kSpec ? LoadU64(payload, 8) : LoadU32(payload, 8);
  return p;
}

// The `count` data bytes of a data-carrying message whose payload must be
// exactly 16 + count long. Compares against payload.size() - 16 so a huge
// count cannot wrap.
absl::StatusOr<absl::Span<const uint8_t>> DecodeData(absl::Span<const uint8_t> payload,
                                                     DmaTransferLayout layout, uint64_t count,
                                                     uint64_t max_count, Sender sender,
                                                     std::string_view what) {
  if (count > max_count) {
    return WireError(EINVAL, absl::StrCat(what, " count ", count, " above the limit of ",
                                          max_count));
  }
  const size_t room = payload.size() - kDmaTransferFixedSize;
  if (room < count) {
    return WireError(ShortErrno(sender),
                     absl::StrCat(what, " (", LayoutName(layout), " layout) payload of ",
                                  payload.size(), " bytes, short of 16 + count ", count));
  }
  if (room > count) {
    return WireError(EINVAL, absl::StrCat(what, " (", LayoutName(layout), " layout) payload of ",
                                          payload.size(), " bytes, more than 16 + count ",
                                          count));
  }
  return payload.subspan(DataOffset(layout), count);
}

void WritePrefix(ByteWriter& w, uint64_t address, uint64_t count, DmaTransferLayout layout) {
  w.U64(address);
  if (layout == DmaTransferLayout::kSpec) {
    w.U64(count);
  } else {
    VFU_CHECK(count <= std::numeric_limits<uint32_t>::max(),
              "QEMU-layout DMA count does not fit its 32-bit field");
    w.U32(static_cast<uint32_t>(count));
  }
}

// Data, then kQemu's tail padding.
void WriteData(ByteWriter& w, absl::Span<const uint8_t> data, DmaTransferLayout layout) {
  w.Bytes(data);
  if (layout == DmaTransferLayout::kQemu) w.Zeros(kQemuPaddingSize);
}

absl::Status EchoMismatch(std::string_view what, uint64_t address, uint64_t count,
                          uint64_t reply_address, uint64_t reply_count) {
  return WireError(EINVAL, absl::StrCat(what, " reply echoes address 0x", absl::Hex(reply_address),
                                        " count ", reply_count, " for a request of address 0x",
                                        absl::Hex(address), " count ", count));
}

}  // namespace

absl::StatusOr<DmaReadRequest> DecodeDmaReadRequest(absl::Span<const uint8_t> payload,
                                                    size_t /*num_fds*/, DmaTransferLayout layout,
                                                    uint64_t max_count) {
  VFU_ASSIGN_OR_RETURN(Prefix p, DecodePrefix(payload, layout, Sender::kServer, "DMA_READ"));
  if (payload.size() != kDmaTransferFixedSize) {
    return WireError(EINVAL, absl::StrCat("DMA_READ payload of ", payload.size(),
                                          " bytes, expected exactly 16"));
  }
  if (p.count > max_count) {
    return WireError(EINVAL, absl::StrCat("DMA_READ count ", p.count, " above the limit of ",
                                          max_count));
  }
  return DmaReadRequest{.address = p.address, .count = p.count};
}

absl::StatusOr<DmaReadReply> DecodeDmaReadReply(absl::Span<const uint8_t> payload,
                                                size_t /*num_fds*/, DmaTransferLayout layout,
                                                uint64_t max_count) {
  VFU_ASSIGN_OR_RETURN(Prefix p,
                       DecodePrefix(payload, layout, Sender::kClient, "DMA_READ reply"));
  VFU_ASSIGN_OR_RETURN(absl::Span<const uint8_t> data,
                       DecodeData(payload, layout, p.count, max_count, Sender::kClient,
                                  "DMA_READ reply"));
  return DmaReadReply{.address = p.address, .data = data};
}

size_t DmaReadReplyDataOffset(DmaTransferLayout layout) {
  return layout == DmaTransferLayout::kSpec ? kDmaTransferFixedSize : 12;
}

absl::StatusOr<DmaReadReply> DecodeDmaReadReplyWithoutData(
    absl::Span<const uint8_t> payload_without_data, absl::Span<const uint8_t> data,
    DmaTransferLayout layout, uint64_t max_count) {
  VFU_ASSIGN_OR_RETURN(Prefix p, DecodePrefix(payload_without_data, layout, Sender::kClient,
                                              "DMA_READ reply"));
  if (p.count > max_count) {
    return WireError(EINVAL, absl::StrCat("DMA_READ reply count ", p.count,
                                          " above the limit of ", max_count));
  }
  // Both layouts keep 16 payload bytes besides the data.
  if (payload_without_data.size() != kDmaTransferFixedSize || p.count != data.size()) {
    return WireError(EINVAL, absl::StrCat("DMA_READ reply of ", payload_without_data.size() +
                                                                    data.size(),
                                          " payload bytes with count ", p.count));
  }
  return DmaReadReply{.address = p.address, .data = data};
}

absl::StatusOr<DmaWriteRequest> DecodeDmaWriteRequest(absl::Span<const uint8_t> payload,
                                                      size_t /*num_fds*/,
                                                      DmaTransferLayout layout,
                                                      uint64_t max_count) {
  VFU_ASSIGN_OR_RETURN(Prefix p, DecodePrefix(payload, layout, Sender::kServer, "DMA_WRITE"));
  VFU_ASSIGN_OR_RETURN(absl::Span<const uint8_t> data,
                       DecodeData(payload, layout, p.count, max_count, Sender::kServer,
                                  "DMA_WRITE"));
  return DmaWriteRequest{.address = p.address, .data = data};
}

absl::StatusOr<DmaWriteReply> DecodeDmaWriteReply(absl::Span<const uint8_t> payload,
                                                  size_t /*num_fds*/,
                                                  DmaTransferLayout layout) {
  if (layout == DmaTransferLayout::kQemu) {
    if (!payload.empty()) {
      return WireError(EINVAL, absl::StrCat("DMA_WRITE reply (QEMU layout) with ",
                                            payload.size(), " payload bytes, expected none"));
    }
    return DmaWriteReply{.address = 0, .count = 0, .echoed = false};
  }
  VFU_ASSIGN_OR_RETURN(Prefix p,
                       DecodePrefix(payload, layout, Sender::kClient, "DMA_WRITE reply"));
  if (payload.size() != kDmaTransferFixedSize) {
    return WireError(EINVAL, absl::StrCat("DMA_WRITE reply of ", payload.size(),
                                          " bytes, expected exactly 16"));
  }
  return DmaWriteReply{.address = p.address, .count = p.count, .echoed = true};
}

absl::Status CheckDmaReplyEcho(const DmaReadRequest& request, const DmaReadReply& reply) {
  if (reply.address != request.address || reply.count() != request.count) {
    return EchoMismatch("DMA_READ", request.address, request.count, reply.address,
                        reply.count());
  }
  return absl::OkStatus();
}

absl::Status CheckDmaReplyEcho(const DmaWriteRequest& request, const DmaWriteReply& reply) {
  if (!reply.echoed) return absl::OkStatus();
  if (reply.address != request.address || reply.count != request.count()) {
    return EchoMismatch("DMA_WRITE", request.address, request.count(), reply.address,
                        reply.count);
  }
  return absl::OkStatus();
}

void EncodeDmaReadRequest(const DmaReadRequest& r, DmaTransferLayout layout,
                          std::vector<uint8_t>& out) {
  ByteWriter w(out);
  WritePrefix(w, r.address, r.count, layout);
  if (layout == DmaTransferLayout::kQemu) w.Zeros(kQemuPaddingSize);
}

void EncodeDmaReadReply(const DmaReadReply& r, DmaTransferLayout layout,
                        std::vector<uint8_t>& out) {
  ByteWriter w(out);
  WritePrefix(w, r.address, r.count(), layout);
  WriteData(w, r.data, layout);
}

void EncodeDmaReadReplyHead(uint64_t address, uint64_t count, DmaTransferLayout layout,
                            std::vector<uint8_t>& out) {
  ByteWriter w(out);
  WritePrefix(w, address, count, layout);
}

absl::Span<const uint8_t> DmaReadReplyTail(DmaTransferLayout layout) {
  static constexpr uint8_t kPadding[kQemuPaddingSize] = {};
  if (layout == DmaTransferLayout::kSpec) return {};
  return absl::MakeConstSpan(kPadding);
}

void EncodeDmaWriteRequest(const DmaWriteRequest& r, DmaTransferLayout layout,
                           std::vector<uint8_t>& out) {
  ByteWriter w(out);
  WritePrefix(w, r.address, r.count(), layout);
  WriteData(w, r.data, layout);
}

void EncodeDmaWriteReply(const DmaWriteReply& r, DmaTransferLayout layout,
                         std::vector<uint8_t>& out) {
  if (layout == DmaTransferLayout::kQemu) return;
  ByteWriter(out).U64(r.address).U64(r.count);
}

}  // namespace vfu::wire
