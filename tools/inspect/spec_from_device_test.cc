#include "tools/inspect/spec_from_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "tools/inspect/config_image.h"
#include "tools/inspect/test_snapshot.h"

namespace vfu::inspect {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::vfu::inspect::testing::ConfigImage;
using ::vfu::inspect::testing::kTestRegionType;
using ::vfu::inspect::testing::kTestSerial;
using ::vfu::inspect::testing::TestConfigImage;
using ::vfu::inspect::testing::TestSnapshot;
using ::vfu::testing::StatusIs;

TEST(SpecFromDeviceTest, IdentityAndName) {
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(TestSnapshot()));
  const proto::DeviceSpec& spec = result.spec;
  EXPECT_EQ(spec.name(), "net0");
  EXPECT_EQ(spec.identity().vendor_id(), 0x1af4u);
  EXPECT_EQ(spec.identity().device_id(), 0x1041u);
  EXPECT_EQ(spec.identity().subsystem_vendor_id(), 0x1af4u);
  EXPECT_EQ(spec.identity().subsystem_id(), 0x1100u);
  EXPECT_EQ(spec.identity().class_code(), 0x020000u);
  EXPECT_EQ(spec.identity().revision(), 1u);
  EXPECT_TRUE(spec.express());
}

// BARs 0, 2 (64-bit: slot 3 is not listed), 4, the ROM and region 9.
TEST(SpecFromDeviceTest, Regions) {
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(TestSnapshot()));
  const proto::DeviceSpec& spec = result.spec;
  ASSERT_THAT(spec.regions(), SizeIs(5));

  const proto::Region& bar0 = spec.regions(0);
  EXPECT_EQ(bar0.index(), 0u);
  EXPECT_EQ(bar0.size(), 0x4000u);
  EXPECT_TRUE(bar0.readable());
  EXPECT_TRUE(bar0.writable());
  EXPECT_EQ(bar0.kind(), proto::Region::MEMORY32);
  EXPECT_FALSE(bar0.prefetchable());
  EXPECT_THAT(bar0.mmap_areas(), SizeIs(0));

  const proto::Region& bar2 = spec.regions(1);
  EXPECT_EQ(bar2.index(), 2u);
  EXPECT_EQ(bar2.kind(), proto::Region::MEMORY64);
  EXPECT_TRUE(bar2.prefetchable());
  ASSERT_THAT(bar2.mmap_areas(), SizeIs(2));
  EXPECT_EQ(bar2.mmap_areas(1).offset(), 0x2000u);
  EXPECT_EQ(bar2.mmap_areas(1).size(), 0x1000u);

  EXPECT_EQ(spec.regions(2).index(), 4u);
  EXPECT_EQ(spec.regions(2).kind(), proto::Region::IO);
  EXPECT_EQ(spec.regions(2).size(), 0x100u);

  const proto::Region& rom = spec.regions(3);
  EXPECT_EQ(rom.index(), 6u);
  EXPECT_TRUE(rom.readable());
  EXPECT_FALSE(rom.writable());

  const proto::Region& dev = spec.regions(4);
  EXPECT_EQ(dev.index(), 9u);
  EXPECT_EQ(dev.type(), kTestRegionType);
  EXPECT_EQ(dev.subtype(), 1u);
}

TEST(SpecFromDeviceTest, Interrupts) {
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(TestSnapshot()));
  const proto::Interrupts& irq = result.spec.interrupts();
  EXPECT_TRUE(irq.intx());
  EXPECT_EQ(irq.msi_vectors(), 4u);
  EXPECT_TRUE(irq.msi_64bit());
  EXPECT_TRUE(irq.msi_per_vector_mask());
  EXPECT_EQ(irq.msix_vectors(), 16u);
  EXPECT_EQ(irq.msix_bar(), 0u);
  EXPECT_EQ(irq.msix_table_offset(), 0x2000u);
  EXPECT_EQ(irq.msix_pba_offset(), 0x3000u);
  EXPECT_TRUE(irq.err());
  EXPECT_FALSE(irq.req());
}

