// DMA_READ (11) and DMA_WRITE (12): server -> client commands through which
// the server reads or writes client memory shared without an fd.
//
// Two layouts exist (PROTOCOL.md 4.10), chosen per connection:
//
// kSpec, the specification and libvfio-user:
//   Off Size Field     READ req  READ reply  WRITE req  WRITE reply
//    0   8   address   yes       echo        yes        echo
//    8   8   count     yes       echo        yes        echo
//   16   n   data      -         n bytes     n bytes    -
//
// kQemu, QEMU's client (the "interop trap"). It sends and expects its C
// struct {u64 address; u32 count; char data[];}, whose sizeof is 16 because
// of 4 bytes of tail padding:
//   Off  Size Field
//    0    8   address
//    8    4   count
//   12    n   data      READ reply and WRITE request only
//   12+n  4   padding   written as zeros, ignored when read
// Every kQemu payload is therefore 16 bytes (+ n with data) except the
// DMA_WRITE reply, which is a bare header (empty payload) echoing nothing.
// For count < 2^32 a kQemu DMA_READ request is byte-identical to kSpec's.
//
// Decoded `data` spans point into the payload: they are valid only while the
// payload buffer lives. Encoders append the payload only (no header).
//
// Errors: malformed requests are EINVAL. A malformed reply fails the DMA
// operation (section 10 row 36): one shorter than its layout needs is
// ECONNRESET (libvfio-user resets the context), anything else is EINVAL.
// These messages take no fds; a peer's fds are the transport's to close, so
// the decoders ignore `num_fds`.
#ifndef VFU_WIRE_DMA_TRANSFER_H_
#define VFU_WIRE_DMA_TRANSFER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

enum class DmaTransferLayout {
  // address u64 @0, count u64 @8, data @16 (PROTOCOL.md 4.10 table).
  kSpec,
  // address u64 @0, count u32 @8, data @12, 4 padding bytes after the data;
  // DMA_WRITE reply without payload.
  kQemu,
};

// Fixed payload size of every DMA_READ/DMA_WRITE message (both layouts)
// except the kQemu DMA_WRITE reply.
inline constexpr size_t kDmaTransferFixedSize = 16;

struct DmaReadRequest {
  uint64_t address = 0;
  uint64_t count = 0;

  friend bool operator==(const DmaReadRequest&, const DmaReadRequest&) = default;
};

struct DmaReadReply {
  uint64_t address = 0;
  // The bytes read; the wire count is data.size().
  absl::Span<const uint8_t> data;

  uint64_t count() const { return data.size(); }
  friend bool operator==(const DmaReadReply&, const DmaReadReply&) = default;
};

struct DmaWriteRequest {
  uint64_t address = 0;
  // The bytes to write; the wire count is data.size().
  absl::Span<const uint8_t> data;

  uint64_t count() const { return data.size(); }
  friend bool operator==(const DmaWriteRequest&, const DmaWriteRequest&) = default;
};

struct DmaWriteReply {
  uint64_t address = 0;
  uint64_t count = 0;
  // False for the kQemu bare-header reply, which echoes nothing (address and
  // count are then 0 and not compared by CheckDmaReplyEcho).
  bool echoed = true;

  friend bool operator==(const DmaWriteReply&, const DmaWriteReply&) = default;
};

// Client side: payload exactly 16 bytes and count <= `max_count` (the
// client's own max_data_xfer_size). EINVAL otherwise.
absl::StatusOr<DmaReadRequest> DecodeDmaReadRequest(absl::Span<const uint8_t> payload,
                                                    size_t num_fds, DmaTransferLayout layout,
                                                    uint64_t max_count);
// Server side: count <= `max_count` (the client's max_data_xfer_size, which
// the caller respects when splitting transfers) and payload exactly 16 +
// count; ECONNRESET when shorter, EINVAL otherwise. Whether it answers the
// request is CheckDmaReplyEcho's job.
absl::StatusOr<DmaReadReply> DecodeDmaReadReply(absl::Span<const uint8_t> payload,
                                                size_t num_fds, DmaTransferLayout layout,
                                                uint64_t max_count);
// Where a DMA_READ reply's data starts in its payload: 16 (kSpec) or 12
// (kQemu). Either way a reply carrying n bytes has a payload of 16 + n.
size_t DmaReadReplyDataOffset(DmaTransferLayout layout);
// DecodeDmaReadReply() for a reply whose data the transport received
// straight into `data` (its final place): `payload_without_data` is the
// payload with those bytes cut out, i.e. the part before them and kQemu's
// padding after them. Same checks and errors; the result's data is `data`.
absl::StatusOr<DmaReadReply> DecodeDmaReadReplyWithoutData(
    absl::Span<const uint8_t> payload_without_data, absl::Span<const uint8_t> data,
    DmaTransferLayout layout, uint64_t max_count);
// Client side: count <= `max_count` and payload exactly 16 + count. EINVAL
// otherwise.
absl::StatusOr<DmaWriteRequest> DecodeDmaWriteRequest(absl::Span<const uint8_t> payload,
                                                      size_t num_fds, DmaTransferLayout layout,
                                                      uint64_t max_count);
// Server side: kSpec payload exactly 16 bytes (ECONNRESET when shorter,
// EINVAL when longer); kQemu payload empty (EINVAL otherwise).
absl::StatusOr<DmaWriteReply> DecodeDmaWriteReply(absl::Span<const uint8_t> payload,
                                                  size_t num_fds, DmaTransferLayout layout);

// Section 10 row 36: a reply must echo its request's address and count
// (the data length, for DMA_READ). EINVAL on mismatch.
absl::Status CheckDmaReplyEcho(const DmaReadRequest& request, const DmaReadReply& reply);
absl::Status CheckDmaReplyEcho(const DmaWriteRequest& request, const DmaWriteReply& reply);

// The encoders write the given layout. With kQemu a count must fit in 32
// bits (it always does: max_data_xfer_size is capped at 64 MiB); a larger
// one is a caller bug and aborts.
void EncodeDmaReadRequest(const DmaReadRequest& request, DmaTransferLayout layout,
                          std::vector<uint8_t>& out);
void EncodeDmaReadReply(const DmaReadReply& reply, DmaTransferLayout layout,
                        std::vector<uint8_t>& out);
// EncodeDmaReadReply() in pieces, for a sender that sends the data from
// where it lies: appends the part before the data (address and count of a
// reply carrying `count` bytes) to `out`; DmaReadReplyTail() is the part
// after it (kQemu's padding, static storage; empty for kSpec). head + data
// + tail is byte for byte what EncodeDmaReadReply() appends.
void EncodeDmaReadReplyHead(uint64_t address, uint64_t count, DmaTransferLayout layout,
                            std::vector<uint8_t>& out);
absl::Span<const uint8_t> DmaReadReplyTail(DmaTransferLayout layout);
void EncodeDmaWriteRequest(const DmaWriteRequest& request, DmaTransferLayout layout,
                           std::vector<uint8_t>& out);
// kSpec: the 16-byte echo. kQemu: nothing (the reply is a bare header).
void EncodeDmaWriteReply(const DmaWriteReply& reply, DmaTransferLayout layout,
                         std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DMA_TRANSFER_H_
