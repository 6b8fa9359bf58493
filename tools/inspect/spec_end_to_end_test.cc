// End to end for `inspect --spec`: a served PciDevice comes back as the
// DeviceSpec it was declared with, and a device built from a DeviceSpec
// proto comes back as that very proto.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/device_spec.pb.h"
#include "testing/status_matchers.h"
#include "tools/inspect/command.h"
#include "tools/inspect/device_snapshot.h"
#include "tools/inspect/served_device.h"
#include "tools/inspect/spec_from_device.h"
#include "vfu/client/client.h"
#include "vfu/device/device_spec_builder.h"

namespace vfu::inspect {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::vfu::inspect::testing::CountingDevice;
using ::vfu::inspect::testing::kServedSerial;
using ::vfu::inspect::testing::kServedVendorPayload;
using ::vfu::inspect::testing::kServedVsecId;
using ::vfu::inspect::testing::kServedVsecPayload;
using ::vfu::inspect::testing::ServedDevice;
using ::vfu::inspect::testing::TestDeviceSpec;

std::string AsBytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// The text `inspect --spec` prints for the served PciDevice, parsed, field
// by field against the PciDeviceSpec it was built from.
TEST(SpecEndToEndTest, SpecMatchesDeclaration) {
  const PciDeviceSpec declared = TestDeviceSpec();
  CountingDevice device(TestDeviceSpec());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device));
  ASSERT_OK_AND_ASSIGN(Command command, ParseCommand({served->socket_path()}, /*spec=*/true));
  ASSERT_OK_AND_ASSIGN(std::string text, RunCommand(command));
  EXPECT_THAT(text, Not(HasSubstr("# note:")));
  proto::DeviceSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec)) << text;

  EXPECT_EQ(spec.name(), "dev");
  EXPECT_EQ(spec.identity().vendor_id(), declared.identity.vendor_id);
  EXPECT_EQ(spec.identity().device_id(), declared.identity.device_id);
  EXPECT_EQ(spec.identity().subsystem_vendor_id(), declared.identity.subsystem_vendor_id);
  EXPECT_EQ(spec.identity().subsystem_id(), declared.identity.subsystem_id);
  EXPECT_EQ(spec.identity().class_code(), declared.identity.class_code);
  EXPECT_EQ(spec.identity().revision(), declared.identity.revision);
  EXPECT_EQ(spec.express(), declared.express);

  // BARs 0, 2, 4, the ROM, region 9: in index order.
  ASSERT_THAT(spec.regions(), SizeIs(5));
  const int bar_index[] = {0, 2, 4};
  for (int i = 0; i < 3; ++i) {
    const proto::Region& got = spec.regions(i);
    const RegionSpec& want = declared.bars[bar_index[i]];
    EXPECT_EQ(got.index(), static_cast<uint32_t>(bar_index[i]));
    EXPECT_EQ(got.size(), want.size);
    EXPECT_EQ(got.readable(), want.readable);
    EXPECT_EQ(got.writable(), want.writable);
    EXPECT_EQ(got.prefetchable(), want.prefetchable);
    ASSERT_THAT(got.mmap_areas(), SizeIs(want.mmap_areas.size()));
    for (size_t a = 0; a < want.mmap_areas.size(); ++a) {
      EXPECT_EQ(got.mmap_areas(a).offset(), want.mmap_areas[a].offset);
      EXPECT_EQ(got.mmap_areas(a).size(), want.mmap_areas[a].size);
    }
  }
  EXPECT_EQ(spec.regions(0).kind(), proto::Region::MEMORY32);
  EXPECT_EQ(spec.regions(1).kind(), proto::Region::MEMORY64);
  EXPECT_EQ(spec.regions(2).kind(), proto::Region::IO);
  EXPECT_EQ(spec.regions(3).index(), 6u);
  EXPECT_EQ(spec.regions(3).size(), declared.rom.size);
  EXPECT_FALSE(spec.regions(3).writable());
  EXPECT_EQ(spec.regions(4).index(), 9u);
  EXPECT_EQ(spec.regions(4).size(), declared.device_regions[0].size);
  EXPECT_EQ(spec.regions(4).type(), declared.device_regions[0].type->type);
  EXPECT_EQ(spec.regions(4).subtype(), declared.device_regions[0].type->subtype);

  const InterruptSpec& irq = declared.interrupts;
  EXPECT_EQ(spec.interrupts().intx(), irq.intx);
  EXPECT_EQ(spec.interrupts().msi_vectors(), irq.msi_vectors);
  EXPECT_EQ(spec.interrupts().msi_64bit(), irq.msi_64bit);
  EXPECT_EQ(spec.interrupts().msi_per_vector_mask(), irq.msi_per_vector_mask);
  EXPECT_EQ(spec.interrupts().msix_vectors(), irq.msix_vectors);
  EXPECT_EQ(spec.interrupts().msix_bar(), irq.msix_bar);
  EXPECT_EQ(spec.interrupts().msix_table_offset(), irq.msix_table_offset);
  EXPECT_EQ(spec.interrupts().msix_pba_offset(), irq.msix_pba_offset);
  EXPECT_EQ(spec.interrupts().err(), irq.err);
  EXPECT_EQ(spec.interrupts().req(), irq.req);

  EXPECT_EQ(spec.power_management(), declared.power_management);
  ASSERT_THAT(spec.vendor_capabilities(), SizeIs(1));
  EXPECT_EQ(spec.vendor_capabilities(0).payload(), AsBytes(kServedVendorPayload));
  EXPECT_EQ(spec.serial_number(), kServedSerial);
  ASSERT_THAT(spec.vendor_extended_capabilities(), SizeIs(1));
  EXPECT_EQ(spec.vendor_extended_capabilities(0).vsec_id(), kServedVsecId);
  EXPECT_EQ(spec.vendor_extended_capabilities(0).vsec_rev(), 1u);
  EXPECT_EQ(spec.vendor_extended_capabilities(0).payload(), AsBytes(kServedVsecPayload));
}

