// The GPIO device migrates: its registers and outside levels arrive on
// another instance through the framework's stream, and a stopped device
// raises no interrupt until it runs again.
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "devices/gpio/gpio_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu::devices {
namespace {

using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using S = MigrationState;

void WriteRegister(GpioDevice& d, uint64_t offset, uint32_t value) {
  const uint8_t bytes[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                            static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
  ASSERT_THAT(d.WriteRegion(0, offset, bytes), IsOk());
}

uint32_t ReadRegister(GpioDevice& d, uint64_t offset) {
  uint8_t bytes[4] = {};
  EXPECT_THAT(d.ReadRegion(0, offset, absl::MakeSpan(bytes)), IsOk());
  return uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 |
         uint32_t{bytes[3]} << 24;
}

std::string SaveStopped(GpioDevice& d) {
  EXPECT_THAT(d.OnMigrationArc(S::kRunning, S::kStop), IsOk());
  EXPECT_THAT(d.OnMigrationArc(S::kStop, S::kStopCopy), IsOk());
  std::string stream;
  std::vector<uint8_t> buffer(4096);
  while (true) {
    absl::StatusOr<size_t> n = d.ReadMigrationData(absl::MakeSpan(buffer));
    EXPECT_THAT(n.status(), IsOk());
    if (!n.ok()) break;
    stream.append(reinterpret_cast<const char*>(buffer.data()), *n);
    if (*n < buffer.size()) break;
  }
  EXPECT_THAT(d.OnMigrationArc(S::kStopCopy, S::kStop), IsOk());
  return stream;
}

absl::Status Load(GpioDevice& d, const std::string& stream) {
  EXPECT_THAT(d.OnMigrationArc(S::kRunning, S::kStop), IsOk());
  EXPECT_THAT(d.OnMigrationArc(S::kStop, S::kResuming), IsOk());
  EXPECT_THAT(d.WriteMigrationData(absl::MakeConstSpan(
                  reinterpret_cast<const uint8_t*>(stream.data()), stream.size())),
              IsOk());
  return d.OnMigrationArc(S::kResuming, S::kStop);
}

UniqueFd AssignMsi(GpioDevice& d) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(fd.get()));
  wire::SetIrqsRequest request{.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = kMsiIrq,
                               .start = 0,
                               .count = 1};
  EXPECT_THAT(d.SetIrqs(request, fds), IsOk());
  return fd;
}

uint64_t Drain(const UniqueFd& fd) {
  uint64_t value = 0;
  return ::read(fd.get(), &value, sizeof(value)) == sizeof(value) ? value : 0;
}

TEST(GpioMigrationTest, RegistersAndInputLevelsMigrate) {
  GpioDevice source;
  WriteRegister(source, GpioDevice::kRegDirection, 0x00f0);
  WriteRegister(source, GpioDevice::kRegOutput, 0x0030);
  WriteRegister(source, GpioDevice::kRegIrqEnable, 0x0003);
  ASSERT_THAT(source.SetInputLine(0, true), IsOk());  // sets IRQ_STATUS bit 0
  ASSERT_THAT(source.SetInputLine(9, true), IsOk());
  const std::string stream = SaveStopped(source);

  GpioDevice destination;
  ASSERT_THAT(Load(destination, stream), IsOk());
  for (uint64_t reg : {GpioDevice::kRegInput, GpioDevice::kRegOutput, GpioDevice::kRegDirection,
                       GpioDevice::kRegIrqEnable, GpioDevice::kRegIrqStatus,
                       GpioDevice::kRegControl}) {
    EXPECT_EQ(ReadRegister(destination, reg), ReadRegister(source, reg)) << "register " << reg;
  }
  EXPECT_EQ(ReadRegister(destination, GpioDevice::kRegIrqStatus), 1u);
  EXPECT_EQ(ReadRegister(destination, GpioDevice::kRegInput), (1u << 9) | 1u);
  EXPECT_EQ(destination.OutputLevels(), 0x0030);
}

// In STOP an input event is recorded but raises nothing; back in RUNNING
// the pending line interrupts once.
TEST(GpioMigrationTest, StoppedDeviceRaisesNoInterruptUntilItRuns) {
  GpioDevice device;
  UniqueFd msi = AssignMsi(device);
  WriteRegister(device, GpioDevice::kRegIrqEnable, 0x0001);
  ASSERT_THAT(device.OnMigrationArc(S::kRunning, S::kStop), IsOk());
  ASSERT_THAT(device.SetInputLine(0, true), IsOk());
  EXPECT_EQ(Drain(msi), 0u);
  EXPECT_EQ(ReadRegister(device, GpioDevice::kRegIrqStatus), 1u);
  ASSERT_THAT(device.OnMigrationArc(S::kStop, S::kRunning), IsOk());
  EXPECT_EQ(Drain(msi), 1u);
}

// A stream damaged in transit is refused at RESUMING -> STOP.
TEST(GpioMigrationTest, CorruptedStreamIsRefused) {
  GpioDevice source;
  std::string stream = SaveStopped(source);
  stream[stream.size() / 2] ^= 0x08;
  GpioDevice destination;
  const absl::Status status = Load(destination, stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("refused"));
}

}  // namespace
}  // namespace vfu::devices
