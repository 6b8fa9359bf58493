// DEVICE_FEATURE (16): get, set or probe a device feature (migration and DMA
// dirty logging), the vfio-user form of the kernel's VFIO_DEVICE_FEATURE.
//
// Request and reply payload:
//   Off Size Field
//    0   4   argsz   request: largest reply payload accepted;
//                    GET reply: its own payload size
//    4   4   flags   bits 0-15 feature index; GET 1<<16, SET 1<<17, PROBE 1<<18
//    8   n   data    feature data, by index (below); unused for PROBE
//
// Index  Feature             Ops               Data
//   1    MIGRATION           GET, PROBE        flags u64 @0: STOP_COPY 1, P2P 2,
//                                              PRE_COPY 4
//   2    MIG_DEVICE_STATE    GET, SET, PROBE   device_state u32 @0, data_fd u32 @4
//   6    DMA_LOGGING_START   SET, PROBE        logging control (below)
//   7    DMA_LOGGING_STOP    SET, PROBE        ignored
//   8    DMA_LOGGING_REPORT  GET, PROBE        logging report (below)
//   9    MIG_DATA_SIZE       GET, PROBE        stop_copy_length u64 @0: bytes
//                                              STOP_COPY would still move
//                                              (an estimate)
//
// Logging control (START):
//    0   8   page_size   granularity hint (the server may pick another)
//    8   4   num_ranges  0 = log every write
//   12   4   reserved
//   16  16n  ranges      {iova u64, length u64} x num_ranges
// Logging report (REPORT):
//    0   8   iova
//    8   8   length
//   16   8   page_size   power of two
//   24   m   bitmap      GET reply only; m = DirtyBitmapSize(length, page_size)
//
// Replies: GET returns argsz (= its payload size), flags and the feature
// data; SET and PROBE return the request payload echoed byte for byte.
//
// GET and SET are exclusive unless PROBE is set; PROBE with GET and/or SET
// asks whether those operations are supported. No fds belong to this command;
// the decoders ignore `num_fds` (section 10 row 16). Spans in decoded
// messages point into the payload and are valid while it lives.
#ifndef VFU_WIRE_DEVICE_FEATURE_H_
#define VFU_WIRE_DEVICE_FEATURE_H_

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr uint32_t kDeviceFeatureIndexMask = 0xffff;
inline constexpr uint32_t kDeviceFeatureGet = 1u << 16;
inline constexpr uint32_t kDeviceFeatureSet = 1u << 17;
inline constexpr uint32_t kDeviceFeatureProbe = 1u << 18;

inline constexpr size_t kDeviceFeatureHeaderSize = 8;

// Feature indexes (flags bits 0-15) vfio-user defines.
enum class DeviceFeature : uint16_t {
  kMigration = 1,
  kMigDeviceState = 2,
  kDmaLoggingStart = 6,
  kDmaLoggingStop = 7,
  kDmaLoggingReport = 8,
  // The kernel's VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, which vfio-user does not
  // name; QEMU asks for it (and assumes 100 GiB without an answer).
  kMigDataSize = 9,
};

// MIGRATION data flags.
inline constexpr uint64_t kMigrationStopCopy = 1u << 0;
inline constexpr uint64_t kMigrationP2p = 1u << 1;
inline constexpr uint64_t kMigrationPreCopy = 1u << 2;

inline constexpr size_t kFeatureMigrationSize = 8;
inline constexpr size_t kFeatureMigStateSize = 8;
inline constexpr size_t kFeatureMigDataSizeSize = 8;
inline constexpr size_t kDmaLoggingControlFixedSize = 16;
inline constexpr size_t kDmaLoggingRangeSize = 16;
inline constexpr size_t kDmaLoggingReportFixedSize = 24;

// The flags word for `operations` (GET/SET/PROBE bits) on `feature`.
constexpr uint32_t DeviceFeatureFlags(DeviceFeature feature, uint32_t operations) {
  return static_cast<uint32_t>(feature) | operations;
}

// MIGRATION (GET reply data).
struct FeatureMigration {
  uint64_t flags = 0;

  friend bool operator==(const FeatureMigration&, const FeatureMigration&) = default;
};

// MIG_DEVICE_STATE (SET request and GET reply data). `device_state` is the
// raw value; judging it (ERROR, P2P, >= 8, forbidden arcs: row 31) is the
// migration layer's job.
struct FeatureMigState {
  uint32_t device_state = 0;
  uint32_t data_fd = 0;  // unused by vfio-user; 0

  friend bool operator==(const FeatureMigState&, const FeatureMigState&) = default;
};

// MIG_DATA_SIZE (GET reply data).
struct FeatureMigDataSize {
  uint64_t stop_copy_length = 0;

  friend bool operator==(const FeatureMigDataSize&, const FeatureMigDataSize&) = default;
};

struct DmaLoggingRange {
  uint64_t iova = 0;
  uint64_t length = 0;

  friend bool operator==(const DmaLoggingRange&, const DmaLoggingRange&) = default;
};

