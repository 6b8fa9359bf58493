// Session's DMA commands: DMA_MAP, DMA_UNMAP and DEVICE_FEATURE (the
// dirty-logging features here, the migration ones in MigrationEngine). The mappings themselves live in DmaMapTable,
// shared with the device's threads.
#include <cerrno>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/engine/session.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/errno_status.h"

namespace vfu {

using wire::WireError;

absl::Status Session::HandleDmaMap(InboundMessage& message) {
  VFU_ASSIGN_OR_RETURN(wire::DmaMapRequest request,
                       wire::DecodeDmaMapRequest(message.payload(), message.fds.size()));
  UniqueFd fd;
  if (!message.fds.empty()) fd = std::move(message.fds[0]);
  VFU_ASSIGN_OR_RETURN(DmaRange range, dma_.Map(request, std::move(fd)));
  device_.OnDmaMapped(range);
  return absl::OkStatus();
}

absl::Status Session::HandleDmaUnmap(const InboundMessage& message,
                                     std::vector<uint8_t>& reply) {
  VFU_ASSIGN_OR_RETURN(wire::DmaUnmapRequest request,
                       wire::DecodeDmaUnmapRequest(message.payload(), message.fds.size()));
  device_.BeforeDmaUnmap(request);
  std::vector<uint8_t> bitmap;
  VFU_ASSIGN_OR_RETURN(std::vector<DmaRange> removed,
                       dma_.Unmap(request, request.bitmap ? &bitmap : nullptr));
  for (const DmaRange& range : removed) device_.OnDmaUnmapped(range);
  wire::EncodeDmaUnmapReply(wire::DmaUnmapReplyFor(request, bitmap), reply);
  return absl::OkStatus();
}

absl::Status Session::HandleDeviceFeature(const InboundMessage& message,
                                          std::vector<uint8_t>& reply) {
  VFU_ASSIGN_OR_RETURN(wire::DeviceFeatureRequest request,
                       wire::DecodeDeviceFeatureRequest(message.payload(), message.fds.size()));
  const wire::DeviceFeature feature = request.feature();
  if (MigrationEngine::IsMigrationFeature(feature)) {
    if (feature == wire::DeviceFeature::kMigDeviceState && request.is_set() &&
        !request.is_probe()) {
      return HandleSetMigrationState(request, message, reply);
    }
    return migration_->HandleFeature(request, message.payload(), reply);
  }
  if (request.is_probe()) {
    wire::EncodeDeviceFeatureEchoReply(message.payload(), reply);
    return absl::OkStatus();
  }
  switch (feature) {
    case wire::DeviceFeature::kDmaLoggingStart:
      VFU_RETURN_IF_ERROR(dma_.StartLogging(std::get<wire::DmaLoggingControl>(request.data)));
      wire::EncodeDeviceFeatureEchoReply(message.payload(), reply);
      return absl::OkStatus();
    case wire::DeviceFeature::kDmaLoggingStop:
      VFU_RETURN_IF_ERROR(dma_.StopLogging());
      wire::EncodeDeviceFeatureEchoReply(message.payload(), reply);
      return absl::OkStatus();
    default: {
      const auto& report = std::get<wire::DmaLoggingReport>(request.data);
      std::vector<uint8_t> bitmap;
      VFU_RETURN_IF_ERROR(dma_.Report(report, bitmap));
      wire::DmaLoggingReport answer = report;
      answer.bitmap = bitmap;
      wire::EncodeDeviceFeatureGetReply({.flags = request.flags, .data = answer}, reply);
      return absl::OkStatus();
    }
  }
}

}  // namespace vfu
