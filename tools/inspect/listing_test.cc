#include "tools/inspect/listing.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/inspect/config_image.h"
#include "tools/inspect/test_snapshot.h"

namespace vfu::inspect {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::vfu::inspect::testing::ConfigImage;
using ::vfu::inspect::testing::TestConfigImage;
using ::vfu::inspect::testing::TestSnapshot;

TEST(FormatSizeTest, LargestDividingUnit) {
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatSize(256), "256");
  EXPECT_EQ(FormatSize(4096), "4K");
  EXPECT_EQ(FormatSize(0x1800), "6K");
  EXPECT_EQ(FormatSize(1 << 20), "1M");
  EXPECT_EQ(FormatSize(uint64_t{3} << 30), "3G");
  EXPECT_EQ(FormatSize(4097), "4097");
}

// Identity, class name and the header registers.
TEST(ListingTest, Identity) {
  const std::string listing = FormatListing(TestSnapshot());
  EXPECT_THAT(listing, HasSubstr("vfio-user device at /run/vfu/net0.sock\n"));
  EXPECT_THAT(listing, HasSubstr("Device: pci+ reset+, 10 regions, 5 IRQ indexes\n"));
  EXPECT_THAT(listing,
              HasSubstr("1af4:1041 Ethernet controller [0200] (prog-if 00) (rev 01)\n"));
  EXPECT_THAT(listing, HasSubstr("  Subsystem: 1af4:1100\n"));
  EXPECT_THAT(listing, HasSubstr("  Header type: 00 (general device), single function\n"));
  EXPECT_THAT(listing, HasSubstr("Command: io- memory+ bus-master-"));
  EXPECT_THAT(listing, HasSubstr("Status: capabilities+ interrupt-"));
  EXPECT_THAT(listing, HasSubstr("  Interrupt: pin A, line 0\n"));
}

// Each BAR: config-space decode, size and flags from region info.
TEST(ListingTest, BarsRomAndRegions) {
  const std::string listing = FormatListing(TestSnapshot());
  EXPECT_THAT(listing, HasSubstr(
      "  Region 0: Memory at fe000000 (32-bit, non-prefetchable) [size=16K]\n"
      "        vfio region 0: read write\n"));
  EXPECT_THAT(listing, HasSubstr(
      "  Region 2: Memory at 0000000100000000 (64-bit, prefetchable) [size=64K]\n"
      "        vfio region 2: read write mmap, mmap offset 0x0 (fd attached), "
      "sparse mmap: [0x0-0xfff] [0x2000-0x2fff]\n"));
  EXPECT_THAT(listing, Not(HasSubstr("Region 3:")));
  EXPECT_THAT(listing, HasSubstr("  Region 4: I/O ports at c000 [size=256]\n"));
  EXPECT_THAT(listing, HasSubstr("  Expansion ROM at 00000000 [disabled] [size=64K]\n"
                                 "        vfio region 6: read\n"));
  EXPECT_THAT(listing, HasSubstr("  Config space: [size=4K]\n"));
  EXPECT_THAT(listing, HasSubstr(
      "  Region 9 (device specific): [size=4K]\n"
      "        vfio region 9: read write, type 0x80001af4 (PCI vendor 1af4) subtype 0x1\n"));
}

