#include "vfu/wire/device_feature.h"

#include <linux/vfio.h>

#include <cerrno>
#include <limits>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

// The wire reuses the kernel's numbers and fixed structures. Headers older
// than Linux 6.2 lack PRE_COPY and the DMA logging indexes.
static_assert(kDeviceFeatureIndexMask == VFIO_DEVICE_FEATURE_MASK);
static_assert(kDeviceFeatureGet == VFIO_DEVICE_FEATURE_GET);
static_assert(kDeviceFeatureSet == VFIO_DEVICE_FEATURE_SET);
static_assert(kDeviceFeatureProbe == VFIO_DEVICE_FEATURE_PROBE);
static_assert(static_cast<int>(DeviceFeature::kMigration) == VFIO_DEVICE_FEATURE_MIGRATION);
static_assert(static_cast<int>(DeviceFeature::kMigDeviceState) ==
              VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
static_assert(kMigrationStopCopy == VFIO_MIGRATION_STOP_COPY);
static_assert(kMigrationP2p == VFIO_MIGRATION_P2P);
static_assert(sizeof(vfio_device_feature) == kDeviceFeatureHeaderSize);
static_assert(sizeof(vfio_device_feature_migration) == kFeatureMigrationSize);
static_assert(sizeof(vfio_device_feature_mig_state) == kFeatureMigStateSize);
#ifdef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
static_assert(static_cast<int>(DeviceFeature::kMigDataSize) == VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
static_assert(sizeof(vfio_device_feature_mig_data_size) == kFeatureMigDataSizeSize);
#endif
#ifdef VFIO_MIGRATION_PRE_COPY
static_assert(kMigrationPreCopy == VFIO_MIGRATION_PRE_COPY);
#endif
#ifdef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
static_assert(static_cast<int>(DeviceFeature::kDmaLoggingStart) ==
              VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
static_assert(static_cast<int>(DeviceFeature::kDmaLoggingStop) ==
              VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
static_assert(static_cast<int>(DeviceFeature::kDmaLoggingReport) ==
              VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
static_assert(sizeof(vfio_device_feature_dma_logging_range) == kDmaLoggingRangeSize);
#endif

constexpr uint32_t kOperations = kDeviceFeatureGet | kDeviceFeatureSet | kDeviceFeatureProbe;
// GET reply of MIGRATION, MIG_DEVICE_STATE and MIG_DATA_SIZE: header + 8
// bytes of data.
constexpr uint64_t kSmallGetReplySize = kDeviceFeatureHeaderSize + 8;

// The GET/SET bits `index` supports (PROTOCOL.md 4.12), 0 if unknown.
uint32_t SupportedOperations(uint32_t index) {
  switch (index) {
    case static_cast<uint32_t>(DeviceFeature::kMigration):
    case static_cast<uint32_t>(DeviceFeature::kDmaLoggingReport):
    case static_cast<uint32_t>(DeviceFeature::kMigDataSize):
      return kDeviceFeatureGet;
    case static_cast<uint32_t>(DeviceFeature::kMigDeviceState):
      return kDeviceFeatureGet | kDeviceFeatureSet;
    case static_cast<uint32_t>(DeviceFeature::kDmaLoggingStart):
    case static_cast<uint32_t>(DeviceFeature::kDmaLoggingStop):
      return kDeviceFeatureSet;
    default:
      return 0;
  }
}

absl::Status DataTooShort(std::string_view what, size_t size, size_t need) {
  return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE ", what, " data of ", size,
                                        " bytes, need ", need));
}

// The 24 fixed bytes of a logging report, and its bitmap size (which also
// proves page_size a power of two).
struct ReportFixed {
  DmaLoggingReport report;
  uint64_t bitmap_size = 0;
};

absl::StatusOr<ReportFixed> DecodeReportFixed(absl::Span<const uint8_t> data) {
  if (data.size() < kDmaLoggingReportFixedSize) {
    return DataTooShort("DMA_LOGGING_REPORT", data.size(), kDmaLoggingReportFixedSize);
  }
  ReportFixed r;
  r.report.iova = LoadU64(data, 0);
  r.report.length = LoadU64(data, 8);
  r.report.page_size = LoadU64(data, 16);
  VFU_ASSIGN_OR_RETURN(r.bitmap_size, DirtyBitmapSize(r.report.length, r.report.page_size));
  return r;
}

absl::StatusOr<DmaLoggingControl> DecodeLoggingControl(absl::Span<const uint8_t> data) {
  if (data.size() < kDmaLoggingControlFixedSize) {
    return DataTooShort("DMA_LOGGING_START", data.size(), kDmaLoggingControlFixedSize);
  }
  DmaLoggingControl control;
  control.page_size = LoadU64(data, 0);
  const uint32_t num_ranges = LoadU32(data, 8);
  if (control.page_size == 0) {
    return WireError(EINVAL, "DEVICE_FEATURE DMA_LOGGING_START with page size 0");
  }
  // num_ranges * 16 < 2^36: no overflow in 64 bits. Checked against the
  // payload before anything is allocated from num_ranges.
  const uint64_t ranges_size = uint64_t{num_ranges} * kDmaLoggingRangeSize;
  if (data.size() - kDmaLoggingControlFixedSize != ranges_size) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE DMA_LOGGING_START with ", num_ranges,
                                          " ranges in ", data.size(), " bytes of data"));
  }
  control.ranges.reserve(num_ranges);
  for (size_t off = kDmaLoggingControlFixedSize; off < data.size();
       off += kDmaLoggingRangeSize) {
    control.ranges.push_back({.iova = LoadU64(data, off), .length = LoadU64(data, off + 8)});
  }
  return control;
}

