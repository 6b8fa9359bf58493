// A device that is not vfu's PCI model: a bare vfu::Device serving a
// hand-made, partly malformed config space and region layout over a real
// socket, as another implementation might. The inspector must list it,
// say what is wrong, and never fail or hang on it.
#include <linux/pci_regs.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "tools/inspect/command.h"
#include "tools/inspect/config_image.h"
#include "tools/inspect/served_device.h"
#include "vfu/client/client.h"
#include "vfu/device/device.h"

namespace vfu::inspect {
namespace {

using ::testing::HasSubstr;
using ::vfu::inspect::testing::Concat;
using ::vfu::inspect::testing::ConfigImage;
using ::vfu::inspect::testing::Le16;
using ::vfu::inspect::testing::Le32;
using ::vfu::inspect::testing::ServedDevice;
using ::vfu::testing::StatusIs;

class HandMadeDevice : public Device {
 public:
  explicit HandMadeDevice(std::vector<uint8_t> config) : config_(std::move(config)) {}

  RegionDescription DescribeRegion(uint32_t index) const override {
    RegionDescription d;
    if (index == 0) {
      d.size = 0x3000;  // not a power of two, as no BAR can be
      d.readable = d.writable = true;
    } else if (index == 7) {
      d.size = config_.size();
      d.readable = true;
    }
    return d;
  }
  uint32_t IrqCount(uint32_t index) const override { return index == 1 ? 3 : 0; }

  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) override {
    if (index != 7) {
      std::fill(out.begin(), out.end(), 0);
      return absl::OkStatus();
    }
    if (fail_config_reads_) return absl::PermissionDeniedError("config reads refused");
    std::memcpy(out.data(), config_.data() + offset, out.size());
    return absl::OkStatus();
  }

  // Set before serving.
  void set_fail_config_reads() { fail_config_reads_ = true; }

 private:
  const std::vector<uint8_t> config_;
  bool fail_config_reads_ = false;
};

// A chain that loops, an MSI-X capability placing its table in a BAR that
// does not exist, and 3 MSI vectors without an MSI capability.
std::vector<uint8_t> MalformedConfig(size_t size) {
  ConfigImage image(256);
  image.Identity(0x1234, 0xabcd, 0x118000, 9)
      .AddCapability(0x40, PCI_CAP_ID_MSIX, Concat({Le16(7), Le32(0x0 | 3), Le32(0x800 | 3)}))
      .AddCapability(0x50, PCI_CAP_ID_VNDR, {4, 0x77});
  image.Set8(0x51, 0x40);
  std::vector<uint8_t> bytes = image.bytes();
  bytes.resize(size);
  return bytes;
}

absl::StatusOr<std::string> Inspect(const std::string& socket, bool spec) {
  absl::StatusOr<Command> command = ParseCommand({socket}, spec);
  if (!command.ok()) return command.status();
  return RunCommand(*command);
}

TEST(ForeignDeviceTest, MalformedDeviceIsListedWithWarnings) {
  HandMadeDevice device(MalformedConfig(256));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device));
  ASSERT_OK_AND_ASSIGN(std::string listing, Inspect(served->socket_path(), false));
  EXPECT_THAT(listing, HasSubstr("1234:abcd Signal processing controller [1180]"));
  EXPECT_THAT(listing, HasSubstr("  Region 0: Memory at 00000000 (32-bit, non-prefetchable) "
                                 "[size=12K]\n"));
  EXPECT_THAT(listing, HasSubstr("  [40] MSI-X\n"));
  EXPECT_THAT(listing, HasSubstr("  [50] Vendor Specific, length 4\n"));
  EXPECT_THAT(listing, HasSubstr("  Warnings:\n"));
  EXPECT_THAT(listing, HasSubstr("capability pointer 0x40 at 0x51 loops back; chain ends"));
  EXPECT_THAT(listing, HasSubstr("region 0: size 12288 is not a power of two"));
  EXPECT_THAT(listing, HasSubstr("MSI-X table in BAR 3, which is not implemented"));
  EXPECT_THAT(listing, HasSubstr("IRQ info reports 3 MSI vectors, but there is no MSI capability"));
  EXPECT_THAT(listing, HasSubstr("MSI has 3 vectors; MSI allows 1, 2, 4, 8, 16 or 32"));
}

// The spec of such a device still comes out, with notes for what it
// cannot say.
TEST(ForeignDeviceTest, MalformedDeviceSpecHasNotes) {
  HandMadeDevice device(MalformedConfig(256));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device));
  ASSERT_OK_AND_ASSIGN(std::string text, Inspect(served->socket_path(), true));
  EXPECT_THAT(text, HasSubstr("# note: config space: capability pointer 0x40 at 0x51 loops back"));
  EXPECT_THAT(text, HasSubstr("msix_vectors: 8\n"));
  EXPECT_THAT(text, HasSubstr("msi_vectors: 3\n"));
}

// An odd-sized config region is decoded as far as it goes.
TEST(ForeignDeviceTest, ShortConfigRegion) {
  HandMadeDevice device(MalformedConfig(0x48));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device));
  ASSERT_OK_AND_ASSIGN(std::string listing, Inspect(served->socket_path(), false));
  EXPECT_THAT(listing, HasSubstr("config space is 72 bytes; PCI defines 256 and 4096"));
  EXPECT_THAT(listing, HasSubstr("capability 0x11 at 0x40: its 12 bytes of registers run past 0x48"));
}

// A server that refuses config reads: the listing says so; the spec,
// which needs config space, is an error naming the cause.
TEST(ForeignDeviceTest, RefusedConfigReads) {
  HandMadeDevice device(MalformedConfig(256));
  device.set_fail_config_reads();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(served->socket_path()));
  Command listing{.kind = Command::Kind::kListing, .socket_path = served->socket_path()};
  ASSERT_OK_AND_ASSIGN(std::string text, RunCommandOn(*client, listing));
  EXPECT_THAT(text, HasSubstr("Config space unavailable: "));
  EXPECT_THAT(text, HasSubstr("  Region 0: [size=12K] (no BAR register)\n"));
  Command spec{.kind = Command::Kind::kSpec, .socket_path = served->socket_path()};
  EXPECT_THAT(RunCommandOn(*client, spec), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace vfu::inspect
