#include "vfu/engine/migration_engine.h"

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

using wire::Command;
using wire::WireError;

absl::Status NotMigratable() {
  return WireError(ENOTSUP, "this device does not support migration");
}

}  // namespace

MigrationState MigrationEngine::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

absl::Status MigrationEngine::CheckAllowed(Command command) const {
  const MigrationState state = this->state();
  bool allowed = true;
  if (state == MigrationState::kStop) {
    allowed = command == Command::kRegionRead || command == Command::kRegionWrite ||
              command == Command::kRegionWriteMulti || command == Command::kDeviceFeature ||
              command == Command::kMigDataRead;
  } else if (state == MigrationState::kStopCopy) {
    allowed = command == Command::kDeviceFeature || command == Command::kMigDataRead;
  }
  if (allowed) return absl::OkStatus();
  return WireError(EINVAL, absl::StrCat(wire::CommandName(static_cast<uint16_t>(command)),
                                        " is not allowed in migration state ",
                                        MigrationStateName(state)));
}

bool MigrationEngine::IsMigrationFeature(wire::DeviceFeature feature) {
  return feature == wire::DeviceFeature::kMigration ||
         feature == wire::DeviceFeature::kMigDeviceState ||
         feature == wire::DeviceFeature::kMigDataSize;
}

absl::Status MigrationEngine::HandleFeature(const wire::DeviceFeatureRequest& request,
                                            absl::Span<const uint8_t> payload,
                                            std::vector<uint8_t>& reply) {
  if (!device_.SupportsMigration()) return NotMigratable();
  if (request.is_probe()) {
    wire::EncodeDeviceFeatureEchoReply(payload, reply);
    return absl::OkStatus();
  }
  wire::DeviceFeatureGetReply answer{.flags = request.flags};
  switch (request.feature()) {
    case wire::DeviceFeature::kMigration:
      answer.data = wire::FeatureMigration{.flags = wire::kMigrationStopCopy |
                                                    wire::kMigrationPreCopy};
      break;
    case wire::DeviceFeature::kMigDeviceState:
      if (request.is_set()) return WireError(EINVAL, "SET MIG_DEVICE_STATE goes through Plan");
      answer.data = wire::FeatureMigState{.device_state = static_cast<uint32_t>(state())};
      break;
    case wire::DeviceFeature::kMigDataSize:
      answer.data = wire::FeatureMigDataSize{.stop_copy_length = device_.MigrationDataEstimate()};
      break;
    default:
      return WireError(EINVAL, "not a migration feature");
  }
  wire::EncodeDeviceFeatureGetReply(answer, reply);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<MigrationState>> MigrationEngine::Plan(uint32_t raw_target) const {
  if (!device_.SupportsMigration()) return NotMigratable();
  return MigrationPath(state(), static_cast<MigrationState>(raw_target));
}

absl::Status MigrationEngine::Walk(const std::vector<MigrationState>& path) {
  for (MigrationState to : path) {
    const MigrationState from = state();
    if (!IsMigrationArc(from, to)) {
      return WireError(EINVAL, absl::StrCat("no arc ", MigrationStateName(from), " -> ",
                                            MigrationStateName(to)));
    }
    // The device's status goes to the client as it is: its errno unchanged.
    VFU_RETURN_IF_ERROR(device_.OnMigrationArc(from, to));
    {
      absl::MutexLock lock(&mu_);
      state_ = to;
    }
    Notify(from, to);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Span<const uint8_t>> MigrationEngine::ReadData(uint32_t size,
                                                                    std::vector<uint8_t>& buffer) {
  const MigrationState state = this->state();
  if (!device_.SupportsMigration()) {
    return WireError(EINVAL, "MIG_DATA_READ: this device does not support migration");
  }
  if (state != MigrationState::kPreCopy && state != MigrationState::kStopCopy) {
    return WireError(EINVAL, absl::StrCat("MIG_DATA_READ in migration state ",
                                          MigrationStateName(state)));
  }
  buffer.resize(size);
  VFU_ASSIGN_OR_RETURN(size_t n, device_.ReadMigrationData(absl::MakeSpan(buffer)));
  if (n > size) {
    // A device bug; never send bytes it did not write.
    return WireError(EIO, absl::StrCat("the device claims ", n, " migration bytes of ", size));
  }
  return absl::MakeConstSpan(buffer.data(), n);
}

absl::Status MigrationEngine::WriteData(absl::Span<const uint8_t> data) {
  const MigrationState state = this->state();
  if (!device_.SupportsMigration()) {
    return WireError(EINVAL, "MIG_DATA_WRITE: this device does not support migration");
  }
  if (state != MigrationState::kResuming) {
    return WireError(EINVAL, absl::StrCat("MIG_DATA_WRITE in migration state ",
                                          MigrationStateName(state)));
  }
  return device_.WriteMigrationData(data);
}

void MigrationEngine::ResetToRunning() {
  MigrationState from;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
    state_ = MigrationState::kRunning;
  }
  Notify(from, MigrationState::kRunning);
}

void MigrationEngine::Notify(MigrationState from, MigrationState to) const {
  if (observer_ && from != to) observer_(from, to);
}

}  // namespace vfu
