// PciDeviceSpec: what a PCI device looks like to the client, declared up
// front. The framework turns it into config space, BARs, capabilities and
// interrupts (see PciDevice); the device author supplies only behaviour.
#ifndef VFU_DEVICE_PCI_DEVICE_SPEC_H_
#define VFU_DEVICE_PCI_DEVICE_SPEC_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vfu/base/unique_fd.h"
#include "vfu/device/ioeventfd_set.h"
#include "vfu/pci/capabilities.h"
#include "vfu/pci/config_space.h"
#include "vfu/wire/region_info.h"

namespace vfu {

// Region indexes (PROTOCOL.md section 5).
inline constexpr uint32_t kBar0Region = 0;
inline constexpr uint32_t kRomRegion = 6;
inline constexpr uint32_t kConfigRegion = 7;
inline constexpr uint32_t kVgaRegion = 8;
inline constexpr uint32_t kFirstDeviceSpecificRegion = 9;

// IRQ indexes (VFIO_PCI_*_IRQ_INDEX).
inline constexpr uint32_t kIntxIrq = 0;
inline constexpr uint32_t kMsiIrq = 1;
inline constexpr uint32_t kMsixIrq = 2;
inline constexpr uint32_t kErrIrq = 3;
inline constexpr uint32_t kReqIrq = 4;

struct RegionSpec {
  // 0 = not implemented. BARs: a power of two.
  uint64_t size = 0;
  bool readable = true;
  bool writable = true;
  // BARs only.
  pci::BarKind kind = pci::BarKind::kMemory32;
  bool prefetchable = false;
  // The framework backs the region with `size` bytes of shared memory (a
  // memfd): accesses the device does not handle go to it, and mmap_areas
  // are served from it. The device reaches it with
  // PciDevice::region_memory().
  bool backed_by_memory = false;
  // Or the device supplies the fd mmap_areas are served from (taken).
  UniqueFd fd;
  uint64_t fd_offset = 0;
  // Parts the client may mmap (offsets within the region, page aligned).
  // Empty: accesses always travel as messages.
  std::vector<wire::SparseMmapArea> mmap_areas;
  // Device-specific regions (index >= 9) must have a type.
  std::optional<wire::RegionType> type;
};

struct InterruptSpec {
  bool intx = false;
  // 0, or 1-32 (power of two): adds an MSI capability.
  uint32_t msi_vectors = 0;
  bool msi_64bit = true;
  bool msi_per_vector_mask = true;
  // 0-2048: adds an MSI-X capability whose table and PBA live in
  // `msix_bar` at the given offsets (8-byte aligned, inside the BAR). The
  // framework serves those ranges; the rest of the BAR is the device's.
  uint16_t msix_vectors = 0;
  uint8_t msix_bar = 0;
  uint32_t msix_table_offset = 0;
  uint32_t msix_pba_offset = 0;
  bool err = false;
  bool req = false;
};

// Live migration (PciDevice's migration hooks). A device opts in by naming
// its model: a destination refuses a stream of another type.
struct MigrationSpec {
  std::string device_type;
  // Version of the device's own state layout (what SaveState writes). A
  // destination accepts streams of this version and older ones.
  uint32_t device_version = 1;
};

struct PciDeviceSpec {
  pci::Identity identity;
  // PCI Express: 4 KiB config space with a PCI Express capability.
  bool express = false;
  std::array<RegionSpec, 6> bars;
  // Expansion ROM: read-only; `backed_by_memory` gives the device a buffer
  // to fill.
  RegionSpec rom;
  // Regions 9, 10, ...
  std::vector<RegionSpec> device_regions;
  InterruptSpec interrupts;
  bool power_management = true;
  // Further capabilities, in order after the framework's own.
  std::vector<pci::Capability> capabilities;
  std::vector<pci::ExtendedCapability> extended_capabilities;
  // Adds the device serial number extended capability (express only).
  std::optional<uint64_t> serial_number;
  // Doorbells the client may ring through eventfds (DEVICE_GET_REGION_IO_FDS),
  // in a writable BAR or device-specific region, outside the MSI-X table and
  // PBA. Doorbell i is PciDevice::ioeventfd(i); see ioeventfd_set.h.
  std::vector<IoeventfdSpec> ioeventfds;
  // Set: the device migrates (DEVICE_FEATURE MIGRATION, MIG_DATA_*).
  std::optional<MigrationSpec> migration;
};

}  // namespace vfu

#endif  // VFU_DEVICE_PCI_DEVICE_SPEC_H_
