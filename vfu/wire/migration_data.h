// MIG_DATA_READ (17) and MIG_DATA_WRITE (18): the device state stream of a
// migration, read from the source device and written into the destination.
//
//   Off Size  READ request        READ reply          WRITE request
//    0   4    argsz (>= 8 + size) argsz = 8 + n       argsz (>= 8 + size)
//    4   4    size wanted         size = n returned   size = n supplied
//    8   n    -                   n bytes             n bytes
// The MIG_DATA_WRITE reply is a header alone (no payload, no codec here).
//
// The codec checks only the message; whether the migration state allows the
// command (PRE_COPY / STOP_COPY / RESUMING, section 10 row 33) is the
// migration layer's call. `max_size` is the client's max_data_xfer_size
// (libvfio-user applies it to `size`). Decoded `data` spans point into the
// payload and are valid while the payload buffer lives. No fds belong to
// these commands; the decoders ignore `num_fds` (row 16).
#ifndef VFU_WIRE_MIGRATION_DATA_H_
#define VFU_WIRE_MIGRATION_DATA_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr size_t kMigDataFixedSize = 8;

struct MigDataReadRequest {
  uint32_t argsz = kMigDataFixedSize;
  uint32_t size = 0;

  friend bool operator==(const MigDataReadRequest&, const MigDataReadRequest&) = default;
};

// argsz and size on the wire are 8 + data.size() and data.size(). Fewer bytes
// than asked for means no more data right now (end of stream in STOP_COPY).
struct MigDataReadReply {
  absl::Span<const uint8_t> data;

  friend bool operator==(const MigDataReadReply&, const MigDataReadReply&) = default;
};

// size on the wire is data.size().
struct MigDataWriteRequest {
  uint32_t argsz = kMigDataFixedSize;
  absl::Span<const uint8_t> data;

  uint32_t size() const { return static_cast<uint32_t>(data.size()); }
  friend bool operator==(const MigDataWriteRequest&, const MigDataWriteRequest&) = default;
};

// All EINVAL: payload >= 8 (row 4); size <= max_size (row 33); argsz >=
// 8 + size, computed in 64 bits (row 5). Bytes past the first 8 are ignored.
absl::StatusOr<MigDataReadRequest> DecodeMigDataReadRequest(absl::Span<const uint8_t> payload,
                                                            size_t num_fds, uint64_t max_size);
void EncodeMigDataReadRequest(const MigDataReadRequest& request, std::vector<uint8_t>& out);

// Client side, all EINVAL: payload >= 8; size <= `max_size` (the size the
// request asked for); payload exactly 8 + size; argsz exactly 8 + size.
absl::StatusOr<MigDataReadReply> DecodeMigDataReadReply(absl::Span<const uint8_t> payload,
                                                        size_t num_fds, uint64_t max_size);
// data.size() must fit the 32-bit fields (it is at most max_data_xfer_size,
// capped at 64 MiB); a larger one is a caller bug and aborts.
void EncodeMigDataReadReply(const MigDataReadReply& reply, std::vector<uint8_t>& out);

// All EINVAL: payload >= 8 (row 4); size <= max_size (row 33); payload
// exactly 8 + size, shorter (row 33) or longer; argsz >= 8 + size (row 5).
absl::StatusOr<MigDataWriteRequest> DecodeMigDataWriteRequest(absl::Span<const uint8_t> payload,
                                                              size_t num_fds, uint64_t max_size);
// data.size() must fit the 32-bit size field, as above.
void EncodeMigDataWriteRequest(const MigDataWriteRequest& request, std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_MIGRATION_DATA_H_
