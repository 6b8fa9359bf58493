// `inspect read` and `inspect write` against a served PciDevice's
// memory-backed regions: the bytes land where asked (checked in the
// device's own memory), come back in the dump, stay inside the region, and
// travel in chunks the server accepts.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "tools/inspect/command.h"
#include "tools/inspect/hex_dump.h"
#include "tools/inspect/region_io.h"
#include "tools/inspect/served_device.h"
#include "vfu/client/client.h"

namespace vfu::inspect {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::vfu::inspect::testing::CountingDevice;
using ::vfu::inspect::testing::ServedDevice;
using ::vfu::inspect::testing::TestDeviceSpec;
using ::vfu::testing::StatusIs;

class RegionCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(served_, ServedDevice::Start(device_));
    ASSERT_OK_AND_ASSIGN(client_, Client::Connect(served_->socket_path()));
  }
  void TearDown() override { client_.reset(); }

  absl::StatusOr<std::string> Run(std::vector<std::string> args) {
    args.insert(args.begin() + 1, served_->socket_path());
    absl::StatusOr<Command> command = ParseCommand(args, false);
    if (!command.ok()) return command.status();
    return RunCommandOn(*client_, *command);
  }

  CountingDevice device_{TestDeviceSpec()};
  std::unique_ptr<ServedDevice> served_;
  std::unique_ptr<Client> client_;
};

// A write reaches the region's memory; a read dumps it back.
TEST_F(RegionCommandsTest, WriteThenRead) {
  ASSERT_OK_AND_ASSIGN(std::string wrote, Run({"write", "2", "0x10", "de ad be ef"}));
  EXPECT_EQ(wrote, "wrote 4 bytes to region 2 at 0x10\n");
  const absl::Span<uint8_t> memory = device_.region_memory(2);
  ASSERT_GE(memory.size(), 0x14u);
  EXPECT_THAT(memory.subspan(0x10, 4), ElementsAreArray({0xde, 0xad, 0xbe, 0xef}));

  ASSERT_OK_AND_ASSIGN(std::string dump, Run({"read", "2", "0x10", "4"}));
  EXPECT_EQ(dump, HexDump(std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef}, 0x10));
  EXPECT_THAT(dump, StartsWith("00000010: de ad be ef "));
}

// Config space is readable like any region: the first dword is the IDs.
TEST_F(RegionCommandsTest, ReadConfigHeader) {
  ASSERT_OK_AND_ASSIGN(std::string dump, Run({"read", "7", "0", "4"}));
  const uint16_t vendor = device_.spec().identity.vendor_id;
  const uint16_t id = device_.spec().identity.device_id;
  EXPECT_EQ(dump, HexDump(std::vector<uint8_t>{static_cast<uint8_t>(vendor),
                                               static_cast<uint8_t>(vendor >> 8),
                                               static_cast<uint8_t>(id),
                                               static_cast<uint8_t>(id >> 8)},
                          0));
}

// Ranges past the end of the region, or regions the device lacks, are
// refused before anything is sent.
TEST_F(RegionCommandsTest, OutsideTheRegionIsOutOfRange) {
  EXPECT_THAT(Run({"read", "4", "0xf0", "0x20"}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Run({"read", "4", "0x1000", "1"}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Run({"write", "4", "0xff", "0102"}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Run({"read", "40", "0", "1"}), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(device_.region_writes(), 0);
}

// The ROM is read-only: the server's refusal comes back as the error, and
// the memory keeps its contents.
TEST_F(RegionCommandsTest, WriteToReadOnlyRegionFails) {
  absl::StatusOr<std::string> out = Run({"write", "6", "0", "ff"});
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(device_.region_memory(kRomRegion)[0], 0);
}

// A server that accepts 64 bytes per message: a 300-byte write and read
// go in chunks and still round-trip exactly.
TEST(RegionChunkingTest, LargeRangesTravelInChunks) {
  CountingDevice device(TestDeviceSpec());
  ServerOptions options;
  options.version.max_data_xfer_size = 64;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServedDevice> served, ServedDevice::Start(device, options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(served->socket_path()));
  ASSERT_EQ(client->server_capabilities().max_data_xfer_size, 64u);

  std::vector<uint8_t> data(300);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_OK(WriteRegionRange(*client, 2, 0x105, data));
  EXPECT_EQ(device.region_writes(), 5);  // ceil(300 / 64)
  EXPECT_EQ(0, std::memcmp(device.region_memory(2).data() + 0x105, data.data(), data.size()));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> back, ReadRegionRange(*client, 2, 0x105, 300));
  EXPECT_EQ(back, data);
}

}  // namespace
}  // namespace vfu::inspect