constexpr char kRoundTripSpec[] = R"pb(
  name: "dev"
  identity {
    vendor_id: 0x1af4
    device_id: 0x1042
    subsystem_vendor_id: 0x1af4
    subsystem_id: 0x0002
    class_code: 0x018000
    revision: 1
  }
  express: true
  regions { index: 0 size: 0x1000 readable: true writable: true kind: MEMORY32 }
  regions {
    index: 2
    size: 0x20000
    readable: true
    writable: true
    kind: MEMORY64
    prefetchable: true
    mmap_areas { offset: 0 size: 0x10000 }
  }
  regions { index: 5 size: 0x40 readable: true writable: true kind: IO }
  regions { index: 6 size: 0x8000 readable: true }
  regions {
    index: 9
    size: 0x3000
    readable: true
    mmap_areas { offset: 0x1000 size: 0x1000 }
    type: 3
    subtype: 1
  }
  regions { index: 10 size: 0x1000 writable: true type: 0x80001af4 subtype: 2 }
  interrupts {
    intx: true
    msi_vectors: 2
    msix_vectors: 5
    msix_bar: 2
    msix_table_offset: 0x18000
    msix_pba_offset: 0x1c000
    req: true
    msi_64bit: true
    msi_per_vector_mask: true
  }
  power_management: false
  vendor_capabilities { payload: "\x01\x02" }
  vendor_capabilities { payload: "vfu" }
  serial_number: 0
  vendor_extended_capabilities { vsec_id: 0x42 vsec_rev: 15 payload: "" }
)pb";

// DeviceSpec proto -> served device -> inspect --spec gives the same proto.
TEST(SpecEndToEndTest, ProtoRoundTrip) {
  ASSERT_OK_AND_ASSIGN(proto::DeviceSpec declared, ParseDeviceSpecText(kRoundTripSpec));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PciDevice> device, DeviceFromProto(declared));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(*device));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(served->socket_path()));
  ASSERT_OK_AND_ASSIGN(DeviceSnapshot snapshot, ProbeDevice(*client, served->socket_path()));
  ASSERT_OK_AND_ASSIGN(SpecResult result, SpecFromDevice(snapshot));
  EXPECT_THAT(result.notes, ::testing::IsEmpty());

  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(declared, result.spec)) << diff;
}

}  // namespace
}  // namespace vfu::inspect
