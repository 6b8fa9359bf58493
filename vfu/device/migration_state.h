// MigrationState: the VFIO migration v2 device states as vfio-user carries
// them (DEVICE_FEATURE MIG_DEVICE_STATE), and the path a state change takes.
//
// A state change is made of direct arcs, the only ones a device ever sees:
//
//   STOP -> RUNNING       RUNNING -> STOP        STOP_COPY -> STOP
//   STOP -> STOP_COPY     RUNNING -> PRE_COPY    RESUMING -> STOP
//   STOP -> RESUMING      PRE_COPY -> RUNNING    PRE_COPY -> STOP_COPY
//
// Any other change walks the shortest chain of these whose interior states
// are neither PRE_COPY nor STOP_COPY (the kernel's and libvfio-user's
// table). STOP_COPY -> PRE_COPY is forbidden, and ERROR and the P2P states
// are never entered.
#ifndef VFU_DEVICE_MIGRATION_STATE_H_
#define VFU_DEVICE_MIGRATION_STATE_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vfu {

// Values as on the wire (enum vfio_device_mig_state).
enum class MigrationState : uint32_t {
  kError = 0,
  kStop = 1,
  kRunning = 2,
  kStopCopy = 3,
  kResuming = 4,
  kRunningP2p = 5,  // never entered
  kPreCopy = 6,
  kPreCopyP2p = 7,  // never entered
};

// One past the largest value the wire may name.
inline constexpr uint32_t kMigrationStateLimit = 8;

// "STOP", "RUNNING", ...; "INVALID" for values >= 8.
std::string_view MigrationStateName(MigrationState state);

// True for the five states a device can be in (STOP, RUNNING, STOP_COPY,
// RESUMING, PRE_COPY).
bool IsEnterableMigrationState(MigrationState state);

// True when `from` -> `to` is one of the nine direct arcs above.
bool IsMigrationArc(MigrationState from, MigrationState to);

// The states a change from `from` to `to` passes through, in order, not
// including `from` and ending with `to`: each consecutive pair (starting
// with `from`) is a direct arc. Empty when `from == to`. An EINVAL status
// (vfu/wire/errno_status.h) when `to` is ERROR, a P2P state or >= 8, when
// `from` is not an enterable state, and for STOP_COPY -> PRE_COPY.
absl::StatusOr<std::vector<MigrationState>> MigrationPath(MigrationState from,
                                                          MigrationState to);

}  // namespace vfu

#endif  // VFU_DEVICE_MIGRATION_STATE_H_
