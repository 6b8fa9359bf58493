// The migrate tool's commands against two GPIO servers in this process:
// live migration, save / print / load through a file, and the argument
// rules.
#include "tools/migrate/migrate_command.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "devices/gpio/gpio_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/migration.h"
#include "vfu/vfu.h"

namespace vfu::migrate {
namespace {

using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using devices::GpioDevice;

class MigrateCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, Server::Create());
    ASSERT_OK(server_->AddDevice(Source(), source_));
    ASSERT_OK(server_->AddDevice(Destination(), destination_));
    ASSERT_OK(server_->Start());
    // Give the source state to carry.
    std::unique_ptr<Client> client;
    ASSERT_OK_AND_ASSIGN(client, Client::Connect(Source(), ClientOptions()));
    WriteRegister(*client, GpioDevice::kRegDirection, 0x0ff0);
    WriteRegister(*client, GpioDevice::kRegOutput, 0x0a50);
  }
  void TearDown() override { server_->Stop(); }

  std::string Source() const { return dir_.File("src.sock"); }
  std::string Destination() const { return dir_.File("dst.sock"); }

  static void WriteRegister(Client& client, uint64_t offset, uint32_t value) {
    const uint8_t bytes[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                              static_cast<uint8_t>(value >> 16),
                              static_cast<uint8_t>(value >> 24)};
    ASSERT_OK(client.RegionWrite(kBar0Region, offset, bytes));
  }

  testing::ScopedTempDir dir_;
  GpioDevice source_;
  GpioDevice destination_;
  std::unique_ptr<Server> server_;
};

TEST_F(MigrateCommandTest, MigratesBetweenServersAndPrintsFigures) {
  std::ostringstream out;
  ASSERT_OK(RunCommand({.from = Source(), .to = Destination()}, out));
  EXPECT_EQ(destination_.OutputLevels(), 0x0a50);
  EXPECT_THAT(out.str(), HasSubstr("pre-copy round 1"));
  EXPECT_THAT(out.str(), HasSubstr("stop-copy"));
  EXPECT_THAT(out.str(), HasSubstr("downtime"));
  EXPECT_THAT(out.str(), HasSubstr("device state"));
}

TEST_F(MigrateCommandTest, SavePrintLoadThroughAFile) {
  const std::string file = dir_.File("state");
  std::ostringstream out;
  ASSERT_OK(RunCommand({.from = Source(), .save_file = file}, out));
  EXPECT_THAT(out.str(), HasSubstr("saved to"));

  std::ostringstream text;
  ASSERT_OK(RunCommand({.print_file = file}, text));
  EXPECT_THAT(text.str(), HasSubstr("device_type: \"vfu-gpio\""));
  EXPECT_THAT(text.str(), HasSubstr("framework_state"));
  EXPECT_THAT(text.str(), HasSubstr("end {"));

  std::ostringstream loaded;
  ASSERT_OK(RunCommand({.to = Destination(), .load_file = file}, loaded));
  EXPECT_EQ(destination_.OutputLevels(), 0x0a50);
}

// A damaged file prints what decoded, then fails; loading it is refused
// by the destination, which is left running its own state.
TEST_F(MigrateCommandTest, DamagedFileIsRefused) {
  const std::string file = dir_.File("state");
  std::ostringstream out;
  ASSERT_OK(RunCommand({.from = Source(), .save_file = file}, out));
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[bytes.size() - 5] ^= 0x01;
  {
    std::ofstream outfile(file, std::ios::binary | std::ios::trunc);
    outfile << bytes;
  }
  std::ostringstream text;
  EXPECT_THAT(RunCommand({.print_file = file}, text),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(text.str(), HasSubstr("# chunk 1"));
  std::ostringstream loaded;
  EXPECT_THAT(RunCommand({.to = Destination(), .load_file = file}, loaded),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(destination_.OutputLevels(), 0);
}

TEST(MigrateCommandArgsTest, CombinationsAreChecked) {
  EXPECT_THAT(ValidateCommand({.from = "a", .to = "b"}), IsOk());
  EXPECT_THAT(ValidateCommand({.from = "a", .save_file = "f"}), IsOk());
  EXPECT_THAT(ValidateCommand({.to = "b", .load_file = "f"}), IsOk());
  EXPECT_THAT(ValidateCommand({.print_file = "f"}), IsOk());
  EXPECT_THAT(ValidateCommand({}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommand({.from = "a"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommand({.from = "a", .to = "b", .save_file = "f"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommand({.to = "b"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommand({.from = "a", .print_file = "f"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vfu::migrate
