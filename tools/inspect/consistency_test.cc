#include "tools/inspect/consistency.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/config_image.h"
#include "tools/inspect/test_snapshot.h"

namespace vfu::inspect {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::vfu::inspect::testing::ConfigImage;
using ::vfu::inspect::testing::TestConfigImage;
using ::vfu::inspect::testing::TestSnapshot;

std::vector<std::string> Check(const DeviceSnapshot& device) {
  absl::StatusOr<ConfigSpaceInfo> config = DecodeConfigSpace(device.config);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? CheckConsistency(device, *config) : std::vector<std::string>{};
}

// The reference device agrees with itself: no findings.
TEST(ConsistencyTest, ConsistentDeviceHasNoFindings) {
  EXPECT_THAT(Check(TestSnapshot()), IsEmpty());
}

TEST(ConsistencyTest, MsiCountMismatch) {
  DeviceSnapshot device = TestSnapshot();
  device.irqs[VFIO_PCI_MSI_IRQ_INDEX].info.count = 2;
  EXPECT_THAT(Check(device), Contains(HasSubstr("MSI capability offers 4 vectors, IRQ info reports 2")));
}

TEST(ConsistencyTest, MsiVectorsWithoutCapability) {
  ConfigImage image = TestConfigImage();
  image.Set8(0x48, 0x43);  // the MSI capability becomes an unknown one
  EXPECT_THAT(Check(TestSnapshot(image)),
              Contains(HasSubstr("IRQ info reports 4 MSI vectors, but there is no MSI capability")));
}

TEST(ConsistencyTest, MsixCountMismatch) {
  DeviceSnapshot device = TestSnapshot();
  device.irqs[VFIO_PCI_MSIX_IRQ_INDEX].info.count = 8;
  EXPECT_THAT(Check(device),
              Contains(HasSubstr("MSI-X capability has 16 table entries, IRQ info reports 8")));
}

// A BAR too small for the table and PBA the capability places in it.
TEST(ConsistencyTest, MsixTablePastItsBar) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[0].info.size = 0x2000;
  const std::vector<std::string> findings = Check(device);
  EXPECT_THAT(findings, Contains(HasSubstr("MSI-X table [0x2000, 0x2100) runs past BAR 0")));
  EXPECT_THAT(findings, Contains(HasSubstr("MSI-X PBA [0x3000, 0x3008) runs past BAR 0")));
}

TEST(ConsistencyTest, MsixInUnimplementedBar) {
  ConfigImage image = TestConfigImage();
  image.Set32(0x60 + PCI_MSIX_TABLE, 0x2000 | 1);
  EXPECT_THAT(Check(TestSnapshot(image)),
              Contains(HasSubstr("MSI-X table in BAR 1, which is not implemented")));
}

TEST(ConsistencyTest, MsixInIoBar) {
  ConfigImage image = TestConfigImage();
  image.Set32(0x60 + PCI_MSIX_PBA, 0x0 | 4);
  EXPECT_THAT(Check(TestSnapshot(image)), Contains(HasSubstr("MSI-X PBA in BAR 4, an I/O BAR")));
}

TEST(ConsistencyTest, BarSizeNotPowerOfTwo) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[4].info.size = 0x180;
  EXPECT_THAT(Check(device), Contains(HasSubstr("region 4: size 384 is not a power of two")));
}

// The slot above a 64-bit BAR belongs to it; a region there conflicts.
TEST(ConsistencyTest, RegionInUpperHalfSlot) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[3].info.size = 0x1000;
  EXPECT_THAT(Check(device),
              Contains(HasSubstr("BAR 3 is the upper half of 64-bit BAR 2")));
}

TEST(ConsistencyTest, ProgrammedBarWithoutRegion) {
  ConfigImage image = TestConfigImage();
  image.Set32(PCI_BASE_ADDRESS_5, 0xfd000000);
  EXPECT_THAT(Check(TestSnapshot(image)),
              Contains(HasSubstr("BAR 5 reads 0xfd000000, but region 5 is not implemented")));
}

TEST(ConsistencyTest, InterruptPinWithoutIntx) {
  DeviceSnapshot device = TestSnapshot();
  device.irqs[VFIO_PCI_INTX_IRQ_INDEX].info.count = 0;
  EXPECT_THAT(Check(device), Contains(HasSubstr("interrupt pin 1 set, but the INTx IRQ index")));
}

TEST(ConsistencyTest, IntxWithoutInterruptPin) {
  ConfigImage image = TestConfigImage();
  image.Set8(PCI_INTERRUPT_PIN, 0);
  EXPECT_THAT(Check(TestSnapshot(image)),
              Contains(HasSubstr("INTx has 1 vector(s), but the interrupt pin register is 0")));
}

TEST(ConsistencyTest, DeviceSpecificRegionWithoutType) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[9].info.type.reset();
  EXPECT_THAT(Check(device),
              Contains(HasSubstr("region 9: device-specific region without a TYPE capability")));
}

TEST(ConsistencyTest, NotAPciDevice) {
  DeviceSnapshot device = TestSnapshot();
  device.device_info.flags = VFIO_DEVICE_FLAGS_RESET;
  EXPECT_THAT(Check(device), Contains(HasSubstr("lack VFIO_DEVICE_FLAGS_PCI")));
}

TEST(ConsistencyTest, MappableConfigSpace) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[7].info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
  EXPECT_THAT(Check(device), Contains(HasSubstr("region 7 (config space) is mappable")));
}

TEST(ConsistencyTest, ExpressCapabilityInConventionalSpace) {
  const ConfigImage full = TestConfigImage();
  ConfigImage image(256);
  for (uint32_t i = 0; i < 256; ++i) image.Set8(i, full.bytes()[i]);
  EXPECT_THAT(Check(TestSnapshot(image)),
              Contains(HasSubstr("PCI Express capability in a 256-byte config space")));
}

}  // namespace
}  // namespace vfu::inspect
