// What a VMM learns about the GPIO device before touching a register:
// DEVICE_GET_INFO, region and IRQ info, and config space.
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "devices/gpio/gpio_test_fixture.h"
#include "gtest/gtest.h"

namespace vfu::devices {
namespace {

uint16_t Load16(const std::vector<uint8_t>& bytes, size_t offset) {
  return static_cast<uint16_t>(bytes[offset] | bytes[offset + 1] << 8);
}

uint32_t Load32(const std::vector<uint8_t>& bytes, size_t offset) {
  return Load16(bytes, offset) | uint32_t{Load16(bytes, offset + 2)} << 16;
}

// Capability ID -> offset, walking the chain as a driver does.
std::map<uint8_t, uint32_t> Capabilities(const std::vector<uint8_t>& config) {
  std::map<uint8_t, uint32_t> found;
  uint32_t offset = config[PCI_CAPABILITY_LIST];
  for (int hops = 0; offset != 0 && offset + 1 < config.size() && hops < 48; ++hops) {
    found[config[offset]] = offset;
    offset = config[offset + 1];
  }
  return found;
}

using GpioLayoutTest = GpioTest;

// Nine regions and five IRQ indexes, as the PCI device model reports.
TEST_F(GpioLayoutTest, DeviceInfo) {
  ASSERT_OK_AND_ASSIGN(wire::DeviceInfo info, client_->GetDeviceInfo());
  EXPECT_EQ(info.num_regions, 9u);
  EXPECT_EQ(info.num_irqs, 5u);
  EXPECT_NE(info.flags & VFIO_DEVICE_FLAGS_PCI, 0u);
}

// BAR0 is the 4 KiB register file, read and write, not mappable; config
// space is 256 bytes; nothing else exists.
TEST_F(GpioLayoutTest, RegionInfo) {
  ASSERT_OK_AND_ASSIGN(RegionInfo bar0, client_->GetRegionInfo(0));
  EXPECT_EQ(bar0.info.size, GpioDevice::kBarSize);
  EXPECT_EQ(bar0.info.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                               VFIO_REGION_INFO_FLAG_MMAP),
            uint32_t{VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE});
  EXPECT_FALSE(bar0.fd.valid());
  ASSERT_OK_AND_ASSIGN(RegionInfo config, client_->GetRegionInfo(VFIO_PCI_CONFIG_REGION_INDEX));
  EXPECT_EQ(config.info.size, 256u);
  for (uint32_t index : {1u, 2u, 3u, 4u, 5u, 6u, 8u}) {
    ASSERT_OK_AND_ASSIGN(RegionInfo region, client_->GetRegionInfo(index));
    EXPECT_EQ(region.info.size, 0u) << "region " << index;
  }
}

// One INTx line and one MSI vector; no MSI-X, ERR or REQ.
TEST_F(GpioLayoutTest, IrqInfo) {
  const uint32_t expected[] = {1, 1, 0, 0, 0};
  for (uint32_t index = 0; index < 5; ++index) {
    ASSERT_OK_AND_ASSIGN(wire::IrqInfo info, client_->GetIrqInfo(index));
    EXPECT_EQ(info.count, expected[index]) << "IRQ index " << index;
  }
  // INTx masks itself on every delivery, as under the kernel's vfio-pci.
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo intx, client_->GetIrqInfo(kIntxIrq));
  EXPECT_EQ(intx.flags,
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo msi, client_->GetIrqInfo(kMsiIrq));
  EXPECT_EQ(msi.flags, static_cast<uint32_t>(VFIO_IRQ_INFO_EVENTFD));
}

// The IDs, class and interrupt pin, and an MSI capability offering exactly
// one vector, as GET_IRQ_INFO says.
TEST_F(GpioLayoutTest, ConfigSpace) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> config,
                       client_->RegionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 256));
  ASSERT_EQ(config.size(), 256u);
  EXPECT_EQ(Load16(config, PCI_VENDOR_ID), GpioDevice::kVendorId);
  EXPECT_EQ(Load16(config, PCI_DEVICE_ID), GpioDevice::kDeviceId);
  EXPECT_EQ(Load32(config, PCI_CLASS_REVISION) >> 8, GpioDevice::kClassCode);
  EXPECT_EQ(config[PCI_REVISION_ID], GpioDevice::kRevision);
  EXPECT_EQ(Load16(config, PCI_SUBSYSTEM_VENDOR_ID), GpioDevice::kVendorId);
  EXPECT_EQ(config[PCI_INTERRUPT_PIN], 1);  // INTA
  EXPECT_NE(Load16(config, PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);

  std::map<uint8_t, uint32_t> caps = Capabilities(config);
  ASSERT_TRUE(caps.contains(PCI_CAP_ID_MSI));
  EXPECT_TRUE(caps.contains(PCI_CAP_ID_PM));
  EXPECT_FALSE(caps.contains(PCI_CAP_ID_MSIX));
  const uint16_t msi_flags = Load16(config, caps[PCI_CAP_ID_MSI] + PCI_MSI_FLAGS);
  EXPECT_EQ(msi_flags & PCI_MSI_FLAGS_QMASK, 0);  // one vector capable
  EXPECT_EQ(msi_flags & PCI_MSI_FLAGS_ENABLE, 0);
}

// BAR0 sizing: all ones reads back a 4 KiB, 32-bit, non-prefetchable
// memory BAR.
TEST_F(GpioLayoutTest, Bar0Sizing) {
  const std::vector<uint8_t> ones = {0xff, 0xff, 0xff, 0xff};
  ASSERT_OK(client_->RegionWrite(VFIO_PCI_CONFIG_REGION_INDEX, PCI_BASE_ADDRESS_0, ones));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bar,
                       client_->RegionRead(VFIO_PCI_CONFIG_REGION_INDEX, PCI_BASE_ADDRESS_0, 4));
  EXPECT_EQ(Load32(bar, 0), 0xfffff000u);
}

}  // namespace
}  // namespace vfu::devices