absl::Status CheckArgsz(uint32_t argsz, uint64_t need, std::string_view what) {
  if (argsz < need) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE ", what, " argsz ", argsz, " < ",
                                          need));
  }
  return absl::OkStatus();
}

void WriteData(ByteWriter&, std::monostate) {}
void WriteData(ByteWriter& w, const FeatureMigration& m) { w.U64(m.flags); }
void WriteData(ByteWriter& w, const FeatureMigDataSize& d) { w.U64(d.stop_copy_length); }
void WriteData(ByteWriter& w, const FeatureMigState& s) { w.U32(s.device_state).U32(s.data_fd); }
void WriteData(ByteWriter& w, const DmaLoggingControl& c) {
  VFU_CHECK(c.ranges.size() <= std::numeric_limits<uint32_t>::max(),
            "too many DMA logging ranges for num_ranges");
  w.U64(c.page_size).U32(static_cast<uint32_t>(c.ranges.size())).U32(0);
  for (const DmaLoggingRange& range : c.ranges) w.U64(range.iova).U64(range.length);
}
void WriteData(ByteWriter& w, const DmaLoggingReport& r) {
  w.U64(r.iova).U64(r.length).U64(r.page_size).Bytes(r.bitmap);
}

}  // namespace

absl::StatusOr<DeviceFeatureRequest> DecodeDeviceFeatureRequest(
    absl::Span<const uint8_t> payload, size_t /*num_fds*/) {
  if (payload.size() < kDeviceFeatureHeaderSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE payload of ", payload.size(),
                                          " bytes, need 8"));
  }
  DeviceFeatureRequest r;
  r.argsz = LoadU32(payload, 0);
  r.flags = LoadU32(payload, 4);
  if ((r.flags & ~(kDeviceFeatureIndexMask | kOperations)) != 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE unknown flags 0x", absl::Hex(r.flags)));
  }
  const uint32_t operations = r.flags & kOperations;
  if (operations == 0) return WireError(EINVAL, "DEVICE_FEATURE without GET, SET or PROBE");
  if (!r.is_probe() && r.is_get() && r.is_set()) {
    return WireError(EINVAL, "DEVICE_FEATURE with both GET and SET but no PROBE");
  }
  const uint32_t index = r.flags & kDeviceFeatureIndexMask;
  const uint32_t supported = SupportedOperations(index);
  if (supported == 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE unknown feature ", index));
  }
  if ((operations & ~kDeviceFeatureProbe & ~supported) != 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE feature ", index,
                                          " does not support operations 0x",
                                          absl::Hex(operations)));
  }
  const absl::Span<const uint8_t> data = payload.subspan(kDeviceFeatureHeaderSize);

  if (r.is_probe() || r.is_set()) {
    // Their reply echoes the whole request payload.
    VFU_RETURN_IF_ERROR(CheckArgsz(r.argsz, payload.size(), r.is_probe() ? "PROBE" : "SET"));
  }
  if (r.is_probe()) return r;  // data is unused

  switch (r.feature()) {
    case DeviceFeature::kMigration:  // GET only
      VFU_RETURN_IF_ERROR(CheckArgsz(r.argsz, kSmallGetReplySize, "GET MIGRATION"));
      return r;
    case DeviceFeature::kMigDataSize:  // GET only
      VFU_RETURN_IF_ERROR(CheckArgsz(r.argsz, kSmallGetReplySize, "GET MIG_DATA_SIZE"));
      return r;
    case DeviceFeature::kMigDeviceState:
      if (r.is_get()) {
        VFU_RETURN_IF_ERROR(CheckArgsz(r.argsz, kSmallGetReplySize, "GET MIG_DEVICE_STATE"));
        return r;
      }
      if (data.size() < kFeatureMigStateSize) {
        return DataTooShort("SET MIG_DEVICE_STATE", data.size(), kFeatureMigStateSize);
      }
      r.data = FeatureMigState{.device_state = LoadU32(data, 0), .data_fd = LoadU32(data, 4)};
      return r;
    case DeviceFeature::kDmaLoggingStart: {  // SET only
      VFU_ASSIGN_OR_RETURN(DmaLoggingControl control, DecodeLoggingControl(data));
      r.data = std::move(control);
      return r;
    }
    case DeviceFeature::kDmaLoggingStop:  // SET only; its data is ignored
      return r;
    case DeviceFeature::kDmaLoggingReport: {  // GET only
      VFU_ASSIGN_OR_RETURN(ReportFixed fixed, DecodeReportFixed(data));
      // bitmap_size <= 2^61, so the sum cannot wrap.
      VFU_RETURN_IF_ERROR(CheckArgsz(
          r.argsz, kDeviceFeatureHeaderSize + kDmaLoggingReportFixedSize + fixed.bitmap_size,
          "GET DMA_LOGGING_REPORT"));
      r.data = fixed.report;
      return r;
    }
  }
  // SupportedOperations() admitted only the indexes handled above.
  return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE unknown feature ", index));
}

