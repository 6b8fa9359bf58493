// IoeventfdWriter: writes a region as a VMM with KVM does once it has
// registered the region's ioeventfds (DEVICE_GET_REGION_IO_FDS).
//
//   ASSIGN_OR_RETURN(IoeventfdWriter doorbells, IoeventfdWriter::Create(client, 0));
//   doorbells.Write(0x1000, bytes);   // eventfd if it matches, else REGION_WRITE
//
// KVM signals an ioeventfd for a guest store of exactly the entry's width
// (any width for size 0) at its offset, and with DATAMATCH only when the
// value matches; the value itself is not forwarded. Every other store
// exits to the VMM, which sends it as a REGION_WRITE. This class does the
// same, so tests and tools can drive a device's doorbells the way QEMU does.
//
// The reply is checked as a client must (PROTOCOL.md 4.5): every entry
// inside the region, a known width; entries of other types (ioregionfd,
// shadow ioeventfd) are not used, their writes go as REGION_WRITEs.
//
// Thread-compatible; Write may run concurrently with other Client calls.
#ifndef VFU_CLIENT_IOEVENTFD_WRITER_H_
#define VFU_CLIENT_IOEVENTFD_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu {

class IoeventfdWriter {
 public:
  // Fetches region `region`'s io fds. `client` must outlive the writer.
  // The server's error (EINVAL for a region without io fds) is returned.
  static absl::StatusOr<IoeventfdWriter> Create(Client& client, uint32_t region);

  // What Write did.
  enum class Path {
    kEventfd,      // matched an ioeventfd: signalled it, as KVM would
    kRegionWrite,  // no match: sent as REGION_WRITE (posted if asked)
  };
  absl::StatusOr<Path> Write(uint64_t offset, absl::Span<const uint8_t> data,
                             bool posted = false);

  // The ioeventfd entries in use.
  const std::vector<wire::IoFdEntry>& entries() const { return entries_; }

 private:
  IoeventfdWriter(Client& client, uint32_t region) : client_(&client), region_(region) {}

  Client* client_;
  uint32_t region_;
  std::vector<wire::IoFdEntry> entries_;  // ioeventfds only
  std::vector<UniqueFd> fds_;             // indexed by entries_[i].fd_index
};

}  // namespace vfu

#endif  // VFU_CLIENT_IOEVENTFD_WRITER_H_
