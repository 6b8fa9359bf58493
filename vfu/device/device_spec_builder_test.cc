#include "vfu/device/device_spec_builder.h"

#include <linux/pci_regs.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/wire/byte_io.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

// Everything the proto can say, once: BARs of each kind, a ROM, a
// device-specific region, all interrupt types and both kinds of vendor
// capability.
constexpr char kFullSpec[] = R"pb(
  name: "stub-nic"
  identity {
    vendor_id: 0x1af4
    device_id: 0x10f0
    subsystem_vendor_id: 0x1af4
    subsystem_id: 0x0042
    class_code: 0x020000
    revision: 2
  }
  express: true
  power_management: true
  regions {
    index: 0
    size: 0x4000
    readable: true
    writable: true
    mmap_areas { offset: 0 size: 0x1000 }
  }
  regions {
    index: 2
    size: 0x100000
    kind: MEMORY64
    prefetchable: true
    readable: true
    writable: true
  }
  regions { index: 4 size: 0x100 kind: IO readable: true writable: true }
  regions { index: 6 size: 0x800 readable: true }
  regions { index: 9 size: 0x1000 readable: true type: 0x80001af4 subtype: 1 }
  interrupts {
    intx: true
    msi_vectors: 4
    msi_64bit: true
    msi_per_vector_mask: true
    msix_vectors: 8
    msix_bar: 0
    msix_table_offset: 0x2000
    msix_pba_offset: 0x3000
  }
  vendor_capabilities { payload: "\x01\x02\x03" }
  serial_number: 0x0123456789abcdef
  vendor_extended_capabilities { vsec_id: 0x1234 vsec_rev: 1 payload: "abcd" }
)pb";

std::unique_ptr<PciDevice> FullDevice() {
  absl::StatusOr<proto::DeviceSpec> spec = ParseDeviceSpecText(kFullSpec);
  EXPECT_THAT(spec, IsOk());
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<PciDevice>> device = DeviceFromProto(*spec);
  EXPECT_THAT(device, IsOk());
  return device.ok() ? *std::move(device) : nullptr;
}

uint32_t Config32(PciDevice& device, uint32_t offset) {
  uint8_t bytes[4] = {};
  EXPECT_THAT(device.ReadRegion(kConfigRegion, offset, absl::MakeSpan(bytes)), IsOk());
  return wire::LoadU32(bytes, 0);
}

uint16_t Config16(PciDevice& device, uint32_t offset) {
  uint8_t bytes[2] = {};
  EXPECT_THAT(device.ReadRegion(kConfigRegion, offset, absl::MakeSpan(bytes)), IsOk());
  return wire::LoadU16(bytes, 0);
}

uint8_t Config8(PciDevice& device, uint32_t offset) {
  uint8_t byte = 0;
  EXPECT_THAT(device.ReadRegion(kConfigRegion, offset, absl::MakeSpan(&byte, 1)), IsOk());
  return byte;
}

void WriteConfig32(PciDevice& device, uint32_t offset, uint32_t value) {
  uint8_t bytes[4];
  wire::Store<uint32_t>(absl::MakeSpan(bytes), 0, value);
  EXPECT_THAT(device.WriteRegion(kConfigRegion, offset, bytes), IsOk());
}

// The standard capability chain as a driver walks it: ID -> offset.
std::vector<std::pair<uint8_t, uint32_t>> CapabilityChain(PciDevice& device) {
  std::vector<std::pair<uint8_t, uint32_t>> chain;
  uint32_t offset = Config8(device, PCI_CAPABILITY_LIST);
  while (offset != 0 && chain.size() < 48) {
    chain.emplace_back(Config8(device, offset), offset);
    offset = Config8(device, offset + 1);
  }
  return chain;
}

std::vector<uint16_t> ExtendedCapabilityIds(PciDevice& device) {
  std::vector<uint16_t> ids;
  uint32_t offset = 0x100;
  while (offset != 0 && ids.size() < 48) {
    const uint32_t header = Config32(device, offset);
    ids.push_back(PCI_EXT_CAP_ID(header));
    offset = PCI_EXT_CAP_NEXT(header);
  }
  return ids;
}

