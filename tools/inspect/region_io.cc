#include "tools/inspect/region_io.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "vfu/base/status_macros.h"

namespace vfu::inspect {
namespace {

uint64_t ChunkSize(const Client& client) {
  // max_data_xfer_size is validated by the client to lie in 1..64 MiB.
  return std::max<uint64_t>(client.server_capabilities().max_data_xfer_size, 1);
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ReadRegionRange(Client& client, uint32_t index,
                                                     uint64_t offset, uint64_t size) {
  std::vector<uint8_t> out;
  out.reserve(size);
  const uint64_t chunk = ChunkSize(client);
  while (out.size() < size) {
    const uint64_t at = offset + out.size();
    const uint32_t count = static_cast<uint32_t>(std::min(chunk, size - out.size()));
    VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, client.RegionRead(index, at, count));
    if (bytes.size() != count) {
      return absl::DataLossError(absl::StrFormat(
          "region %d: the server returned %d of %d bytes at 0x%x", index, bytes.size(), count, at));
    }
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

absl::Status WriteRegionRange(Client& client, uint32_t index, uint64_t offset,
                              absl::Span<const uint8_t> data) {
  const uint64_t chunk = ChunkSize(client);
  for (uint64_t done = 0; done < data.size();) {
    const uint64_t count = std::min<uint64_t>(chunk, data.size() - done);
    VFU_RETURN_IF_ERROR(client.RegionWrite(index, offset + done, data.subspan(done, count)));
    done += count;
  }
  return absl::OkStatus();
}

}  // namespace vfu::inspect
