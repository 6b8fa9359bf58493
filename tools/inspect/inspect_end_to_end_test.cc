// End to end: a PciDevice served in-process, probed over a real socket by
// the client library, then listed. Every expectation is derived from the
// declared spec (served_device.h), not from a stored listing.
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "tools/inspect/command.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/device_snapshot.h"
#include "tools/inspect/hex_dump.h"
#include "tools/inspect/listing.h"
#include "tools/inspect/served_device.h"
#include "vfu/client/client.h"

namespace vfu::inspect {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::vfu::inspect::testing::CountingDevice;
using ::vfu::inspect::testing::kServedRegionSubtype;
using ::vfu::inspect::testing::kServedRegionType;
using ::vfu::inspect::testing::kServedSerial;
using ::vfu::inspect::testing::kServedVendorPayload;
using ::vfu::inspect::testing::kServedVsecId;
using ::vfu::inspect::testing::kServedVsecPayload;
using ::vfu::inspect::testing::ServedDevice;
using ::vfu::inspect::testing::TestDeviceSpec;

class InspectEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(device_.Validate());
    ASSERT_OK_AND_ASSIGN(served_, ServedDevice::Start(device_));
  }

  // One connection per test: the server serves one client at a time.
  DeviceSnapshot Probe() {
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(served_->socket_path());
    EXPECT_OK(client);
    if (!client.ok()) return {};
    absl::StatusOr<DeviceSnapshot> device = ProbeDevice(**client, served_->socket_path());
    EXPECT_OK(device);
    return device.ok() ? *std::move(device) : DeviceSnapshot{};
  }

  const PciDeviceSpec spec_ = TestDeviceSpec();
  CountingDevice device_{TestDeviceSpec()};
  std::unique_ptr<ServedDevice> served_;
};

// Region info: every declared region with its size and access; the fd
// comes with mappable regions; the 64-bit BAR's upper slot is empty.
TEST_F(InspectEndToEndTest, ProbeReportsDeclaredRegions) {
  const DeviceSnapshot device = Probe();
  EXPECT_EQ(device.device_info.num_regions, kFirstDeviceSpecificRegion + 1);
  EXPECT_EQ(device.device_info.num_irqs, 5u);
  for (uint32_t i = 0; i < 6; ++i) {
    const RegionSnapshot* r = device.region(i);
    ASSERT_NE(r, nullptr) << i;
    ASSERT_OK(r->status);
    EXPECT_EQ(r->info.size, spec_.bars[i].size) << "BAR " << i;
    if (spec_.bars[i].size == 0) continue;
    EXPECT_EQ((r->info.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0,
              !spec_.bars[i].mmap_areas.empty()) << "BAR " << i;
    EXPECT_EQ(r->fd_attached, !spec_.bars[i].mmap_areas.empty()) << "BAR " << i;
  }
  const RegionSnapshot* bar2 = device.region(2);
  ASSERT_TRUE(bar2->info.sparse_mmap.has_value());
  EXPECT_EQ(*bar2->info.sparse_mmap, spec_.bars[2].mmap_areas);

  const RegionSnapshot* rom = device.region(kRomRegion);
  EXPECT_EQ(rom->info.size, spec_.rom.size);
  EXPECT_EQ(rom->info.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE),
            VFIO_REGION_INFO_FLAG_READ);

  const RegionSnapshot* dev9 = device.region(kFirstDeviceSpecificRegion);
  ASSERT_NE(dev9, nullptr);
  EXPECT_EQ(dev9->info.size, spec_.device_regions[0].size);
  EXPECT_EQ(dev9->info.type, spec_.device_regions[0].type);

  EXPECT_EQ(device.region(kConfigRegion)->info.size, kExpressConfigSize);
  EXPECT_EQ(device.config.size(), kExpressConfigSize);
}

