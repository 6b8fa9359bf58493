// Fuzzes the DEVICE_FEATURE codec (vfu/wire/device_feature.h): the request
// decoder, the replies a server builds for what it accepts, and the
// client-side GET reply decoder, on the same payload.
//
// Input: the payload (these messages take no fds, so there is no selector).
//
// Checks:
//  - a rejection carries EINVAL;
//  - a decoded request follows section 10 rows 4, 5, 29, 30, 32: at least
//    one operation, GET and SET only together with PROBE, a known feature
//    and only its operations, the data alternative that matches the
//    operation, a non-zero logging page size, a power-of-two report page
//    size, and an argsz that holds the reply;
//  - request round trip: re-encoding decodes to an equal request;
//  - the reply a server sends for a decoded request never exceeds its
//    argsz: SET/PROBE echo the payload (and the echo check accepts it), a
//    GET reply with data of the documented size decodes back to itself;
//  - a decoded GET reply re-encodes to the payload byte for byte.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dirty_bitmap.h"

namespace vfu::fuzz {
namespace {

using wire::DeviceFeature;
using wire::DeviceFeatureGetReply;
using wire::DeviceFeatureRequest;
using wire::DmaLoggingControl;
using wire::DmaLoggingReport;
using wire::FeatureMigration;
using wire::FeatureMigState;

// Largest bitmap the fuzzer builds for a GET DMA_LOGGING_REPORT reply.
constexpr uint64_t kMaxBitmap = 64 * 1024;

// Checks a decoded request, its round trip, and the reply a server would
// send for it (skipped for report bitmaps above kMaxBitmap).
void CheckRequest(const DeviceFeatureRequest& r, absl::Span<const uint8_t> payload) {
  const uint32_t ops =
      r.flags & (wire::kDeviceFeatureGet | wire::kDeviceFeatureSet | wire::kDeviceFeatureProbe);
  VFU_FUZZ_CHECK((r.flags & ~(wire::kDeviceFeatureIndexMask | ops)) == 0 && ops != 0, "flags 0x",
                 absl::Hex(r.flags), " accepted");
  VFU_FUZZ_CHECK(r.is_probe() || !(r.is_get() && r.is_set()), "GET|SET without PROBE");
  const DeviceFeature f = r.feature();
  const bool get_only = f == DeviceFeature::kMigration || f == DeviceFeature::kDmaLoggingReport ||
                        f == DeviceFeature::kMigDataSize;
  const bool set_only = f == DeviceFeature::kDmaLoggingStart || f == DeviceFeature::kDmaLoggingStop;
  VFU_FUZZ_CHECK(get_only || set_only || f == DeviceFeature::kMigDeviceState, "feature ",
                 static_cast<int>(f), " accepted");
  if (get_only) VFU_FUZZ_CHECK(!r.is_set(), "SET of a GET-only feature");
  if (set_only) VFU_FUZZ_CHECK(!r.is_get(), "GET of a SET-only feature");
  if (r.is_probe() || r.is_set()) {
    VFU_FUZZ_CHECK(r.argsz >= payload.size(), "argsz ", r.argsz, " cannot hold the echo of ",
                   payload.size(), " bytes");
  }

  // The data alternative matches the operation.
  bool want_mig_state = false, want_control = false, want_report = false;
  if (!r.is_probe()) {
    want_mig_state = r.is_set() && f == DeviceFeature::kMigDeviceState;
    want_control = f == DeviceFeature::kDmaLoggingStart;
    want_report = f == DeviceFeature::kDmaLoggingReport;
  }
  VFU_FUZZ_CHECK(std::holds_alternative<FeatureMigState>(r.data) == want_mig_state &&
                     std::holds_alternative<DmaLoggingControl>(r.data) == want_control &&
                     std::holds_alternative<DmaLoggingReport>(r.data) == want_report,
                 "data alternative ", r.data.index(), " for flags 0x", absl::Hex(r.flags));
  if (const auto* control = std::get_if<DmaLoggingControl>(&r.data)) {
    VFU_FUZZ_CHECK(control->page_size != 0, "logging page size 0 accepted");
    VFU_FUZZ_CHECK(payload.size() == wire::kDeviceFeatureHeaderSize +
                                         wire::kDmaLoggingControlFixedSize +
                                         wire::kDmaLoggingRangeSize * control->ranges.size(),
                   "START of ", payload.size(), " bytes with ", control->ranges.size(), " ranges");
  }

  std::vector<uint8_t> out;
  wire::EncodeDeviceFeatureRequest(r, out);
  const absl::StatusOr<DeviceFeatureRequest> back = wire::DecodeDeviceFeatureRequest(out, 0);
  VFU_FUZZ_CHECK(back.ok(), "own request rejected: ", back.status().ToString(), " ", Hex(out));
  VFU_FUZZ_CHECK(*back == r, "request round trip differs: ", Hex(out));

  if (r.is_probe() || r.is_set()) {
    std::vector<uint8_t> echo;
    wire::EncodeDeviceFeatureEchoReply(payload, echo);
    VFU_FUZZ_CHECK(echo.size() <= r.argsz, "echo exceeds argsz");
    VFU_FUZZ_CHECK(wire::CheckDeviceFeatureEchoReply(echo, payload).ok(), "echo rejected");
    return;
  }

  // GET: the reply a server sends, with data of the documented size.
  DeviceFeatureGetReply reply;
  reply.flags = r.flags;
  std::vector<uint8_t> bitmap;
  switch (f) {
    case DeviceFeature::kMigration:
      reply.data = FeatureMigration{.flags = wire::kMigrationStopCopy | wire::kMigrationPreCopy};
      break;
    case DeviceFeature::kMigDeviceState:
      reply.data = FeatureMigState{.device_state = 2};
      break;
    case DeviceFeature::kMigDataSize:
      reply.data = wire::FeatureMigDataSize{.stop_copy_length = 4096};
      break;
    case DeviceFeature::kDmaLoggingReport: {
      DmaLoggingReport report = std::get<DmaLoggingReport>(r.data);
      VFU_FUZZ_CHECK(std::has_single_bit(report.page_size), "page size ", report.page_size);
      VFU_FUZZ_CHECK(report.bitmap.empty(), "request with a bitmap");
      const absl::StatusOr<uint64_t> size = wire::DirtyBitmapSize(report.length, report.page_size);
      VFU_FUZZ_CHECK(size.ok(), size.status().ToString());
      if (*size > kMaxBitmap) return;
      bitmap.assign(*size, 0xa5);
      report.bitmap = bitmap;
      reply.data = report;
      break;
    }
    default:
      VFU_FUZZ_CHECK(false, "GET of feature ", static_cast<int>(f), " accepted");
  }
  std::vector<uint8_t> reply_bytes;
  wire::EncodeDeviceFeatureGetReply(reply, reply_bytes);
  VFU_FUZZ_CHECK(reply_bytes.size() <= r.argsz, "GET reply of ", reply_bytes.size(),
                 " bytes exceeds argsz ", r.argsz);
  const absl::StatusOr<DeviceFeatureGetReply> decoded =
      wire::DecodeDeviceFeatureGetReply(reply_bytes, 0);
  VFU_FUZZ_CHECK(decoded.ok(), "own GET reply rejected: ", decoded.status().ToString());
  VFU_FUZZ_CHECK(*decoded == reply, "GET reply round trip differs");
}

void CheckGetReply(absl::Span<const uint8_t> payload) {
  const absl::StatusOr<DeviceFeatureGetReply> r = wire::DecodeDeviceFeatureGetReply(payload, 0);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  std::vector<uint8_t> out;
  wire::EncodeDeviceFeatureGetReply(*r, out);
  VFU_FUZZ_CHECK(
      out.size() == payload.size() && std::equal(out.begin(), out.end(), payload.begin()),
      "GET reply re-encoded as ", Hex(out));
  const absl::StatusOr<DeviceFeatureGetReply> back = wire::DecodeDeviceFeatureGetReply(out, 0);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "GET reply round trip differs");
}

void Run(absl::Span<const uint8_t> payload) {
  const absl::StatusOr<DeviceFeatureRequest> r = wire::DecodeDeviceFeatureRequest(payload, 0);
  if (r.ok()) {
    CheckRequest(*r, payload);
  } else {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
  }
  CheckGetReply(payload);
}

}  // namespace
}  // namespace vfu::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vfu::fuzz::InputScope scope(data, size);
  vfu::fuzz::Run(absl::MakeConstSpan(data, size));
  return 0;
}