// DMA_LOGGING_START (SET request data). The reserved word is dropped on
// decode and written as 0.
struct DmaLoggingControl {
  uint64_t page_size = 0;
  std::vector<DmaLoggingRange> ranges;  // empty = log everything

  friend bool operator==(const DmaLoggingControl&, const DmaLoggingControl&) = default;
};

// DMA_LOGGING_REPORT (GET request data, and GET reply data with the bitmap).
struct DmaLoggingReport {
  uint64_t iova = 0;
  uint64_t length = 0;
  uint64_t page_size = 0;
  // Reply only (empty in a request). On the wire it follows the 24 bytes.
  absl::Span<const uint8_t> bitmap;

  friend bool operator==(const DmaLoggingReport&, const DmaLoggingReport&) = default;
};

struct DeviceFeatureRequest {
  uint32_t argsz = 0;
  uint32_t flags = 0;
  // The decoded feature data: monostate when the operation carries none
  // (PROBE, GET of MIGRATION, MIG_DEVICE_STATE or MIG_DATA_SIZE, SET of
  // DMA_LOGGING_STOP);
  // otherwise FeatureMigState (SET MIG_DEVICE_STATE), DmaLoggingControl
  // (SET DMA_LOGGING_START) or DmaLoggingReport (GET DMA_LOGGING_REPORT).
  std::variant<std::monostate, FeatureMigState, DmaLoggingControl, DmaLoggingReport> data;

  DeviceFeature feature() const {
    return static_cast<DeviceFeature>(flags & kDeviceFeatureIndexMask);
  }
  bool is_get() const { return (flags & kDeviceFeatureGet) != 0; }
  bool is_set() const { return (flags & kDeviceFeatureSet) != 0; }
  bool is_probe() const { return (flags & kDeviceFeatureProbe) != 0; }

  friend bool operator==(const DeviceFeatureRequest&, const DeviceFeatureRequest&) = default;
};

// Checks what the message alone can tell, all EINVAL (the kernel would say
// ENOTTY for the operation errors; vfio-user uses EINVAL):
// - payload >= 8 (row 4);
// - no flag bits above PROBE; at least one of GET/SET/PROBE; not GET and
//   SET together without PROBE; a known feature index; only operations the
//   feature has (table above) (row 30);
// - PROBE and SET: argsz >= payload size, so the echo fits (row 5);
// - GET: argsz >= the reply size, 16 for MIGRATION, MIG_DEVICE_STATE and
//   MIG_DATA_SIZE,
//   32 + bitmap for DMA_LOGGING_REPORT (row 5);
// - feature data at least as long as its structure: 8 for SET
//   MIG_DEVICE_STATE, 24 for GET DMA_LOGGING_REPORT, 16 for SET
//   DMA_LOGGING_START (row 4);
// - DMA_LOGGING_START: page_size != 0 (row 32) and exactly num_ranges
//   ranges after the 16 bytes, checked before any range is stored;
// - DMA_LOGGING_REPORT: page_size a power of two (row 29).
// Whether the device migrates or logs, and any state rule, is for the
// migration and DMA layers. Range contents are not judged here.
absl::StatusOr<DeviceFeatureRequest> DecodeDeviceFeatureRequest(
    absl::Span<const uint8_t> payload, size_t num_fds);
// Writes argsz, flags and the data alternative that is set (nothing for
// monostate); num_ranges is ranges.size(), which must fit 32 bits.
void EncodeDeviceFeatureRequest(const DeviceFeatureRequest& request, std::vector<uint8_t>& out);

// GET reply. argsz is not stored: the encoder writes the payload size.
struct DeviceFeatureGetReply {
  uint32_t flags = 0;  // the request's flags
  std::variant<FeatureMigration, FeatureMigState, DmaLoggingReport, FeatureMigDataSize> data;

  friend bool operator==(const DeviceFeatureGetReply&, const DeviceFeatureGetReply&) = default;
};

// Client side, all EINVAL: payload >= 8; flags with GET and without SET or
// PROBE, for a feature that has GET; payload exactly 16 for MIGRATION,
// MIG_DEVICE_STATE and MIG_DATA_SIZE; for DMA_LOGGING_REPORT at least 32, page_size a power of
// two and exactly DirtyBitmapSize(length, page_size) bitmap bytes; argsz
// equal to the payload size.
absl::StatusOr<DeviceFeatureGetReply> DecodeDeviceFeatureGetReply(
    absl::Span<const uint8_t> payload, size_t num_fds);
void EncodeDeviceFeatureGetReply(const DeviceFeatureGetReply& reply, std::vector<uint8_t>& out);

// SET and PROBE replies: appends `request_payload` unchanged.
void EncodeDeviceFeatureEchoReply(absl::Span<const uint8_t> request_payload,
                                  std::vector<uint8_t>& out);
// Client side: EINVAL unless `reply_payload` equals `request_payload`.
absl::Status CheckDeviceFeatureEchoReply(absl::Span<const uint8_t> reply_payload,
                                         absl::Span<const uint8_t> request_payload);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DEVICE_FEATURE_H_
