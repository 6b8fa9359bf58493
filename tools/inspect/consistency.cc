#include "tools/inspect/consistency.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/numeric/bits.h"
#include "absl/strings/str_format.h"
#include "tools/inspect/pci_names.h"

namespace vfu::inspect {
namespace {

constexpr uint32_t kFirstDeviceSpecificRegion = VFIO_PCI_NUM_REGIONS;
constexpr uint64_t kMsixEntrySize = PCI_MSIX_ENTRY_SIZE;

template <typename... Args>
void Add(std::vector<std::string>& out, const absl::FormatSpec<Args...>& format,
         const Args&... args) {
  out.push_back(absl::StrFormat(format, args...));
}

uint64_t RegionSize(const DeviceSnapshot& device, uint32_t index) {
  const RegionSnapshot* r = device.region(index);
  return r != nullptr && r->implemented() ? r->info.size : 0;
}

void CheckBars(const DeviceSnapshot& device, const ConfigSpaceInfo& config,
               std::vector<std::string>& out) {
  for (const ConfigBar& bar : config.bars) {
    const uint64_t size = RegionSize(device, bar.index);
    if (bar.kind == ConfigBar::Kind::kUpperHalf) {
      if (size != 0) {
        Add(out, "region %d has %d bytes, but BAR %d is the upper half of 64-bit BAR %d",
            bar.index, size, bar.index, bar.index - 1);
      }
      continue;
    }
    if (size == 0) {
      if (bar.raw != 0) {
        Add(out, "BAR %d reads 0x%08x, but region %d is not implemented", bar.index, bar.raw,
            bar.index);
      }
      continue;
    }
    if (!absl::has_single_bit(size)) {
      Add(out, "region %d: size %d is not a power of two, as a BAR's must be", bar.index, size);
    }
  }
  if (config.rom.has_value()) {
    const uint64_t size = RegionSize(device, VFIO_PCI_ROM_REGION_INDEX);
    if (size != 0 && !absl::has_single_bit(size)) {
      Add(out, "region 6 (ROM): size %d is not a power of two", size);
    }
  }
}

void CheckRegions(const DeviceSnapshot& device, const ConfigSpaceInfo& config,
                  std::vector<std::string>& out) {
  if ((device.device_info.flags & VFIO_DEVICE_FLAGS_PCI) == 0) {
    Add(out, "device flags 0x%x lack VFIO_DEVICE_FLAGS_PCI; config space decoded anyway",
        device.device_info.flags);
  }
  if (device.device_info.num_regions < VFIO_PCI_NUM_REGIONS) {
    Add(out, "%d regions reported; a vfio-pci device has at least %d",
        device.device_info.num_regions, VFIO_PCI_NUM_REGIONS);
  }
  const uint64_t config_size = RegionSize(device, VFIO_PCI_CONFIG_REGION_INDEX);
  if (config_size > kExpressConfigSize) {
    Add(out, "region 7 (config space) is %d bytes; only the first %d are decoded", config_size,
        kExpressConfigSize);
  }
  if (const RegionSnapshot* r = device.region(VFIO_PCI_CONFIG_REGION_INDEX);
      r != nullptr && r->implemented() && (r->info.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
    Add(out, "region 7 (config space) is mappable; config accesses must be messages");
  }
  if (config.Find<ExpressCapability>() != nullptr && !config.has_extended_space()) {
    Add(out, "PCI Express capability in a %d-byte config space (4096 expected)", config.size);
  }
  for (const RegionSnapshot& r : device.regions) {
    if (r.index >= kFirstDeviceSpecificRegion && r.implemented() && !r.info.type.has_value()) {
      Add(out, "region %d: device-specific region without a TYPE capability", r.index);
    }
  }
}

// Does [offset, offset + length) lie in memory BAR `bar`?
void CheckMsixPlacement(const DeviceSnapshot& device, const ConfigSpaceInfo& config,
                        const char* what, uint8_t bar, uint64_t offset, uint64_t length,
                        std::vector<std::string>& out) {
  if (bar >= PCI_STD_NUM_BARS) {
    Add(out, "MSI-X %s in BAR indicator %d, which names no BAR", what, bar);
    return;
  }
  const uint64_t size = RegionSize(device, bar);
  if (size == 0) {
    Add(out, "MSI-X %s in BAR %d, which is not implemented", what, bar);
    return;
  }
  if (bar < config.bars.size() && config.bars[bar].kind == ConfigBar::Kind::kIo) {
    Add(out, "MSI-X %s in BAR %d, an I/O BAR", what, bar);
  }
  if (offset > size || length > size - offset) {
    Add(out, "MSI-X %s [0x%x, 0x%x) runs past BAR %d's %d bytes", what, offset, offset + length,
        bar, size);
  }
}

void CheckInterrupts(const DeviceSnapshot& device, const ConfigSpaceInfo& config,
                     std::vector<std::string>& out) {
  const uint32_t intx = device.irq_count(VFIO_PCI_INTX_IRQ_INDEX);
  if (config.interrupt_pin != 0 && intx == 0) {
    Add(out, "interrupt pin %d set, but the INTx IRQ index has no vector", config.interrupt_pin);
  }
  if (config.interrupt_pin == 0 && intx != 0) {
    Add(out, "INTx has %d vector(s), but the interrupt pin register is 0", intx);
  }
  if (config.interrupt_pin > 4) {
    Add(out, "interrupt pin %d is not one of INTA..INTD", config.interrupt_pin);
  }

  const uint32_t msi_count = device.irq_count(VFIO_PCI_MSI_IRQ_INDEX);
  if (const MsiCapability* msi = config.Find<MsiCapability>()) {
    if (msi->vectors_capable != msi_count) {
      Add(out, "MSI capability offers %d vectors, IRQ info reports %d", msi->vectors_capable,
          msi_count);
    }
  } else if (msi_count != 0) {
    Add(out, "IRQ info reports %d MSI vectors, but there is no MSI capability", msi_count);
  }

  const uint32_t msix_count = device.irq_count(VFIO_PCI_MSIX_IRQ_INDEX);
  if (const MsixCapability* msix = config.Find<MsixCapability>()) {
    if (msix->table_size != msix_count) {
      Add(out, "MSI-X capability has %d table entries, IRQ info reports %d vectors",
          msix->table_size, msix_count);
    }
    CheckMsixPlacement(device, config, "table", msix->table_bar, msix->table_offset,
                       kMsixEntrySize * msix->table_size, out);
    // One pending bit per vector, in qwords.
    CheckMsixPlacement(device, config, "PBA", msix->pba_bar, msix->pba_offset,
                       8 * ((uint64_t{msix->table_size} + 63) / 64), out);
  } else if (msix_count != 0) {
    Add(out, "IRQ info reports %d MSI-X vectors, but there is no MSI-X capability", msix_count);
  }

  for (uint32_t index : {VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_ERR_IRQ_INDEX,
                         VFIO_PCI_REQ_IRQ_INDEX}) {
    const uint32_t count = device.irq_count(index);
    if (count > 1) Add(out, "%s has %d vectors; at most 1 is defined", IrqIndexName(index), count);
  }
  if (msi_count > 32 || (msi_count != 0 && !absl::has_single_bit(msi_count))) {
    Add(out, "MSI has %d vectors; MSI allows 1, 2, 4, 8, 16 or 32", msi_count);
  }
  if (msix_count > 2048) Add(out, "MSI-X has %d vectors; at most 2048 are defined", msix_count);
}

}  // namespace

std::vector<std::string> CheckConsistency(const DeviceSnapshot& device,
                                          const ConfigSpaceInfo& config) {
  std::vector<std::string> out;
  CheckBars(device, config, out);
  CheckRegions(device, config, out);
  CheckInterrupts(device, config, out);
  return out;
}

}  // namespace vfu::inspect
