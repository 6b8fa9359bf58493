// The capabilities JSON a VERSION message carries (PROTOCOL.md 3.3, 3.4).
//
// Shape, every member optional:
//   {"capabilities": {
//      "max_msg_fds": 16,            most fds the JSON's sender can receive
//      "max_data_xfer_size": 1048576, largest data-transfer count it accepts
//      "max_dma_maps": 65535,        server's limit on live DMA mappings
//      "pgsizes": 4096,              server's DMA_MAP page sizes (OR of sizes)
//      "twin_socket": {"supported": true, "fd_index": 0},
//      "write_multiple": true,       sender accepts REGION_WRITE_MULTI
//      "migration": {"pgsize": 4096, "max_bitmap_size": 268435456}}}
//
// ParseCapabilities() turns the text into a Capabilities, filling absent
// members with the defaults of 3.3; SerializeCapabilities() goes back,
// writing only the members asked for. Both are pure functions that never
// throw, whatever the input.
#ifndef VFU_WIRE_CAPABILITIES_H_
#define VFU_WIRE_CAPABILITIES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {

// Longest capabilities text ParseCapabilities() accepts (terminating NUL not
// counted). Real JSON is a few hundred bytes; the cap bounds parsing work and
// nesting depth for hostile input.
inline constexpr size_t kMaxCapabilitiesJsonSize = 64 * 1024;

struct TwinSocketCapability {
  // Sender supports twin-socket mode (PROTOCOL.md 3.5).
  bool supported = false;
  // Reply only: index of the twin socket in the reply's fd array.
  std::optional<uint32_t> fd_index = std::nullopt;

  friend bool operator==(const TwinSocketCapability&, const TwinSocketCapability&) = default;
};

// The legacy `migration` object. Both members may be absent from the JSON.
struct MigrationCapability {
  // Dirty-tracking page size: a power of two when present.
  std::optional<uint64_t> pgsize = std::nullopt;
  // Largest dirty bitmap, bytes.
  std::optional<uint64_t> max_bitmap_size = std::nullopt;

  friend bool operator==(const MigrationCapability&, const MigrationCapability&) = default;
};

// One side's capabilities. A member the JSON lacks holds its default.
struct Capabilities {
  uint32_t max_msg_fds = kDefaultMaxMsgFds;               // 0..kMaxMsgFdsLimit
  uint64_t max_data_xfer_size = kDefaultMaxDataXferSize;  // 1..kMaxDataXferSizeLimit
  uint32_t max_dma_maps = kDefaultMaxDmaMaps;
  uint64_t pgsizes = kDefaultPgsizes;                     // never 0
  TwinSocketCapability twin_socket = {};                  // absent = not supported
  bool write_multiple = false;
  // Absent = the sender does not offer (or, in a reply, grant) migration.
  std::optional<MigrationCapability> migration = std::nullopt;

  friend bool operator==(const Capabilities&, const Capabilities&) = default;
};

// Which members SerializeCapabilities() writes. An omitted member reads as
// its default on the other side, so omitting a member that holds its default
// never changes the meaning; omitting features the peer did not offer keeps a
// reply a subset of the proposal (PROTOCOL.md 3.2).
struct CapabilityMembers {
  bool max_msg_fds = false;
  bool max_data_xfer_size = false;
  bool max_dma_maps = false;
  bool pgsizes = false;
  bool twin_socket = false;     // `fd_index` is written when it has a value
  bool write_multiple = false;
  bool migration = false;       // written only if Capabilities::migration has a value

  static constexpr CapabilityMembers All() {
    return {.max_msg_fds = true,
            .max_data_xfer_size = true,
            .max_dma_maps = true,
            .pgsizes = true,
            .twin_socket = true,
            .write_multiple = true,
            .migration = true};
  }

  friend bool operator==(const CapabilityMembers&, const CapabilityMembers&) = default;
};

// Parses capabilities JSON text (without its NUL). Rules of PROTOCOL.md 3.4:
//  - the top level must be an object; `capabilities` absent = all defaults,
//    present but not an object = error;
//  - unknown members are ignored at every level;
//  - a known member of the wrong JSON type is an error: numbers must be
//    non-negative JSON integers ("8", 8.0, -1 are rejected), booleans must be
//    true/false, `twin_socket` and `migration` must be objects;
//  - values outside a sane range are errors: max_msg_fds > kMaxMsgFdsLimit,
//    max_data_xfer_size 0 or > kMaxDataXferSizeLimit, pgsizes 0, a 32-bit
//    member (max_dma_maps, fd_index) above 2^32 - 1, migration.pgsize 0 or
//    not a power of two;
//  - text longer than kMaxCapabilitiesJsonSize, or holding a NUL, is an error
//    (nlohmann would stop at the NUL and ignore what follows).
// Duplicate keys: the last one wins. Every error carries EINVAL (row 10, 12).
absl::StatusOr<Capabilities> ParseCapabilities(std::string_view json);

// JSON text for `capabilities` holding the chosen members, as plain JSON
// numbers and booleans, in the order of the table in PROTOCOL.md 3.3, with no
// whitespace and no NUL, e.g. {"capabilities":{"max_msg_fds":8}}. With no
// member chosen the result is {"capabilities":{}}.
std::string SerializeCapabilities(const Capabilities& capabilities,
                                  const CapabilityMembers& members);

}  // namespace vfu::wire

#endif  // VFU_WIRE_CAPABILITIES_H_
