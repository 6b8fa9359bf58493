// Session's migration commands: SET MIG_DEVICE_STATE, MIG_DATA_READ and
// MIG_DATA_WRITE. The state machine is MigrationEngine's; the session has
// already quiesced the device for a state change (Session::QuiesceFor).
#include <utility>
#include <variant>

#include "vfu/base/status_macros.h"
#include "vfu/engine/session.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/migration_data.h"

namespace vfu {

absl::Status Session::HandleSetMigrationState(const wire::DeviceFeatureRequest& request,
                                              const InboundMessage& message,
                                              std::vector<uint8_t>& reply) {
  const uint32_t target = std::get<wire::FeatureMigState>(request.data).device_state;
  VFU_ASSIGN_OR_RETURN(std::vector<MigrationState> path, migration_->Plan(target));
  // A same-state SET (QEMU sends them) succeeds without the device.
  VFU_RETURN_IF_ERROR(migration_->Walk(path));
  wire::EncodeDeviceFeatureEchoReply(message.payload(), reply);
  return absl::OkStatus();
}

absl::Status Session::HandleMigDataRead(const InboundMessage& message,
                                        std::vector<uint8_t>& reply) {
  const uint64_t max = negotiated_->reply.capabilities.max_data_xfer_size;
  VFU_ASSIGN_OR_RETURN(wire::MigDataReadRequest request,
                       wire::DecodeMigDataReadRequest(message.payload(), message.fds.size(), max));
  VFU_ASSIGN_OR_RETURN(absl::Span<const uint8_t> data,
                       migration_->ReadData(request.size, read_buffer_));
  wire::EncodeMigDataReadReply(wire::MigDataReadReply{.data = data}, reply);
  return absl::OkStatus();
}

absl::Status Session::HandleMigDataWrite(const InboundMessage& message) {
  const uint64_t max = negotiated_->reply.capabilities.max_data_xfer_size;
  VFU_ASSIGN_OR_RETURN(wire::MigDataWriteRequest request,
                       wire::DecodeMigDataWriteRequest(message.payload(), message.fds.size(), max));
  return migration_->WriteData(request.data);
}

}  // namespace vfu