// Every capability kind, decoded or raw.
TEST(ListingTest, Capabilities) {
  const std::string listing = FormatListing(TestSnapshot());
  EXPECT_THAT(listing, HasSubstr("  [40] Power Management version 3\n"));
  EXPECT_THAT(listing, HasSubstr("no-soft-reset+"));
  EXPECT_THAT(listing, HasSubstr("  [48] MSI\n       enable- vectors 1/4 64-bit+ per-vector-mask+\n"));
  EXPECT_THAT(listing, HasSubstr("  [60] MSI-X\n       enable- function-mask- table size 16\n"
                                 "       Vector table: BAR 0 offset 0x00002000\n"
                                 "       PBA: BAR 0 offset 0x00003000\n"));
  EXPECT_THAT(listing, HasSubstr("  [6c] PCI Express v2 Endpoint, no slot, interrupt message 0\n"));
  EXPECT_THAT(listing, HasSubstr("max read request 512 bytes"));
  EXPECT_THAT(listing, HasSubstr("Link status: speed 2.5GT/s, width x1"));
  EXPECT_THAT(listing, HasSubstr("  [a8] Vendor Specific, length 8\n       Payload: 01 02 03 04 05\n"));
  EXPECT_THAT(listing, HasSubstr("  [b0] Unknown (id 0x42)\n       Raw: 42 00 aa bb, then 60 zero bytes\n"));
  EXPECT_THAT(listing, HasSubstr("  [100 v1] Device Serial Number 00-11-22-33-44-55-66-77\n"));
  EXPECT_THAT(listing, HasSubstr("  [10c v1] Vendor Specific: id 0x1234 rev 2 length 16\n"
                                 "       Payload: 09 09 09 09 09 09 09 09\n"));
  EXPECT_THAT(listing, HasSubstr("  [11c v1] Unknown (id 0x002a)\n"
                                 "       Raw: 2a 00 01 00 5a, then 59 zero bytes\n"));
}

TEST(ListingTest, Interrupts) {
  const std::string listing = FormatListing(TestSnapshot());
  EXPECT_THAT(listing, HasSubstr("    INTx   1 vector, eventfd+ maskable+ automasked+ noresize-\n"));
  EXPECT_THAT(listing, HasSubstr("    MSI    4 vectors, eventfd+ maskable- automasked- noresize+\n"));
  EXPECT_THAT(listing, HasSubstr("    MSI-X  16 vectors,"));
  EXPECT_THAT(listing, HasSubstr("    ERR    1 vector,"));
  EXPECT_THAT(listing, HasSubstr("    REQ    none\n"));
  EXPECT_THAT(listing, Not(HasSubstr("Warnings:")));
}

// A malformed chain and a disagreement both reach the warnings section.
TEST(ListingTest, WarningsAreListed) {
  ConfigImage image = TestConfigImage();
  image.Set8(0xb1, 0x40);  // the last capability points back to the first
  DeviceSnapshot device = TestSnapshot(image);
  device.irqs[VFIO_PCI_MSI_IRQ_INDEX].info.count = 1;
  const std::string listing = FormatListing(device);
  EXPECT_THAT(listing, HasSubstr("  Warnings:\n"));
  EXPECT_THAT(listing, HasSubstr("    capability pointer 0x40 at 0xb1 loops back; chain ends\n"));
  EXPECT_THAT(listing, HasSubstr("    MSI capability offers 4 vectors, IRQ info reports 1\n"));
}

// Without config space the regions are still listed from region info.
TEST(ListingTest, ConfigUnavailable) {
  DeviceSnapshot device = TestSnapshot();
  device.config.clear();
  device.config_status = absl::PermissionDeniedError("no read access");
  const std::string listing = FormatListing(device);
  EXPECT_THAT(listing, HasSubstr("Config space unavailable: PERMISSION_DENIED: no read access"));
  EXPECT_THAT(listing, HasSubstr("  Region 0: [size=16K] (no BAR register)\n"));
  EXPECT_THAT(listing, Not(HasSubstr("Capabilities:")));
}

// A region the server refused is shown with the error, not skipped.
TEST(ListingTest, FailedRegionInfoIsShown) {
  DeviceSnapshot device = TestSnapshot();
  device.regions[1].status = absl::InvalidArgumentError("EINVAL");
  const std::string listing = FormatListing(device);
  EXPECT_THAT(listing, HasSubstr("vfio region 1: DEVICE_GET_REGION_INFO failed: INVALID_ARGUMENT"));
}

// Too short to decode: said, and no crash.
TEST(ListingTest, ShortConfigSpace) {
  DeviceSnapshot device = TestSnapshot();
  device.config.resize(16);
  EXPECT_THAT(FormatListing(device), HasSubstr("Config space unavailable: INVALID_ARGUMENT"));
}

}  // namespace
}  // namespace vfu::inspect
