// DEVICE_GET_INFO (4): the client asks what kind of device this is.
//
// Request and reply payloads share one 16-byte layout:
//   Off Size Field        Request        Reply
//    0   4   argsz        >= 16          16
//    4   4   flags        0              VFIO_DEVICE_FLAGS_RESET 1, _PCI 2
//    8   4   num_regions  0              number of region indexes
//   12   4   num_irqs     0              number of IRQ indexes
// Neither direction carries fds (stray ones are closed by the caller and the
// command proceeds, PROTOCOL.md section 10 row 16).
//
// The kernel's struct vfio_device_info is 20 bytes (it adds cap_offset); the
// wire struct is 16, and QEMU sends argsz 16, so 16 is all we require.
#ifndef VFU_WIRE_DEVICE_INFO_H_
#define VFU_WIRE_DEVICE_INFO_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::wire {

inline constexpr size_t kDeviceInfoSize = 16;

// Both the request (where only argsz matters) and the reply.
struct DeviceInfo {
  uint32_t argsz = kDeviceInfoSize;
  uint32_t flags = 0;
  uint32_t num_regions = 0;
  uint32_t num_irqs = 0;

  friend bool operator==(const DeviceInfo&, const DeviceInfo&) = default;
};

// Checks payload >= 16 and argsz >= 16 (EINVAL otherwise). Bytes past the
// 16-byte struct and the request's flags/num_* fields are not judged, as lvu
// does not judge them.
absl::StatusOr<DeviceInfo> DecodeDeviceGetInfoRequest(absl::Span<const uint8_t> payload,
                                                      size_t num_fds);
void EncodeDeviceGetInfoRequest(const DeviceInfo& request, std::vector<uint8_t>& out);

// For the client side: payload >= 16 and argsz >= 16 (EINVAL otherwise).
// Whether the counts are acceptable is the client's policy.
absl::StatusOr<DeviceInfo> DecodeDeviceGetInfoReply(absl::Span<const uint8_t> payload,
                                                    size_t num_fds);
// Writes the 16-byte reply as given; the server sets argsz to 16.
void EncodeDeviceGetInfoReply(const DeviceInfo& reply, std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DEVICE_INFO_H_
