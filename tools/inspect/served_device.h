// ServedDevice: the end-to-end test device, a vfu::PciDevice built from a
// PciDeviceSpec with one of everything the inspector decodes (MSI, MSI-X in
// a BAR, power management, PCI Express with a serial number, vendor
// capabilities, 32-bit, 64-bit prefetchable and I/O BARs, a sparse-mmap
// region, a ROM and a device-specific region), served in-process at a short
// socket path. Tests compare what inspect reports with TestDeviceSpec().
#ifndef VFU_TOOLS_INSPECT_SERVED_DEVICE_H_
#define VFU_TOOLS_INSPECT_SERVED_DEVICE_H_

#include <linux/vfio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "testing/temp_dir.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/pci_device.h"
#include "vfu/device/pci_device_spec.h"
#include "vfu/pci/capabilities.h"
#include "vfu/server/server.h"

namespace vfu::inspect::testing {

inline constexpr uint64_t kServedSerial = 0x0102030405060708;
inline constexpr uint32_t kServedRegionType = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1b36;
inline constexpr uint32_t kServedRegionSubtype = 7;
inline const std::vector<uint8_t> kServedVendorPayload = {0xde, 0xad, 0xbe, 0xef};
inline const std::vector<uint8_t> kServedVsecPayload = {1, 2, 3, 4, 5, 6, 7, 8};
inline constexpr uint16_t kServedVsecId = 0x1b36;

// The declared device. Move-only (regions may own fds), so built fresh for
// each use.
inline PciDeviceSpec TestDeviceSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1b36,
                   .device_id = 0x0010,
                   .subsystem_vendor_id = 0x1af4,
                   .subsystem_id = 0x1100,
                   .class_code = 0x010802,
                   .revision = 2};
  spec.express = true;
  // BAR0: the MSI-X table and PBA, the rest plain memory.
  spec.bars[0].size = 0x4000;
  spec.bars[0].kind = pci::BarKind::kMemory32;
  spec.bars[0].backed_by_memory = true;
  // BAR2 (and 3): 64-bit prefetchable, two mappable windows.
  spec.bars[2].size = 0x10000;
  spec.bars[2].kind = pci::BarKind::kMemory64;
  spec.bars[2].prefetchable = true;
  spec.bars[2].backed_by_memory = true;
  spec.bars[2].mmap_areas = {{0, 0x1000}, {0x4000, 0x2000}};
  spec.bars[4].size = 0x100;
  spec.bars[4].kind = pci::BarKind::kIo;
  spec.bars[4].backed_by_memory = true;
  spec.rom.size = 0x10000;
  spec.rom.writable = false;
  spec.rom.backed_by_memory = true;
  RegionSpec& device_region = spec.device_regions.emplace_back();
  device_region.size = 0x2000;
  device_region.backed_by_memory = true;
  device_region.mmap_areas = {{0, 0x2000}};
  device_region.type = wire::RegionType{kServedRegionType, kServedRegionSubtype};
  spec.interrupts = {.intx = true,
                     .msi_vectors = 8,
                     .msi_64bit = true,
                     .msi_per_vector_mask = true,
                     .msix_vectors = 32,
                     .msix_bar = 0,
                     .msix_table_offset = 0x2000,
                     .msix_pba_offset = 0x3000,
                     .err = true,
                     .req = false};
  spec.power_management = true;
  absl::StatusOr<pci::Capability> vendor = pci::VendorSpecific(kServedVendorPayload);
  if (vendor.ok()) spec.capabilities.push_back(*std::move(vendor));
  absl::StatusOr<pci::ExtendedCapability> vsec =
      pci::VendorSpecificExtended(kServedVsecId, 1, kServedVsecPayload);
  if (vsec.ok()) spec.extended_capabilities.push_back(*std::move(vsec));
  spec.serial_number = kServedSerial;
  return spec;
}

// A PciDevice that counts the writes it receives, so tests can tell that
// inspecting a device does not change it.
class CountingDevice : public PciDevice {
 public:
  using PciDevice::PciDevice;
  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override {
    region_writes_.fetch_add(1);
    return PciDevice::OnRegionWrite(region, offset, data);
  }
  void OnConfigWrite(uint32_t offset, absl::Span<const uint8_t> data) override {
    config_writes_.fetch_add(1);
  }
  int region_writes() const { return region_writes_.load(); }
  int config_writes() const { return config_writes_.load(); }

 private:
  std::atomic<int> region_writes_{0};
  std::atomic<int> config_writes_{0};
};

// `device` served at a fresh socket until destruction.
class ServedDevice {
 public:
  static absl::StatusOr<std::unique_ptr<ServedDevice>> Start(Device& device,
                                                             ServerOptions options = {}) {
    std::unique_ptr<ServedDevice> served(new ServedDevice());
    VFU_ASSIGN_OR_RETURN(served->server_, Server::Create(std::move(options)));
    VFU_RETURN_IF_ERROR(served->server_->AddDevice(served->socket_path(), device));
    VFU_RETURN_IF_ERROR(served->server_->Start());
    return served;
  }
  ~ServedDevice() {
    if (server_ != nullptr) server_->Stop();
  }

  std::string socket_path() const { return dir_.File("dev.sock"); }

 private:
  ServedDevice() = default;

  vfu::testing::ScopedTempDir dir_;
  std::unique_ptr<Server> server_;
};

}  // namespace vfu::inspect::testing

#endif  // VFU_TOOLS_INSPECT_SERVED_DEVICE_H_
