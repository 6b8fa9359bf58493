#include "vfu/wire/device_info.h"

#include <cerrno>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

absl::StatusOr<DeviceInfo> DecodeDeviceInfo(absl::Span<const uint8_t> payload,
                                            std::string_view what) {
  if (payload.size() < kDeviceInfoSize) {
    return WireError(EINVAL, absl::StrCat(what, " payload of ", payload.size(),
                                          " bytes, need 16"));
  }
  DeviceInfo info;
  info.argsz = LoadU32(payload, 0);
  info.flags = LoadU32(payload, 4);
  info.num_regions = LoadU32(payload, 8);
  info.num_irqs = LoadU32(payload, 12);
  if (info.argsz < kDeviceInfoSize) {
    return WireError(EINVAL, absl::StrCat(what, " argsz ", info.argsz, " < 16"));
  }
  return info;
}

void EncodeDeviceInfo(const DeviceInfo& info, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(info.argsz).U32(info.flags).U32(info.num_regions).U32(info.num_irqs);
}

}  // namespace

absl::StatusOr<DeviceInfo> DecodeDeviceGetInfoRequest(absl::Span<const uint8_t> payload,
                                                      size_t num_fds) {
  return DecodeDeviceInfo(payload, "DEVICE_GET_INFO");
}

void EncodeDeviceGetInfoRequest(const DeviceInfo& request, std::vector<uint8_t>& out) {
  EncodeDeviceInfo(request, out);
}

absl::StatusOr<DeviceInfo> DecodeDeviceGetInfoReply(absl::Span<const uint8_t> payload,
                                                    size_t num_fds) {
  return DecodeDeviceInfo(payload, "DEVICE_GET_INFO reply");
}

void EncodeDeviceGetInfoReply(const DeviceInfo& reply, std::vector<uint8_t>& out) {
  EncodeDeviceInfo(reply, out);
}

}  // namespace vfu::wire
