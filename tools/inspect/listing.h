// FormatListing: a vfio-user device as text, in the spirit of `lspci -vvv`:
// protocol and device info, identity, command and status, each BAR (config
// space decode, size from region info, the region's vfio flags), the ROM,
// device-specific regions, every capability, the interrupt indexes, and
// finally every warning (malformed chains, and where config space and vfio
// info disagree).
#ifndef VFU_TOOLS_INSPECT_LISTING_H_
#define VFU_TOOLS_INSPECT_LISTING_H_

#include <cstdint>
#include <string>

#include "tools/inspect/device_snapshot.h"

namespace vfu::inspect {

// The listing of `device`; never fails (what cannot be decoded is said so).
std::string FormatListing(const DeviceSnapshot& device);

// A size in the largest binary unit that divides it: "4K", "16M", "256".
std::string FormatSize(uint64_t bytes);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_LISTING_H_
