// The GPIO register file through REGION_READ / REGION_WRITE: access rules of
// each register, partial accesses, loopback, reset.
#include <cstdint>
#include <vector>

#include "devices/gpio/gpio_test_fixture.h"
#include "gtest/gtest.h"

namespace vfu::devices {
namespace {

using ::vfu::testing::StatusIs;
using GpioRegistersTest = GpioTest;

TEST_F(GpioRegistersTest, IdentificationRegisters) {
  EXPECT_EQ(Read32(GpioDevice::kRegId), 0x4f495047u);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, client_->RegionRead(0, GpioDevice::kRegId, 4));
  EXPECT_EQ(std::string(id.begin(), id.end()), "GPIO");
  EXPECT_EQ(Read32(GpioDevice::kRegInfo), 0x0110u);  // revision 1, 16 lines
}

// Every register starts at its reset value.
TEST_F(GpioRegistersTest, ResetValues) {
  for (uint64_t reg : {GpioDevice::kRegInput, GpioDevice::kRegOutput, GpioDevice::kRegDirection,
                       GpioDevice::kRegIrqEnable, GpioDevice::kRegIrqStatus,
                       GpioDevice::kRegControl}) {
    EXPECT_EQ(Read32(reg), 0u) << "register 0x" << std::hex << reg;
  }
}

// INPUT shows the outside levels and ignores the client's writes.
TEST_F(GpioRegistersTest, InputFollowsOutsideAndIsReadOnly) {
  ASSERT_OK(device_.SetInputLine(3, true));
  ASSERT_OK(device_.SetInputLine(15, true));
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x8008u);
  Write32(GpioDevice::kRegInput, 0);
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x8008u);
  ASSERT_OK(device_.SetInputLine(3, false));
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x8000u);
}

// ID and INFO are read-only too.
TEST_F(GpioRegistersTest, IdentificationIsReadOnly) {
  Write32(GpioDevice::kRegId, 0);
  Write32(GpioDevice::kRegInfo, 0);
  EXPECT_EQ(Read32(GpioDevice::kRegId), GpioDevice::kIdValue);
  EXPECT_EQ(Read32(GpioDevice::kRegInfo), GpioDevice::kInfoValue);
}

// Only the sixteen line bits of the RW registers stick.
TEST_F(GpioRegistersTest, ReadWriteRegistersKeepLineBits) {
  for (uint64_t reg :
       {GpioDevice::kRegOutput, GpioDevice::kRegDirection, GpioDevice::kRegIrqEnable}) {
    Write32(reg, 0xffffffff);
    EXPECT_EQ(Read32(reg), 0xffffu) << "register 0x" << std::hex << reg;
    Write32(reg, 0x1234);
    EXPECT_EQ(Read32(reg), 0x1234u) << "register 0x" << std::hex << reg;
  }
  Write32(GpioDevice::kRegControl, 0xffffffff);
  EXPECT_EQ(Read32(GpioDevice::kRegControl), GpioDevice::kControlLoopback);
}

// The outside world sees OUTPUT only on lines DIRECTION makes outputs.
TEST_F(GpioRegistersTest, OutputLevelsNeedDirection) {
  Write32(GpioDevice::kRegOutput, 0x00ff);
  EXPECT_EQ(device_.OutputLevels(), 0);
  Write32(GpioDevice::kRegDirection, 0x0f0f);
  EXPECT_EQ(device_.OutputLevels(), 0x000f);
}

// IRQ_STATUS is write-1-to-clear: ones clear their lines, zeros do nothing.
TEST_F(GpioRegistersTest, IrqStatusIsWriteOneToClear) {
  Write32(GpioDevice::kRegIrqEnable, 0x0006);
  ASSERT_OK(device_.SetInputLine(1, true));
  ASSERT_OK(device_.SetInputLine(2, true));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0006u);
  Write32(GpioDevice::kRegIrqStatus, 0);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0006u);
  Write32(GpioDevice::kRegIrqStatus, 0x0002);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0004u);
  Write32(GpioDevice::kRegIrqStatus, 0xffffffff);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0u);
}

// Changes on lines without IRQ_ENABLE leave no status; either edge counts
// on enabled ones.
TEST_F(GpioRegistersTest, StatusOnlyForEnabledLinesOnEitherEdge) {
  Write32(GpioDevice::kRegIrqEnable, 0x0001);
  ASSERT_OK(device_.SetInputLine(4, true));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0u);
  ASSERT_OK(device_.SetInputLine(0, true));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0001u);
  Write32(GpioDevice::kRegIrqStatus, 0x0001);
  ASSERT_OK(device_.SetInputLine(0, true));  // no change, no event
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0u);
  ASSERT_OK(device_.SetInputLine(0, false));  // falling edge
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0001u);
}