// The IDs, class and revision of the text reach config space; INTx sets the
// interrupt pin.
TEST(DeviceSpecBuilderTest, TextSpecIdentityInConfigSpace) {
  std::unique_ptr<PciDevice> device = FullDevice();
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(Config16(*device, PCI_VENDOR_ID), 0x1af4);
  EXPECT_EQ(Config16(*device, PCI_DEVICE_ID), 0x10f0);
  EXPECT_EQ(Config32(*device, PCI_CLASS_REVISION), 0x02000002u);
  EXPECT_EQ(Config16(*device, PCI_SUBSYSTEM_VENDOR_ID), 0x1af4);
  EXPECT_EQ(Config16(*device, PCI_SUBSYSTEM_ID), 0x0042);
  EXPECT_EQ(Config8(*device, PCI_INTERRUPT_PIN), 1);
  EXPECT_EQ(device->num_regions(), 10u);
}

// An all-ones write to each BAR reads back its size mask and type bits, as
// the spec's sizes and kinds say.
TEST(DeviceSpecBuilderTest, BarSizingFollowsSpec) {
  std::unique_ptr<PciDevice> device = FullDevice();
  ASSERT_NE(device, nullptr);
  for (uint32_t bar = PCI_BASE_ADDRESS_0; bar <= PCI_BASE_ADDRESS_5; bar += 4) {
    WriteConfig32(*device, bar, 0xffffffff);
  }
  WriteConfig32(*device, PCI_ROM_ADDRESS, 0xffffffff);
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_0), 0xffffc000u);  // 16 KiB, memory32
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_1), 0u);           // not implemented
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_2),
            0xfff00000u | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_3), 0xffffffffu);  // upper half
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_4), 0xffffff00u | PCI_BASE_ADDRESS_SPACE_IO);
  EXPECT_EQ(Config32(*device, PCI_BASE_ADDRESS_5), 0u);
  EXPECT_EQ(Config32(*device, PCI_ROM_ADDRESS), 0xfffff800u | PCI_ROM_ADDRESS_ENABLE);
}

