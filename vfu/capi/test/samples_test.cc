// The C samples, built against the C API and run as processes, served to
// vfu's client: what they report over the wire, and for the copy engine,
// the same end-to-end check `inspect dma-check` runs (fd-backed memory and
// memory reached only through DMA_READ / DMA_WRITE messages).
#include <linux/pci_regs.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices/dma_engine/dma_check.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/device/migration_state.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/migration_data.h"

namespace vfu::capi {
namespace {

using ::vfu::testing::ChildProcess;
using ::vfu::testing::ScopedTempDir;

struct Sample {
  Sample(const std::string& binary, const std::string& socket)
      : process(binary, {socket}), socket(socket) {
    EXPECT_TRUE(process.WaitForOutput("serving " + socket));
  }
  ChildProcess process;
  std::string socket;
};

uint32_t Le32(const std::vector<uint8_t>& bytes, size_t at) {
  uint32_t value;
  std::memcpy(&value, bytes.data() + at, 4);
  return value;
}

TEST(SamplesTest, GpioReportsItsIdentityAndLinesThatCount) {
  ScopedTempDir dir("vfu-capi");
  Sample gpio("vfu/capi/gpio_server", dir.path() + "/gpio.sock");
  // Twice: the sample serves one client after another.
  for (int round = 0; round < 2; ++round) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(gpio.socket));
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, client->RegionRead(7, PCI_VENDOR_ID, 4));
    EXPECT_EQ(Le32(id, 0), 0x0dc8494fu);
    ASSERT_OK_AND_ASSIGN(RegionInfo bar2, client->GetRegionInfo(2));
    EXPECT_EQ(bar2.info.size, 256u);
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> first, client->RegionRead(2, 0, 2));
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> second, client->RegionRead(2, 0, 2));
    EXPECT_EQ(static_cast<uint16_t>(second[0] | second[1] << 8),
              static_cast<uint16_t>((first[0] | first[1] << 8) + 1));
    ASSERT_OK_AND_ASSIGN(RegionInfo bar0, client->GetRegionInfo(0));
    EXPECT_EQ(bar0.info.size, 0u);
  }
}

TEST(SamplesTest, NullDeviceHasConfigSpaceOnly) {
  ScopedTempDir dir("vfu-capi");
  Sample null_device("vfu/capi/null_server", dir.path() + "/null.sock");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(null_device.socket));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, client->RegionRead(7, PCI_VENDOR_ID, 4));
  EXPECT_EQ(Le32(id, 0), 0x0000f00du);
  ASSERT_OK_AND_ASSIGN(RegionInfo config, client->GetRegionInfo(7));
  EXPECT_EQ(config.info.size, 256u);
  // Writes outside the header and capabilities are refused without a
  // config space callback.
  EXPECT_FALSE(client->RegionWrite(7, 0x80, std::vector<uint8_t>{1, 2, 3, 4}).ok());
}

TEST(SamplesTest, CopyEngineCopiesFdBackedMemory) {
  ScopedTempDir dir("vfu-capi");
  Sample dma("vfu/capi/dma_server", dir.path() + "/dma.sock");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(dma.socket));
  ASSERT_OK_AND_ASSIGN(devices::DmaCheckReport report,
                       devices::RunDmaCheck(*client, {.memory = devices::DmaCheckMemory::kFdBacked,
                                                      .bytes = 300 * 1024}));
  EXPECT_TRUE(report.ok) << devices::FormatDmaCheckReport(report);
}

TEST(SamplesTest, CopyEngineCopiesThroughDmaMessages) {
  ScopedTempDir dir("vfu-capi");
  Sample dma("vfu/capi/dma_server", dir.path() + "/dma.sock");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(dma.socket));
  ASSERT_OK_AND_ASSIGN(devices::DmaCheckReport report,
                       devices::RunDmaCheck(*client, {.memory = devices::DmaCheckMemory::kMessages,
                                                      .bytes = 200 * 1024,
                                                      .channel = 2}));
  EXPECT_TRUE(report.ok) << devices::FormatDmaCheckReport(report);
  EXPECT_GT(report.message_read_bytes, 0u);
  EXPECT_GT(report.message_write_bytes, 0u);
}

