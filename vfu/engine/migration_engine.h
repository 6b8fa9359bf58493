// MigrationEngine: one device's VFIO migration v2 state as the protocol
// engine drives it (PROTOCOL.md sections 4.12, 4.13 and 6).
//
// It keeps the state (RUNNING at first), walks a MIG_DEVICE_STATE change
// arc by arc through the device (Device::OnMigrationArc), moves
// MIG_DATA_READ/WRITE bytes between the wire and the device, answers the
// migration features of DEVICE_FEATURE, and says which commands the state
// allows.
//
// The state belongs to the device, not to one client: a client that goes
// away leaves it as it was (PROTOCOL.md section 8), so the runtime keeps
// one MigrationEngine per device for all its successive sessions.
// DEVICE_RESET returns it to RUNNING (ResetToRunning).
//
// A failed arc stops the walk where it is: the state is the last one the
// device reached (the start of the failed arc), the client gets the
// device's errno unchanged, and ERROR is never entered (DEVICE_RESET would
// be the only way out of it, and QEMU's recovery sends SET RUNNING first).
//
// Thread-safe; the session calls it from one command at a time.
#ifndef VFU_ENGINE_MIGRATION_ENGINE_H_
#define VFU_ENGINE_MIGRATION_ENGINE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vfu/device/device.h"
#include "vfu/device/migration_state.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/device_feature.h"

namespace vfu {

class MigrationEngine {
 public:
  // Told of every state change (`from` != `to`), after it is made, on the
  // thread that made it, with no lock held: for the runtime's event feed.
  using StateObserver = std::function<void(MigrationState from, MigrationState to)>;

  // `device` must outlive the engine.
  explicit MigrationEngine(Device& device, StateObserver observer = {})
      : device_(device), observer_(std::move(observer)) {}

  MigrationEngine(const MigrationEngine&) = delete;
  MigrationEngine& operator=(const MigrationEngine&) = delete;

  MigrationState state() const ABSL_LOCKS_EXCLUDED(mu_);

  // EINVAL when the state forbids `command`: in STOP only region access,
  // DEVICE_FEATURE and MIG_DATA_READ run; in STOP_COPY only DEVICE_FEATURE
  // and MIG_DATA_READ.
  absl::Status CheckAllowed(wire::Command command) const ABSL_LOCKS_EXCLUDED(mu_);

  // True for the features this engine answers: MIGRATION, MIG_DEVICE_STATE
  // and MIG_DATA_SIZE.
  static bool IsMigrationFeature(wire::DeviceFeature feature);

  // DEVICE_FEATURE for a migration feature (decoded `request` of
  // `payload`), except a SET of MIG_DEVICE_STATE (Plan and Walk): PROBE
  // echoes, GET answers. ENOTSUP when the device does not migrate.
  absl::Status HandleFeature(const wire::DeviceFeatureRequest& request,
                             absl::Span<const uint8_t> payload, std::vector<uint8_t>& reply)
      ABSL_LOCKS_EXCLUDED(mu_);

  // SET MIG_DEVICE_STATE, step one: the arcs from the current state to
  // `raw_target` (empty for the current state: nothing to do, not even a
  // quiesce). ENOTSUP when the device does not migrate; EINVAL for a target
  // it cannot reach (migration_state.h).
  absl::StatusOr<std::vector<MigrationState>> Plan(uint32_t raw_target) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Step two, with the device quiesced: calls OnMigrationArc for each arc
  // of `path` (from Plan, with no state change in between) and moves the
  // state along. The first failure stops it (see above).
  absl::Status Walk(const std::vector<MigrationState>& path) ABSL_LOCKS_EXCLUDED(mu_);

  // MIG_DATA_READ: up to `size` bytes (the codec has bounded it by the
  // client's max_data_xfer_size) of the device's stream, in PRE_COPY or
  // STOP_COPY only (EINVAL otherwise). `buffer` is scratch the caller
  // reuses; the returned span points into it.
  absl::StatusOr<absl::Span<const uint8_t>> ReadData(uint32_t size, std::vector<uint8_t>& buffer)
      ABSL_LOCKS_EXCLUDED(mu_);
  // MIG_DATA_WRITE: `data` into the device's stream, in RESUMING only.
  absl::Status WriteData(absl::Span<const uint8_t> data) ABSL_LOCKS_EXCLUDED(mu_);

  // DEVICE_RESET succeeded: the device runs, any migration is over.
  void ResetToRunning() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Notify(MigrationState from, MigrationState to) const;

  Device& device_;
  const StateObserver observer_;
  mutable absl::Mutex mu_;
  MigrationState state_ ABSL_GUARDED_BY(mu_) = MigrationState::kRunning;
};

}  // namespace vfu

#endif  // VFU_ENGINE_MIGRATION_ENGINE_H_
