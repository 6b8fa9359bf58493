// A hand-built DeviceSnapshot of a device with one of everything (three
// BAR kinds, ROM, a device-specific region, every decoded capability plus
// unknown ones, all five IRQ indexes), for the listing, consistency and
// spec tests. No server involved: the tests check pure functions.
#ifndef VFU_TOOLS_INSPECT_TEST_SNAPSHOT_H_
#define VFU_TOOLS_INSPECT_TEST_SNAPSHOT_H_

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>

#include "tools/inspect/config_image.h"
#include "tools/inspect/device_snapshot.h"

namespace vfu::inspect::testing {

inline constexpr uint64_t kTestSerial = 0x0011223344556677;
inline constexpr uint32_t kTestRegionType = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1af4;

// Config space of the test device; tests change it before building the
// snapshot to make it inconsistent.
inline ConfigImage TestConfigImage() {
  ConfigImage image(4096);
  image.Identity(0x1af4, 0x1041, 0x020000, 0x01)
      .Set16(PCI_COMMAND, PCI_COMMAND_MEMORY)
      .Set32(PCI_BASE_ADDRESS_0, 0xfe000000)
      .Set32(PCI_BASE_ADDRESS_2, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH)
      .Set32(PCI_BASE_ADDRESS_3, 0x1)
      .Set32(PCI_BASE_ADDRESS_4, 0xc001)
      .Set16(PCI_SUBSYSTEM_VENDOR_ID, 0x1af4)
      .Set16(PCI_SUBSYSTEM_ID, 0x1100)
      .Set8(PCI_INTERRUPT_PIN, 1)
      .AddCapability(0x40, PCI_CAP_ID_PM, Concat({Le16(3), Le16(PCI_PM_CTRL_NO_SOFT_RESET)}))
      .AddCapability(0x48, PCI_CAP_ID_MSI,
                     Concat({Le16((2 << 1) | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT),
                             Le32(0), Le32(0), Le16(0), {0, 0}, Le32(0), Le32(0)}))
      .AddCapability(0x60, PCI_CAP_ID_MSIX, Concat({Le16(16 - 1), Le32(0x2000), Le32(0x3000)}))
      .AddCapability(0x6c, PCI_CAP_ID_EXP,
                     Concat({Le16(2 | PCI_EXP_TYPE_ENDPOINT << 4), Le32(0),
                             Le16(PCI_EXP_DEVCTL_READRQ_512B), Le16(0),
                             Le32(PCI_EXP_LNKCAP_SLS_2_5GB | 1 << 4), Le16(0),
                             Le16(PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1)}))
      .AddCapability(0xa8, PCI_CAP_ID_VNDR, {8, 1, 2, 3, 4, 5})
      .AddCapability(0xb0, 0x42, {0xaa, 0xbb})
      .AddExtended(0x100, PCI_EXT_CAP_ID_DSN, 1,
                   Concat({Le32(static_cast<uint32_t>(kTestSerial)),
                           Le32(static_cast<uint32_t>(kTestSerial >> 32))}))
      .AddExtended(0x10c, PCI_EXT_CAP_ID_VNDR, 1,
                   Concat({Le32(0x1234 | 2 << 16 | 16u << 20), {9, 9, 9, 9, 9, 9, 9, 9}}))
      .AddExtended(0x11c, 0x2a, 1, {0x5a});
  return image;
}

inline RegionSnapshot TestRegion(uint32_t index, uint64_t size, uint32_t flags) {
  RegionSnapshot r;
  r.index = index;
  r.info.index = index;
  r.info.size = size;
  r.info.flags = flags;
  return r;
}

inline IrqSnapshot TestIrq(uint32_t index, uint32_t count, uint32_t flags) {
  IrqSnapshot irq;
  irq.index = index;
  irq.info.index = index;
  irq.info.count = count;
  irq.info.flags = flags;
  return irq;
}

// The snapshot of the test device with config space `image`.
inline DeviceSnapshot TestSnapshot(const ConfigImage& image = TestConfigImage()) {
  constexpr uint32_t kRw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  DeviceSnapshot device;
  device.socket_path = "/run/vfu/net0.sock";
  device.device_info = {.argsz = 16,
                        .flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
                        .num_regions = 10,
                        .num_irqs = 5};
  device.regions.push_back(TestRegion(0, 0x4000, kRw));
  device.regions.push_back(TestRegion(1, 0, 0));
  RegionSnapshot bar2 = TestRegion(2, 0x10000, kRw | VFIO_REGION_INFO_FLAG_MMAP);
  bar2.info.sparse_mmap = std::vector<wire::SparseMmapArea>{{0, 0x1000}, {0x2000, 0x1000}};
  bar2.fd_attached = true;
  device.regions.push_back(bar2);
  device.regions.push_back(TestRegion(3, 0, 0));
  device.regions.push_back(TestRegion(4, 0x100, kRw));
  device.regions.push_back(TestRegion(5, 0, 0));
  device.regions.push_back(TestRegion(6, 0x10000, VFIO_REGION_INFO_FLAG_READ));
  device.regions.push_back(TestRegion(7, 4096, kRw));
  device.regions.push_back(TestRegion(8, 0, 0));
  RegionSnapshot dev9 = TestRegion(9, 0x1000, kRw);
  dev9.info.type = wire::RegionType{kTestRegionType, 1};
  device.regions.push_back(dev9);
  device.irqs.push_back(TestIrq(
      0, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED));
  device.irqs.push_back(TestIrq(1, 4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE));
  device.irqs.push_back(TestIrq(2, 16, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE));
  device.irqs.push_back(TestIrq(3, 1, VFIO_IRQ_INFO_EVENTFD));
  device.irqs.push_back(TestIrq(4, 0, 0));
  device.config = image.bytes();
  return device;
}

}  // namespace vfu::inspect::testing

#endif  // VFU_TOOLS_INSPECT_TEST_SNAPSHOT_H_
