// Reading and writing a byte range of one region of a vfio-user device, in
// messages no larger than the server accepts (its max_data_xfer_size).
#ifndef VFU_TOOLS_INSPECT_REGION_IO_H_
#define VFU_TOOLS_INSPECT_REGION_IO_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/client/client.h"

namespace vfu::inspect {

// Reads `size` bytes at `offset` of region `index`. A server that returns
// fewer bytes than asked is an error (DataLoss), so the result always has
// `size` bytes. Other errors are the client's.
absl::StatusOr<std::vector<uint8_t>> ReadRegionRange(Client& client, uint32_t index,
                                                     uint64_t offset, uint64_t size);

// Writes `data` at `offset` of region `index`, each chunk acknowledged.
absl::Status WriteRegionRange(Client& client, uint32_t index, uint64_t offset,
                              absl::Span<const uint8_t> data);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_REGION_IO_H_