void EncodeDeviceFeatureRequest(const DeviceFeatureRequest& r, std::vector<uint8_t>& out) {
  ByteWriter w(out);
  w.U32(r.argsz).U32(r.flags);
  std::visit([&w](const auto& data) { WriteData(w, data); }, r.data);
}

absl::StatusOr<DeviceFeatureGetReply> DecodeDeviceFeatureGetReply(
    absl::Span<const uint8_t> payload, size_t /*num_fds*/) {
  if (payload.size() < kDeviceFeatureHeaderSize) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE reply of ", payload.size(),
                                          " bytes, need 8"));
  }
  const uint32_t argsz = LoadU32(payload, 0);
  DeviceFeatureGetReply reply;
  reply.flags = LoadU32(payload, 4);
  const uint32_t index = reply.flags & kDeviceFeatureIndexMask;
  if ((reply.flags & ~kDeviceFeatureIndexMask) != kDeviceFeatureGet ||
      (SupportedOperations(index) & kDeviceFeatureGet) == 0) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE GET reply with flags 0x",
                                          absl::Hex(reply.flags)));
  }
  if (argsz != payload.size()) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE GET reply argsz ", argsz, " but ",
                                          payload.size(), " payload bytes"));
  }
  const absl::Span<const uint8_t> data = payload.subspan(kDeviceFeatureHeaderSize);
  if (index == static_cast<uint32_t>(DeviceFeature::kDmaLoggingReport)) {
    VFU_ASSIGN_OR_RETURN(ReportFixed fixed, DecodeReportFixed(data));
    if (data.size() - kDmaLoggingReportFixedSize != fixed.bitmap_size) {
      return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE DMA_LOGGING_REPORT reply with ",
                                            data.size() - kDmaLoggingReportFixedSize,
                                            " bitmap bytes, need ", fixed.bitmap_size));
    }
    fixed.report.bitmap = data.subspan(kDmaLoggingReportFixedSize);
    reply.data = fixed.report;
    return reply;
  }
  // MIGRATION, MIG_DEVICE_STATE and MIG_DATA_SIZE: 8 bytes of data.
  if (data.size() != 8) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE GET reply for feature ", index,
                                          " with ", data.size(), " data bytes, need 8"));
  }
  if (index == static_cast<uint32_t>(DeviceFeature::kMigration)) {
    reply.data = FeatureMigration{.flags = LoadU64(data, 0)};
  } else if (index == static_cast<uint32_t>(DeviceFeature::kMigDataSize)) {
    reply.data = FeatureMigDataSize{.stop_copy_length = LoadU64(data, 0)};
  } else {
    reply.data = FeatureMigState{.device_state = LoadU32(data, 0), .data_fd = LoadU32(data, 4)};
  }
  return reply;
}

void EncodeDeviceFeatureGetReply(const DeviceFeatureGetReply& reply, std::vector<uint8_t>& out) {
  const size_t start = out.size();
  ByteWriter w(out);
  w.U32(0).U32(reply.flags);  // argsz patched below, once the size is known
  std::visit([&w](const auto& data) { WriteData(w, data); }, reply.data);
  const size_t size = out.size() - start;
  VFU_CHECK(size <= std::numeric_limits<uint32_t>::max(), "DEVICE_FEATURE reply too large");
  Store<uint32_t>(absl::MakeSpan(out), start, static_cast<uint32_t>(size));
}

void EncodeDeviceFeatureEchoReply(absl::Span<const uint8_t> request_payload,
                                  std::vector<uint8_t>& out) {
  ByteWriter(out).Bytes(request_payload);
}

absl::Status CheckDeviceFeatureEchoReply(absl::Span<const uint8_t> reply_payload,
                                         absl::Span<const uint8_t> request_payload) {
  if (reply_payload != request_payload) {
    return WireError(EINVAL, absl::StrCat("DEVICE_FEATURE reply of ", reply_payload.size(),
                                          " bytes does not echo the ", request_payload.size(),
                                          "-byte request"));
  }
  return absl::OkStatus();
}

}  // namespace vfu::wire
