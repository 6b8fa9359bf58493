// CheckConsistency: where a device's config space and its vfio region and
// IRQ info disagree. A VMM trusts both and combines them (BAR sizes from
// region info, interrupt counts from IRQ info, MSI-X placement from config
// space), so every disagreement here is a device a VMM may mishandle.
#ifndef VFU_TOOLS_INSPECT_CONSISTENCY_H_
#define VFU_TOOLS_INSPECT_CONSISTENCY_H_

#include <string>
#include <vector>

#include "tools/inspect/config_decoder.h"
#include "tools/inspect/device_snapshot.h"

namespace vfu::inspect {

// One sentence per disagreement, in a fixed order (BARs, ROM, regions,
// interrupts); empty for a consistent device.
std::vector<std::string> CheckConsistency(const DeviceSnapshot& device,
                                          const ConfigSpaceInfo& config);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_CONSISTENCY_H_