absl::Status SetState(Client& client, MigrationState state) {
  std::vector<uint8_t> payload;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 16,
       .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kMigDeviceState,
                                         wire::kDeviceFeatureSet),
       .data = wire::FeatureMigState{.device_state = static_cast<uint32_t>(state)}},
      payload);
  return client.Call(wire::Command::kDeviceFeature, payload).status();
}

std::vector<uint8_t> Le32Bytes(uint32_t value) {
  std::vector<uint8_t> bytes(4);
  std::memcpy(bytes.data(), &value, 4);
  return bytes;
}

// Channel 1's SOURCE_LO and LENGTH registers, programmed on one copy engine,
// reach another through a migration stream.
TEST(SamplesTest, CopyEngineMigratesItsRegisters) {
  ScopedTempDir dir("vfu-capi");
  Sample source("vfu/capi/dma_server", dir.path() + "/src.sock");
  Sample destination("vfu/capi/dma_server", dir.path() + "/dst.sock");
  constexpr uint64_t kSourceLo = 0x100 + 0x40 + 0x00;
  constexpr uint64_t kLength = 0x100 + 0x40 + 0x10;
  std::vector<uint8_t> stream;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(source.socket));
    ASSERT_OK(client->RegionWrite(0, kSourceLo, Le32Bytes(0x12345678)));
    ASSERT_OK(client->RegionWrite(0, kLength, Le32Bytes(77)));
    ASSERT_OK(SetState(*client, MigrationState::kStopCopy));
    for (;;) {
      std::vector<uint8_t> payload;
      wire::EncodeMigDataReadRequest({.argsz = 8 + 64, .size = 64}, payload);
      ASSERT_OK_AND_ASSIGN(Reply reply, client->Call(wire::Command::kMigDataRead, payload));
      ASSERT_OK_AND_ASSIGN(wire::MigDataReadReply data,
                           wire::DecodeMigDataReadReply(reply.payload(), 0, 64));
      stream.insert(stream.end(), data.data.begin(), data.data.end());
      if (data.data.size() < 64) break;
    }
  }
  ASSERT_FALSE(stream.empty());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(destination.socket));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> before, client->RegionRead(0, kSourceLo, 4));
  EXPECT_EQ(Le32(before, 0), 0u);
  ASSERT_OK(SetState(*client, MigrationState::kResuming));
  std::vector<uint8_t> payload;
  wire::EncodeMigDataWriteRequest(
      {.argsz = static_cast<uint32_t>(8 + stream.size()), .data = stream}, payload);
  ASSERT_OK(client->Call(wire::Command::kMigDataWrite, payload).status());
  ASSERT_OK(SetState(*client, MigrationState::kRunning));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> source_lo, client->RegionRead(0, kSourceLo, 4));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> length, client->RegionRead(0, kLength, 4));
  EXPECT_EQ(Le32(source_lo, 0), 0x12345678u);
  EXPECT_EQ(Le32(length, 0), 77u);
  // An incomplete stream fails RESUMING -> STOP (the device says so).
  ASSERT_OK(SetState(*client, MigrationState::kResuming));
  std::vector<uint8_t> half;
  wire::EncodeMigDataWriteRequest(
      {.argsz = static_cast<uint32_t>(8 + stream.size() / 2),
       .data = absl::MakeConstSpan(stream).subspan(0, stream.size() / 2)},
      half);
  ASSERT_OK(client->Call(wire::Command::kMigDataWrite, half).status());
  EXPECT_FALSE(SetState(*client, MigrationState::kRunning).ok());
}

}  // namespace
}  // namespace vfu::capi