// The framework's capabilities come first, then the vendor one; the MSI and
// MSI-X registers carry the spec's vector counts and table placement.
TEST(DeviceSpecBuilderTest, CapabilitiesFollowSpec) {
  std::unique_ptr<PciDevice> device = FullDevice();
  ASSERT_NE(device, nullptr);
  EXPECT_NE(Config16(*device, PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);
  std::vector<std::pair<uint8_t, uint32_t>> chain = CapabilityChain(*device);
  std::vector<uint8_t> ids;
  std::map<uint8_t, uint32_t> where;
  for (auto [id, offset] : chain) {
    ids.push_back(id);
    where[id] = offset;
  }
  EXPECT_THAT(ids, ElementsAre(PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAP_ID_EXP,
                               PCI_CAP_ID_VNDR));

  const uint16_t msi_flags = Config16(*device, where[PCI_CAP_ID_MSI] + PCI_MSI_FLAGS);
  EXPECT_EQ((msi_flags & PCI_MSI_FLAGS_QMASK) >> 1, 2);  // log2(4 vectors)
  EXPECT_NE(msi_flags & PCI_MSI_FLAGS_64BIT, 0);
  EXPECT_NE(msi_flags & PCI_MSI_FLAGS_MASKBIT, 0);

  const uint32_t msix = where[PCI_CAP_ID_MSIX];
  EXPECT_EQ(Config16(*device, msix + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE, 7);  // 8 - 1
  EXPECT_EQ(Config32(*device, msix + PCI_MSIX_TABLE), 0x2000u);  // BIR 0
  EXPECT_EQ(Config32(*device, msix + PCI_MSIX_PBA), 0x3000u);

  const uint32_t vendor = where[PCI_CAP_ID_VNDR];
  EXPECT_EQ(Config8(*device, vendor + 2), 6);  // length: header, length byte, 3 bytes
  EXPECT_EQ(Config8(*device, vendor + 3), 0x01);
  EXPECT_EQ(Config8(*device, vendor + 5), 0x03);

  EXPECT_THAT(ExtendedCapabilityIds(*device), ElementsAre(PCI_EXT_CAP_ID_DSN, PCI_EXT_CAP_ID_VNDR));
}

// Regions and interrupt counts as the client will see them.
TEST(DeviceSpecBuilderTest, RegionsAndIrqsFollowSpec) {
  std::unique_ptr<PciDevice> device = FullDevice();
  ASSERT_NE(device, nullptr);
  RegionDescription bar0 = device->DescribeRegion(0);
  EXPECT_EQ(bar0.size, 0x4000u);
  EXPECT_TRUE(bar0.readable && bar0.writable);
  EXPECT_THAT(bar0.mmap_areas, ElementsAre(wire::SparseMmapArea{.offset = 0, .size = 0x1000}));
  EXPECT_GE(bar0.mmap_fd, 0);
  EXPECT_EQ(device->DescribeRegion(1).size, 0u);
  RegionDescription rom = device->DescribeRegion(kRomRegion);
  EXPECT_EQ(rom.size, 0x800u);
  EXPECT_FALSE(rom.writable);
  RegionDescription extra = device->DescribeRegion(9);
  EXPECT_EQ(extra.size, 0x1000u);
  ASSERT_TRUE(extra.type.has_value());
  EXPECT_EQ(extra.type->type, 0x80001af4u);
  EXPECT_EQ(extra.type->subtype, 1u);
  EXPECT_FALSE(extra.writable);

  EXPECT_EQ(device->IrqCount(kIntxIrq), 1u);
  EXPECT_EQ(device->IrqCount(kMsiIrq), 4u);
  EXPECT_EQ(device->IrqCount(kMsixIrq), 8u);
  EXPECT_EQ(device->IrqCount(kErrIrq), 0u);
}

// Every region has memory behind it: what is written reads back, and the
// device's own view (region_memory) is the same bytes.
TEST(DeviceSpecBuilderTest, EveryRegionBackedByMemory) {
  std::unique_ptr<PciDevice> device = FullDevice();
  ASSERT_NE(device, nullptr);
  for (uint32_t region : {0u, 2u, 4u, 6u, 9u}) {
    EXPECT_FALSE(device->region_memory(region).empty()) << "region " << region;
  }
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5};
  ASSERT_THAT(device->WriteRegion(2, 0x80000, data), IsOk());
  std::vector<uint8_t> back(data.size());
  ASSERT_THAT(device->ReadRegion(2, 0x80000, absl::MakeSpan(back)), IsOk());
  EXPECT_EQ(back, data);
  EXPECT_EQ(device->region_memory(2)[0x80002], 3);
}

// A minimal spec: defaults of the proto mean no BARs, no interrupts,
// conventional PCI, and power management (as in PciDeviceSpec) unless the
// spec turns it off.
TEST(DeviceSpecBuilderTest, MinimalSpec) {
  ASSERT_OK_AND_ASSIGN(proto::DeviceSpec text, ParseDeviceSpecText("identity { vendor_id: 1 }"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PciDevice> device, DeviceFromProto(text));
  EXPECT_EQ(device->DescribeRegion(kConfigRegion).size, 256u);
  EXPECT_EQ(Config8(*device, PCI_INTERRUPT_PIN), 0);
  EXPECT_EQ(Config8(*device, PCI_CAPABILITY_LIST), 0x40);
  EXPECT_EQ(Config8(*device, 0x40), PCI_CAP_ID_PM);

  ASSERT_OK_AND_ASSIGN(text,
                       ParseDeviceSpecText("identity { vendor_id: 1 } power_management: false"));
  ASSERT_OK_AND_ASSIGN(device, DeviceFromProto(text));
  EXPECT_EQ(Config16(*device, PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);
  EXPECT_EQ(device->IrqCount(kIntxIrq), 0u);
  EXPECT_EQ(device->num_regions(), 9u);
}

// The converted spec carries the fields one to one.
TEST(DeviceSpecBuilderTest, SpecFieldsConverted) {
  ASSERT_OK_AND_ASSIGN(proto::DeviceSpec text, ParseDeviceSpecText(kFullSpec));
  ASSERT_OK_AND_ASSIGN(PciDeviceSpec spec, PciDeviceSpecFromProto(text));
  EXPECT_EQ(spec.identity.class_code, 0x020000u);
  EXPECT_TRUE(spec.express);
  EXPECT_EQ(spec.bars[2].kind, pci::BarKind::kMemory64);
  EXPECT_TRUE(spec.bars[2].prefetchable);
  EXPECT_EQ(spec.bars[4].kind, pci::BarKind::kIo);
  for (const RegionSpec* region : {&spec.bars[0], &spec.bars[2], &spec.bars[4], &spec.rom}) {
    EXPECT_TRUE(region->backed_by_memory);
  }
  ASSERT_EQ(spec.device_regions.size(), 1u);
  EXPECT_TRUE(spec.device_regions[0].backed_by_memory);
  EXPECT_EQ(spec.interrupts.msix_table_offset, 0x2000u);
  EXPECT_EQ(spec.serial_number, 0x0123456789abcdefu);
  EXPECT_EQ(spec.capabilities.size(), 1u);
  EXPECT_EQ(spec.extended_capabilities.size(), 1u);
}

// Device-specific regions may be listed in any order; they are served by
// index.
TEST(DeviceSpecBuilderTest, DeviceRegionsSortedByIndex) {
  ASSERT_OK_AND_ASSIGN(proto::DeviceSpec text, ParseDeviceSpecText(R"pb(
    identity { vendor_id: 1 }
    regions { index: 10 size: 0x2000 readable: true type: 1 subtype: 2 }
    regions { index: 9 size: 0x1000 readable: true type: 1 subtype: 1 }
  )pb"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PciDevice> device, DeviceFromProto(text));
  EXPECT_EQ(device->DescribeRegion(9).size, 0x1000u);
  EXPECT_EQ(device->DescribeRegion(10).size, 0x2000u);
  EXPECT_EQ(device->DescribeRegion(10).type->subtype, 2u);
}

struct BadSpec {
  const char* text;
  const char* message;  // a part of the InvalidArgument message
};

// Each spec breaks one rule that the proto's types cannot express.
TEST(DeviceSpecBuilderTest, RejectsBadSpecs) {
  const BadSpec cases[] = {
      {"identity { vendor_id: 0x10000 }", "identity.vendor_id 0x10000 does not fit in 16 bits"},
      {"identity { vendor_id: 1 device_id: 0x12345 }", "identity.device_id"},
      {"identity { vendor_id: 1 subsystem_vendor_id: 0x10000 }", "identity.subsystem_vendor_id"},
      {"identity { vendor_id: 1 subsystem_id: 0x10000 }", "identity.subsystem_id"},
      {"identity { vendor_id: 1 class_code: 0x1000000 }", "identity.class_code"},
      {"identity { vendor_id: 1 revision: 256 }", "identity.revision"},
      {"identity { vendor_id: 0xffff }", "no device"},
      {"regions { index: 7 size: 256 }", "region 7 is the framework's (config space)"},
      {"regions { index: 8 size: 4096 }", "region 8 is the framework's (VGA)"},
      {"regions { index: 0 size: 4096 } regions { index: 0 size: 4096 }",
       "region 0 appears twice"},
      {"regions { index: 9 size: 4096 type: 1 } regions { index: 9 size: 4096 type: 1 }",
       "region 9 appears twice"},
      {"regions { index: 9 size: 4096 type: 1 } regions { index: 11 size: 4096 type: 1 }",
       "region 10 is missing"},
      {"regions { index: 10 size: 4096 type: 1 }", "region 9 is missing"},
      {"regions { index: 1 size: 0 }", "region 1: size 0"},
      {"regions { index: 6 size: 2048 readable: true writable: true }", "read-only"},
      {"regions { index: 6 size: 2048 kind: MEMORY64 }", "BARs only"},
      {"regions { index: 9 size: 4096 kind: IO type: 1 }", "BARs only"},
      {"regions { index: 9 size: 4096 }", "needs a VFIO region type"},
      {"regions { index: 0 size: 4096 type: 1 }", "device-specific regions (>= 9)"},
      {"regions { index: 0 size: 4096 kind: 7 }", "unknown kind 7"},
      {"regions { index: 5 size: 4096 kind: MEMORY64 }", "last slot"},
      {"regions { index: 0 size: 4096 kind: MEMORY64 } regions { index: 1 size: 4096 }",
       "region 1 is the upper half of 64-bit BAR 0"},
      {"interrupts { msi_vectors: 3 }", "interrupts.msi_vectors 3"},
      {"interrupts { msi_vectors: 64 }", "interrupts.msi_vectors 64"},
      {"interrupts { msix_vectors: 2049 }", "interrupts.msix_vectors 2049"},
      {"interrupts { msix_vectors: 1 msix_bar: 6 }", "interrupts.msix_bar 6"},
      {"serial_number: 1", "need express"},
      {"vendor_extended_capabilities { vsec_id: 1 }", "need express"},
      {"express: true vendor_extended_capabilities { vsec_id: 0x10000 }",
       "vendor_extended_capabilities[0].vsec_id"},
      {"express: true vendor_extended_capabilities { vsec_id: 1 vsec_rev: 16 }",
       "vendor_extended_capabilities[0].vsec_rev 16"},
  };
  for (const BadSpec& bad : cases) {
    SCOPED_TRACE(bad.text);
    ASSERT_OK_AND_ASSIGN(proto::DeviceSpec spec, ParseDeviceSpecText(bad.text));
    if (!spec.has_identity()) spec.mutable_identity()->set_vendor_id(1);
    absl::StatusOr<PciDeviceSpec> converted = PciDeviceSpecFromProto(spec);
    EXPECT_THAT(converted, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(converted.status().message()), HasSubstr(bad.message));
    EXPECT_THAT(DeviceFromProto(spec), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

// A vendor capability too long for its length byte names the field.
TEST(DeviceSpecBuilderTest, RejectsOversizedVendorCapability) {
  proto::DeviceSpec spec;
  spec.mutable_identity()->set_vendor_id(1);
  spec.add_vendor_capabilities()->set_payload(std::string(300, 'x'));
  absl::StatusOr<PciDeviceSpec> converted = PciDeviceSpecFromProto(spec);
  EXPECT_THAT(converted, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(converted.status().message()), HasSubstr("vendor_capabilities[0]"));
}

// Layouts that are well-formed field by field but do not hold together are
// refused when the device is built, with the spec's name in the message.
TEST(DeviceSpecBuilderTest, RejectsInconsistentLayouts) {
  const char* cases[] = {
      // Not a power of two.
      "regions { index: 0 size: 0x3000 readable: true }",
      // The MSI-X table does not fit in its BAR.
      ("regions { index: 0 size: 0x1000 readable: true } "
       "interrupts { msix_vectors: 4 msix_bar: 0 msix_table_offset: 0x1000 }"),
      // MSI-X in a BAR that does not exist.
      "interrupts { msix_vectors: 4 msix_bar: 2 }",
      // An mmap area that is not page aligned.
      "regions { index: 0 size: 0x2000 readable: true mmap_areas { offset: 0x800 size: 0x1000 } }",
  };
  for (const char* text : cases) {
    SCOPED_TRACE(text);
    ASSERT_OK_AND_ASSIGN(proto::DeviceSpec spec, ParseDeviceSpecText(text));
    spec.set_name("broken");
    spec.mutable_identity()->set_vendor_id(1);
    EXPECT_THAT(PciDeviceSpecFromProto(spec), IsOk());
    absl::StatusOr<std::unique_ptr<PciDevice>> device = DeviceFromProto(spec);
    EXPECT_THAT(device, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(device.status().message()), HasSubstr("device spec \"broken\""));
  }
}

// Syntax errors and unknown fields carry their position.
TEST(DeviceSpecBuilderTest, ParseErrorsNamePosition) {
  absl::StatusOr<proto::DeviceSpec> spec = ParseDeviceSpecText("identity {\n  vendor_id: }\n");
  EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("device spec text: 2:"));

  spec = ParseDeviceSpecText("colour: 3");
  EXPECT_THAT(spec, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("device spec text: 1:"));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("colour"));
}

}  // namespace
}  // namespace vfu
