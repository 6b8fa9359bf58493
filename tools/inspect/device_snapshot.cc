#include "tools/inspect/device_snapshot.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/region_io.h"
#include "vfu/base/status_macros.h"

namespace vfu::inspect {
namespace {

// The client is unusable after these; other errors concern one request.
bool ConnectionLost(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDataLoss(status) ||
         absl::IsDeadlineExceeded(status);
}

}  // namespace

const RegionSnapshot* DeviceSnapshot::region(uint32_t index) const {
  for (const RegionSnapshot& r : regions) {
    if (r.index == index) return &r;
  }
  return nullptr;
}

const IrqSnapshot* DeviceSnapshot::irq(uint32_t index) const {
  for (const IrqSnapshot& i : irqs) {
    if (i.index == index) return &i;
  }
  return nullptr;
}

uint32_t DeviceSnapshot::irq_count(uint32_t index) const {
  const IrqSnapshot* i = irq(index);
  return i != nullptr && i->status.ok() ? i->info.count : 0;
}

absl::StatusOr<DeviceSnapshot> ProbeDevice(Client& client, const std::string& socket_path) {
  DeviceSnapshot device;
  device.socket_path = socket_path;
  device.minor_version = client.server_minor_version();
  device.server_capabilities = client.server_capabilities();
  VFU_ASSIGN_OR_RETURN(device.device_info, client.GetDeviceInfo());

  uint32_t num_regions = device.device_info.num_regions;
  if (num_regions > kMaxProbedRegions) {
    device.warnings.push_back(absl::StrFormat(
        "the device reports %d regions; only the first %d were probed", num_regions,
        kMaxProbedRegions));
    num_regions = kMaxProbedRegions;
  }
  for (uint32_t i = 0; i < num_regions; ++i) {
    RegionSnapshot region;
    region.index = i;
    absl::StatusOr<RegionInfo> info = client.GetRegionInfo(i);
    if (info.ok()) {
      region.info = std::move(info->info);
      region.fd_attached = info->fd.valid();
    } else {
      if (ConnectionLost(info.status())) return info.status();
      region.status = info.status();
    }
    device.regions.push_back(std::move(region));
  }

  uint32_t num_irqs = device.device_info.num_irqs;
  if (num_irqs > kMaxProbedIrqs) {
    device.warnings.push_back(absl::StrFormat(
        "the device reports %d IRQ indexes; only the first %d were probed", num_irqs,
        kMaxProbedIrqs));
    num_irqs = kMaxProbedIrqs;
  }
  for (uint32_t i = 0; i < num_irqs; ++i) {
    IrqSnapshot irq;
    irq.index = i;
    absl::StatusOr<wire::IrqInfo> info = client.GetIrqInfo(i);
    if (info.ok()) {
      irq.info = *info;
    } else {
      if (ConnectionLost(info.status())) return info.status();
      irq.status = info.status();
    }
    device.irqs.push_back(std::move(irq));
  }

  const RegionSnapshot* config = device.region(kConfigRegionIndex);
  if (config == nullptr) {
    device.config_status = absl::NotFoundError("the device has no region 7 (config space)");
  } else if (!config->status.ok()) {
    device.config_status = config->status;
  } else if (config->info.size == 0) {
    device.config_status = absl::NotFoundError("region 7 (config space) has size 0");
  } else {
    const uint64_t size = std::min<uint64_t>(config->info.size, kExpressConfigSize);
    absl::StatusOr<std::vector<uint8_t>> bytes =
        ReadRegionRange(client, kConfigRegionIndex, 0, size);
    if (bytes.ok()) {
      device.config = std::move(*bytes);
    } else {
      // DataLoss here may be a short read, which leaves the client usable.
      if (absl::IsUnavailable(bytes.status()) || absl::IsDeadlineExceeded(bytes.status())) {
        return bytes.status();
      }
      device.config_status = bytes.status();
    }
  }
  return device;
}

}  // namespace vfu::inspect
