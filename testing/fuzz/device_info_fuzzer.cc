// Fuzzes the DEVICE_GET_INFO codec (vfu/wire/device_info.h), request and
// reply, on the same payload.
//
// Input: one selector byte (bits 0-1: number of fds, which these messages
// ignore), then the payload.
//
// Checks:
//  - a rejection carries EINVAL, and happens exactly for a payload or an
//    argsz below 16;
//  - request and reply decode the same 16 bytes the same way;
//  - round trip: re-encoding gives back the first 16 payload bytes exactly,
//    and they decode to an equal struct.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/device_info.h"

namespace vfu::fuzz {
namespace {

using wire::DeviceInfo;

void Run(InputReader& in) {
  const size_t num_fds = in.U8() & 3;
  const absl::Span<const uint8_t> payload = in.Rest();
  const bool valid =
      payload.size() >= wire::kDeviceInfoSize && wire::LoadU32(payload, 0) >= wire::kDeviceInfoSize;

  const absl::StatusOr<DeviceInfo> request = wire::DecodeDeviceGetInfoRequest(payload, num_fds);
  const absl::StatusOr<DeviceInfo> reply = wire::DecodeDeviceGetInfoReply(payload, num_fds);
  VFU_FUZZ_CHECK(request.ok() == valid && reply.ok() == valid, "valid ", valid, " request ",
                 request.status().ToString(), " reply ", reply.status().ToString());
  if (!valid) {
    VFU_FUZZ_CHECK(Errno(request.status()) == EINVAL && Errno(reply.status()) == EINVAL,
                   request.status().ToString(), reply.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(*request == *reply, "request and reply decode differently");

  std::vector<uint8_t> out;
  wire::EncodeDeviceGetInfoRequest(*request, out);
  VFU_FUZZ_CHECK(
      out.size() == wire::kDeviceInfoSize && std::equal(out.begin(), out.end(), payload.begin()),
      "request re-encoded as ", Hex(out));
  const absl::StatusOr<DeviceInfo> back = wire::DecodeDeviceGetInfoRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *request, "request round trip differs");

  out.clear();
  wire::EncodeDeviceGetInfoReply(*reply, out);
  VFU_FUZZ_CHECK(
      out.size() == wire::kDeviceInfoSize && std::equal(out.begin(), out.end(), payload.begin()),
      "reply re-encoded as ", Hex(out));
  const absl::StatusOr<DeviceInfo> back_reply = wire::DecodeDeviceGetInfoReply(out, num_fds);
  VFU_FUZZ_CHECK(back_reply.ok() && *back_reply == *reply, "reply round trip differs");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