// Config space: identity and each BAR's kind as declared.
TEST_F(InspectEndToEndTest, ConfigSpaceMatchesDeclaration) {
  const DeviceSnapshot device = Probe();
  ASSERT_OK_AND_ASSIGN(ConfigSpaceInfo config, DecodeConfigSpace(device.config));
  EXPECT_EQ(config.vendor_id, spec_.identity.vendor_id);
  EXPECT_EQ(config.device_id, spec_.identity.device_id);
  EXPECT_EQ(config.subsystem_vendor_id, spec_.identity.subsystem_vendor_id);
  EXPECT_EQ(config.subsystem_id, spec_.identity.subsystem_id);
  EXPECT_EQ(config.class_code, spec_.identity.class_code);
  EXPECT_EQ(config.revision, spec_.identity.revision);
  EXPECT_EQ(config.interrupt_pin, spec_.interrupts.intx ? 1 : 0);
  EXPECT_THAT(config.warnings, ::testing::IsEmpty());

  ASSERT_EQ(config.bars.size(), 6u);
  EXPECT_EQ(config.bars[0].kind, ConfigBar::Kind::kMemory32);
  EXPECT_FALSE(config.bars[0].prefetchable);
  EXPECT_EQ(config.bars[2].kind, ConfigBar::Kind::kMemory64);
  EXPECT_TRUE(config.bars[2].prefetchable);
  EXPECT_EQ(config.bars[3].kind, ConfigBar::Kind::kUpperHalf);
  EXPECT_EQ(config.bars[4].kind, ConfigBar::Kind::kIo);
  ASSERT_TRUE(config.rom.has_value());
  EXPECT_FALSE(config.rom->enabled);
}

// Every capability the spec asks for, with its declared parameters.
TEST_F(InspectEndToEndTest, CapabilitiesMatchDeclaration) {
  const DeviceSnapshot device = Probe();
  ASSERT_OK_AND_ASSIGN(ConfigSpaceInfo config, DecodeConfigSpace(device.config));
  EXPECT_NE(config.Find<PowerManagementCapability>(), nullptr);

  const MsiCapability* msi = config.Find<MsiCapability>();
  ASSERT_NE(msi, nullptr);
  EXPECT_EQ(msi->vectors_capable, spec_.interrupts.msi_vectors);
  EXPECT_EQ(msi->address64, spec_.interrupts.msi_64bit);
  EXPECT_EQ(msi->per_vector_mask, spec_.interrupts.msi_per_vector_mask);
  EXPECT_FALSE(msi->enabled);

  const MsixCapability* msix = config.Find<MsixCapability>();
  ASSERT_NE(msix, nullptr);
  EXPECT_EQ(msix->table_size, spec_.interrupts.msix_vectors);
  EXPECT_EQ(msix->table_bar, spec_.interrupts.msix_bar);
  EXPECT_EQ(msix->table_offset, spec_.interrupts.msix_table_offset);
  EXPECT_EQ(msix->pba_bar, spec_.interrupts.msix_bar);
  EXPECT_EQ(msix->pba_offset, spec_.interrupts.msix_pba_offset);

  const ExpressCapability* exp = config.Find<ExpressCapability>();
  ASSERT_NE(exp, nullptr);
  EXPECT_EQ(exp->type, PCI_EXP_TYPE_ENDPOINT);
  EXPECT_TRUE(exp->has_link);

  const VendorCapability* vendor = config.Find<VendorCapability>();
  ASSERT_NE(vendor, nullptr);
  EXPECT_EQ(vendor->payload, kServedVendorPayload);

  const SerialNumberCapability* dsn = config.Find<SerialNumberCapability>();
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(dsn->serial, kServedSerial);

  const VendorExtendedCapability* vsec = config.Find<VendorExtendedCapability>();
  ASSERT_NE(vsec, nullptr);
  EXPECT_EQ(vsec->vsec_id, kServedVsecId);
  EXPECT_EQ(vsec->payload, kServedVsecPayload);
}

TEST_F(InspectEndToEndTest, IrqCountsMatchDeclaration) {
  const DeviceSnapshot device = Probe();
  const InterruptSpec& irq = spec_.interrupts;
  EXPECT_EQ(device.irq_count(kIntxIrq), irq.intx ? 1u : 0u);
  EXPECT_EQ(device.irq_count(kMsiIrq), irq.msi_vectors);
  EXPECT_EQ(device.irq_count(kMsixIrq), irq.msix_vectors);
  EXPECT_EQ(device.irq_count(kErrIrq), irq.err ? 1u : 0u);
  EXPECT_EQ(device.irq_count(kReqIrq), irq.req ? 1u : 0u);
}

