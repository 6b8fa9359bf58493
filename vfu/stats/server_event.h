// ServerEvent: one thing that happened in a running server, as the control
// plane's event feed reports it (proto/control.proto, Event).
#ifndef VFU_STATS_SERVER_EVENT_H_
#define VFU_STATS_SERVER_EVENT_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace vfu {

// Who a client is (SO_PEERCRED at accept) and what VERSION negotiated.
struct ClientIdentity {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  absl::Time connected_at;
  bool negotiated = false;
  uint16_t version_major = 0;
  uint16_t version_minor = 0;
  uint32_t max_msg_fds = 0;
  uint64_t max_data_xfer_size = 0;
  uint64_t max_dma_maps = 0;
  uint64_t migration_pgsize = 0;
  bool twin_socket = false;
  bool write_multiple = false;
};

struct ServerEvent {
  // The values match proto/control.proto's Event.Kind.
  enum class Kind {
    kClientAttached = 1,
    kClientDetached = 2,
    kClientRefused = 3,
    kDeviceReset = 4,
    kDeviceFlr = 5,
    kMigrationStateChanged = 6,
    kProtocolError = 7,
    kDeviceAdded = 8,
    kDeviceRemoved = 9,
  };
  // Assigned by the EventBus: 1, 2, 3, ... in publication order.
  uint64_t sequence = 0;
  absl::Time time;
  Kind kind = Kind::kClientAttached;
  std::string device;
  std::string reason;
  std::optional<ClientIdentity> client;
  // kProtocolError: the command and the errno of the error reply.
  uint16_t command = 0;
  uint32_t errno_value = 0;
};

}  // namespace vfu

#endif  // VFU_STATS_SERVER_EVENT_H_