// A byte access touches only its byte; a wide read spans registers.
TEST_F(GpioRegistersTest, PartialAccesses) {
  Write32(GpioDevice::kRegOutput, 0x1234);
  ASSERT_OK(client_->RegionWrite(0, GpioDevice::kRegOutput + 1, std::vector<uint8_t>{0xab}));
  EXPECT_EQ(Read32(GpioDevice::kRegOutput), 0xab34u);

  Write32(GpioDevice::kRegIrqEnable, 0xffff);
  ASSERT_OK(device_.SetInputLine(0, true));
  ASSERT_OK(device_.SetInputLine(8, true));
  // A byte of ones written to IRQ_STATUS's upper byte clears line 8 only.
  ASSERT_OK(client_->RegionWrite(0, GpioDevice::kRegIrqStatus + 1, std::vector<uint8_t>{0xff}));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0001u);

  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> both,
                       client_->RegionRead(0, GpioDevice::kRegInput, 8));
  EXPECT_EQ(both, (std::vector<uint8_t>{0x01, 0x01, 0, 0, 0x34, 0xab, 0, 0}));

  // An unaligned 4-byte write covering two registers.
  ASSERT_OK(client_->RegionWrite(0, GpioDevice::kRegOutput + 2,
                                 std::vector<uint8_t>{0xee, 0xee, 0x0f, 0x00}));
  EXPECT_EQ(Read32(GpioDevice::kRegOutput), 0xab34u);  // upper half: not line bits
  EXPECT_EQ(Read32(GpioDevice::kRegDirection), 0x000fu);
}

// Past the register file the BAR reads zero and drops writes.
TEST_F(GpioRegistersTest, ReservedSpace) {
  Write32(0x100, 0xdeadbeef);
  EXPECT_EQ(Read32(0x100), 0u);
  Write32(GpioDevice::kBarSize - 4, 0xdeadbeef);
  EXPECT_EQ(Read32(GpioDevice::kBarSize - 4), 0u);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> all, client_->RegionRead(0, 0, GpioDevice::kBarSize));
  EXPECT_EQ(all.size(), GpioDevice::kBarSize);
}

// Loopback: INPUT reads OUTPUT while CONTROL.LOOPBACK is set, and the outside
// levels come back when it is cleared.
TEST_F(GpioRegistersTest, LoopbackMirrorsOutput) {
  ASSERT_OK(device_.SetInputLine(7, true));
  Write32(GpioDevice::kRegControl, GpioDevice::kControlLoopback);
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0u);
  Write32(GpioDevice::kRegOutput, 0x0501);
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x0501u);
  // Outside changes are kept for later, not shown.
  ASSERT_OK(device_.SetInputLine(6, true));
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x0501u);
  Write32(GpioDevice::kRegControl, 0);
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x00c0u);
}

// DEVICE_RESET restores every register; INPUT still shows the outside.
TEST_F(GpioRegistersTest, ResetRestoresDefaults) {
  ASSERT_OK(device_.SetInputLine(2, true));
  Write32(GpioDevice::kRegOutput, 0xffff);
  Write32(GpioDevice::kRegDirection, 0xffff);
  Write32(GpioDevice::kRegIrqEnable, 0xffff);
  Write32(GpioDevice::kRegControl, GpioDevice::kControlLoopback);  // INPUT 0x4 -> 0xffff
  ASSERT_NE(Read32(GpioDevice::kRegIrqStatus), 0u);

  ASSERT_OK(client_->Reset());
  for (uint64_t reg : {GpioDevice::kRegOutput, GpioDevice::kRegDirection,
                       GpioDevice::kRegIrqEnable, GpioDevice::kRegIrqStatus,
                       GpioDevice::kRegControl}) {
    EXPECT_EQ(Read32(reg), 0u) << "register 0x" << std::hex << reg;
  }
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0x0004u);
  EXPECT_EQ(device_.OutputLevels(), 0);
}

// The device keeps its state from one client to the next.
TEST_F(GpioRegistersTest, StateSurvivesReconnect) {
  Write32(GpioDevice::kRegOutput, 0x4242);
  ASSERT_NO_FATAL_FAILURE(Reconnect());
  EXPECT_EQ(Read32(GpioDevice::kRegOutput), 0x4242u);
}

TEST_F(GpioRegistersTest, SetInputLineRejectsUnknownLines) {
  EXPECT_THAT(device_.SetInputLine(-1, true), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(device_.SetInputLine(16, true), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(Read32(GpioDevice::kRegInput), 0u);
}

}  // namespace
}  // namespace vfu::devices