// The listing, through the command as the binary runs it (its own
// connection), names every declared element and finds nothing amiss.
TEST_F(InspectEndToEndTest, ListingShowsDeclaredDevice) {
  ASSERT_OK_AND_ASSIGN(Command command, ParseCommand({served_->socket_path()}, false));
  ASSERT_OK_AND_ASSIGN(std::string listing, RunCommand(command));
  const pci::Identity& id = spec_.identity;
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("%04x:%04x ", id.vendor_id, id.device_id)));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("[%04x] (prog-if %02x) (rev %02x)",
                                                 id.class_code >> 8, id.class_code & 0xff,
                                                 id.revision)));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("Subsystem: %04x:%04x", id.subsystem_vendor_id,
                                                 id.subsystem_id)));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat("Region 0: Memory at 00000000 (32-bit, "
                                              "non-prefetchable) [size=",
                                              FormatSize(spec_.bars[0].size), "]")));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat("Region 2: Memory at 0000000000000000 (64-bit, "
                                              "prefetchable) [size=",
                                              FormatSize(spec_.bars[2].size), "]")));
  EXPECT_THAT(listing, HasSubstr("sparse mmap: [0x0-0xfff] [0x4000-0x5fff]"));
  EXPECT_THAT(listing, Not(HasSubstr("Region 3:")));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat("Region 4: I/O ports at 0000 [size=",
                                              FormatSize(spec_.bars[4].size), "]")));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat("Expansion ROM at 00000000 [disabled] [size=",
                                              FormatSize(spec_.rom.size), "]")));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("type 0x%x (PCI vendor 1b36) subtype 0x%x",
                                                 kServedRegionType, kServedRegionSubtype)));
  EXPECT_THAT(listing, HasSubstr("] Power Management version 3"));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("vectors 1/%d 64-bit+ per-vector-mask+",
                                                 spec_.interrupts.msi_vectors)));
  EXPECT_THAT(listing,
              HasSubstr(absl::StrFormat("table size %d", spec_.interrupts.msix_vectors)));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("Vector table: BAR %d offset 0x%08x",
                                                 spec_.interrupts.msix_bar,
                                                 spec_.interrupts.msix_table_offset)));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("PBA: BAR %d offset 0x%08x",
                                                 spec_.interrupts.msix_bar,
                                                 spec_.interrupts.msix_pba_offset)));
  EXPECT_THAT(listing, HasSubstr("] PCI Express v2 Endpoint"));
  EXPECT_THAT(listing, HasSubstr(absl::StrCat("Payload: ", HexBytes(kServedVendorPayload))));
  EXPECT_THAT(listing, HasSubstr("Device Serial Number 01-02-03-04-05-06-07-08"));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("Vendor Specific: id 0x%04x rev 1",
                                                 kServedVsecId)));
  EXPECT_THAT(listing, HasSubstr("    INTx   1 vector,"));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("    MSI    %d vectors,",
                                                 spec_.interrupts.msi_vectors)));
  EXPECT_THAT(listing, HasSubstr(absl::StrFormat("    MSI-X  %d vectors,",
                                                 spec_.interrupts.msix_vectors)));
  EXPECT_THAT(listing, HasSubstr("    ERR    1 vector,"));
  EXPECT_THAT(listing, HasSubstr("    REQ    none"));
  // The framework's config space agrees with its vfio info.
  EXPECT_THAT(listing, Not(HasSubstr("Warnings:")));
}

// Inspecting sends only reads: the device sees no config or region write.
// The write at the end shows the counters do count.
TEST_F(InspectEndToEndTest, InspectingWritesNothing) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(served_->socket_path()));
  for (Command::Kind kind : {Command::Kind::kListing, Command::Kind::kSpec}) {
    Command command;
    command.kind = kind;
    command.socket_path = served_->socket_path();
    ASSERT_OK(RunCommandOn(*client, command).status());
  }
  EXPECT_EQ(device_.config_writes(), 0);
  EXPECT_EQ(device_.region_writes(), 0);

  ASSERT_OK(client->RegionWrite(0, 0, std::vector<uint8_t>{1}));
  ASSERT_OK(client->RegionWrite(kConfigRegion, PCI_COMMAND, std::vector<uint8_t>{0}));
  EXPECT_EQ(device_.region_writes(), 1);
  EXPECT_EQ(device_.config_writes(), 1);
}

}  // namespace
}  // namespace vfu::inspect