// PM, vendor payloads, serial number and VSEC; the unknown capabilities
// become notes.
TEST(SpecFromDeviceTest, Capabilities) {
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(TestSnapshot()));
  const proto::DeviceSpec& spec = result.spec;
  EXPECT_TRUE(spec.power_management());
  ASSERT_THAT(spec.vendor_capabilities(), SizeIs(1));
  EXPECT_EQ(spec.vendor_capabilities(0).payload(), std::string("\x01\x02\x03\x04\x05"));
  ASSERT_TRUE(spec.has_serial_number());
  EXPECT_EQ(spec.serial_number(), kTestSerial);
  ASSERT_THAT(spec.vendor_extended_capabilities(), SizeIs(1));
  EXPECT_EQ(spec.vendor_extended_capabilities(0).vsec_id(), 0x1234u);
  EXPECT_EQ(spec.vendor_extended_capabilities(0).vsec_rev(), 2u);
  EXPECT_EQ(spec.vendor_extended_capabilities(0).payload(), std::string(8, '\x09'));
  EXPECT_THAT(result.notes, Contains(HasSubstr("capability Unknown (0x42) at 0xb0")));
  EXPECT_THAT(result.notes, Contains(HasSubstr("extended capability Unknown (0x002a) at 0x11c")));
}

// A region mappable without a sparse list is mappable as a whole.
TEST(SpecFromDeviceTest, MmapWithoutSparseListIsWholeRegion) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[0].info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(device));
  ASSERT_THAT(result.spec.regions(0).mmap_areas(), SizeIs(1));
  EXPECT_EQ(result.spec.regions(0).mmap_areas(0).offset(), 0u);
  EXPECT_EQ(result.spec.regions(0).mmap_areas(0).size(), 0x4000u);
}

// The spec has one msix_bar; a PBA elsewhere is a note.
TEST(SpecFromDeviceTest, PbaInAnotherBarIsNoted) {
  ConfigImage image = TestConfigImage();
  image.Set32(0x60 + PCI_MSIX_PBA, 0x3000 | 2);
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(TestSnapshot(image)));
  EXPECT_THAT(result.notes, Contains(HasSubstr("MSI-X PBA is in BAR 2, the table in BAR 0")));
}

// Without a PCI Express capability the spec is conventional, and a serial
// number elsewhere is not claimed.
TEST(SpecFromDeviceTest, ConventionalDevice) {
  ConfigImage image(256);
  image.Identity(0x1234, 0x11, 0x050000, 0);
  DeviceSnapshot device = TestSnapshot(image);
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(device));
  EXPECT_FALSE(result.spec.express());
  EXPECT_FALSE(result.spec.has_serial_number());
  EXPECT_FALSE(result.spec.power_management());
  EXPECT_EQ(result.spec.interrupts().msi_vectors(), 4u);
  EXPECT_THAT(result.notes, Contains(HasSubstr("MSI vectors taken from IRQ info")));
}

TEST(SpecFromDeviceTest, UnreadableConfigFails) {
  DeviceSnapshot device = TestSnapshot();
  device.config.clear();
  device.config_status = absl::NotFoundError("no region 7");
  EXPECT_THAT(SpecFromDevice(device), StatusIs(absl::StatusCode::kFailedPrecondition));
  device.config_status = absl::OkStatus();
  device.config.resize(10);
  EXPECT_THAT(SpecFromDevice(device), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The text starts with comments and parses back to the same message.
TEST(SpecFromDeviceTest, TextParsesBack) {
  const DeviceSnapshot device = TestSnapshot();
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(device));
  const std::string text = FormatSpecText(device, result);
  EXPECT_THAT(text, StartsWith("# vfu.proto.DeviceSpec of /run/vfu/net0.sock\n# note: "));
  // IDs in hex, indexes in decimal, payloads as hex escapes.
  EXPECT_THAT(text, HasSubstr("  vendor_id: 0x1af4\n"));
  EXPECT_THAT(text, HasSubstr("  class_code: 0x20000\n"));
  EXPECT_THAT(text, HasSubstr("  index: 9\n"));
  EXPECT_THAT(text, HasSubstr("payload: \"\\x01\\x02\\x03\\x04\\x05\"\n"));
  proto::DeviceSpec parsed;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &parsed));
  EXPECT_EQ(parsed.SerializeAsString(), result.spec.SerializeAsString());
}

}  // namespace
}  // namespace vfu::inspect
