// DeviceSnapshot: everything a vfio-user server tells about its device
// without being disturbed, gathered once so the listing and the spec
// conversion are pure functions of it.
//
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(path));
//   VFU_ASSIGN_OR_RETURN(DeviceSnapshot device, ProbeDevice(*client, path));
//
// Probing sends DEVICE_GET_INFO, DEVICE_GET_REGION_INFO for every region,
// DEVICE_GET_IRQ_INFO for every IRQ index, and REGION_READs of config space.
// Nothing is written, so probing a device in use changes none of its state.
#ifndef VFU_TOOLS_INSPECT_DEVICE_SNAPSHOT_H_
#define VFU_TOOLS_INSPECT_DEVICE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/client/client.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/region_info.h"

namespace vfu::inspect {

// Region index of PCI config space, and the most region / IRQ indexes
// probed (a hostile count must not make the probe run for hours).
inline constexpr uint32_t kConfigRegionIndex = 7;
inline constexpr uint32_t kMaxProbedRegions = 256;
inline constexpr uint32_t kMaxProbedIrqs = 64;

struct RegionSnapshot {
  uint32_t index = 0;
  // DEVICE_GET_REGION_INFO's outcome; `info` is meaningful when OK.
  absl::Status status;
  wire::RegionInfoReply info;
  // The server attached an fd to mmap (closed again: we never map).
  bool fd_attached = false;

  bool implemented() const { return status.ok() && info.size > 0; }
};

struct IrqSnapshot {
  uint32_t index = 0;
  absl::Status status;
  wire::IrqInfo info;
};

struct DeviceSnapshot {
  std::string socket_path;
  uint16_t minor_version = 0;
  wire::Capabilities server_capabilities;
  wire::DeviceInfo device_info;
  std::vector<RegionSnapshot> regions;
  std::vector<IrqSnapshot> irqs;
  // Region 7 (at most 4096 bytes of it); empty with config_status saying
  // why when it could not be read.
  std::vector<uint8_t> config;
  absl::Status config_status;
  // Oddities of the probe itself (counts capped, ...).
  std::vector<std::string> warnings;

  // Region / IRQ `index`, or null when it was not probed.
  const RegionSnapshot* region(uint32_t index) const;
  const IrqSnapshot* irq(uint32_t index) const;
  // The vector count of IRQ index `index`; 0 when unknown.
  uint32_t irq_count(uint32_t index) const;
};

// Probes the device behind `client`. Fails only when DEVICE_GET_INFO fails
// or the connection breaks; a region or IRQ index the server refuses is
// recorded in its snapshot.
absl::StatusOr<DeviceSnapshot> ProbeDevice(Client& client, const std::string& socket_path);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_DEVICE_SNAPSHOT_H_
