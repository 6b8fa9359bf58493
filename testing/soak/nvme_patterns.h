// The soak test's NVMe patterns (see nvme_patterns.cc for each), on the
// NvmeController instances of soak_server (8 MiB image, 512-byte LBAs).
#ifndef VFU_TESTING_SOAK_NVME_PATTERNS_H_
#define VFU_TESTING_SOAK_NVME_PATTERNS_H_

#include <memory>
#include <vector>

#include "testing/soak/pattern.h"
#include "vfu/client/client.h"

namespace vfu::soak {

std::vector<std::unique_ptr<Pattern>> NvmePatterns();

// The harness's probe of an nvme slot after a hostile session, on a fresh
// client: CAP and VS are the controller's, and it is reset (CC.EN, CSTS.RDY
// and CSTS.CFS clear), since a departed client's controller is reset
// before the next one is served (devices/nvme/README.md).
void ProbeNvme(Client& client, PatternStats& stats);

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_NVME_PATTERNS_H_
