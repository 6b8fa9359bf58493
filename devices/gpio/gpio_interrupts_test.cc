// GPIO interrupts as a VMM receives them: eventfds installed with
// SET_IRQS, MSI preferred over INTx, masking, INTx's level behaviour.
//
// The device raises an interrupt before the call that caused it returns
// (SetInputLine, or the REGION_WRITE / SET_IRQS reply), so "nothing came"
// is checked with a zero timeout and "it came" with a generous one.
#include <linux/pci_regs.h>

#include <cstdint>

#include "devices/gpio/gpio_test_fixture.h"
#include "gtest/gtest.h"

namespace vfu::devices {
namespace {

using ::testing::Eq;
using ::testing::Optional;

constexpr std::nullopt_t kNothing = std::nullopt;

class GpioInterruptsTest : public GpioTest {
 protected:
  uint16_t Config16(uint32_t offset) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client_->RegionRead(kConfigRegion, offset, 2);
    EXPECT_OK(bytes);
    return bytes.ok() && bytes->size() == 2 ? static_cast<uint16_t>((*bytes)[0] | (*bytes)[1] << 8)
                                            : 0;
  }
  void WriteConfig16(uint32_t offset, uint16_t value) {
    const uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
    EXPECT_OK(client_->RegionWrite(kConfigRegion, offset, bytes));
  }
  // The MSI capability's offset, found as a driver finds it.
  uint32_t MsiCap() {
    uint32_t offset = Config16(PCI_CAPABILITY_LIST) & 0xfc;
    for (int guard = 0; offset != 0 && guard < 48; ++guard) {
      const uint16_t header = Config16(offset);
      if ((header & 0xff) == PCI_CAP_ID_MSI) return offset;
      offset = (header >> 8) & 0xfc;
    }
    ADD_FAILURE() << "no MSI capability";
    return 0;
  }
  bool InterruptStatus() { return (Config16(PCI_STATUS) & PCI_STATUS_INTERRUPT) != 0; }
};

// An input change on an enabled line sets its status bit and raises MSI
// vector 0.
TEST_F(GpioInterruptsTest, EnabledInputChangeRaisesMsi) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 5);
  ASSERT_OK(device_.SetInputLine(5, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 1u << 5);
}

// A line without IRQ_ENABLE changes INPUT but interrupts nobody.
TEST_F(GpioInterruptsTest, DisabledLineRaisesNothing) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 4);
  ASSERT_OK(device_.SetInputLine(5, true));
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0u);
}

// A second event on a line whose status bit is still set adds nothing: the
// driver has not acknowledged the first. After the acknowledgement the next
// event interrupts again.
TEST_F(GpioInterruptsTest, OneInterruptPerPendingLine) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 0);
  ASSERT_OK(device_.SetInputLine(0, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  ASSERT_OK(device_.SetInputLine(0, false));
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);
  Write32(GpioDevice::kRegIrqStatus, 1u << 0);
  ASSERT_OK(device_.SetInputLine(0, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// Through vfio-user alone: in loopback mode a write to OUTPUT is an input
// change, and interrupts.
TEST_F(GpioInterruptsTest, LoopbackWriteRaisesMsi) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 9);
  Write32(GpioDevice::kRegControl, GpioDevice::kControlLoopback);
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);  // OUTPUT is 0, INPUT became 0
  Write32(GpioDevice::kRegOutput, 1u << 9);
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 1u << 9);
}

// Enabling a line whose status bit is still set makes it pending again.
TEST_F(GpioInterruptsTest, EnablingStaleStatusRaises) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 2);
  ASSERT_OK(device_.SetInputLine(2, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  Write32(GpioDevice::kRegIrqEnable, 0);
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);
  Write32(GpioDevice::kRegIrqEnable, 1u << 2);
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// A masked MSI vector holds its interrupts; the unmask delivers exactly one,
// however many events came meanwhile.
TEST_F(GpioInterruptsTest, MaskedMsiDeliversOnceOnUnmask) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 0x0003);
  ASSERT_OK(SetMasked(kMsiIrq, true));
  ASSERT_OK(device_.SetInputLine(0, true));
  ASSERT_OK(device_.SetInputLine(1, true));
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0x0003u);

  ASSERT_OK(SetMasked(kMsiIrq, false));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_EQ(ReadEventfd(msi, 0), kNothing);
}

// Without an MSI eventfd the device uses INTx.
TEST_F(GpioInterruptsTest, IntxWhenMsiNotSetUp) {
  UniqueFd intx = Watch(kIntxIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 7);
  ASSERT_OK(device_.SetInputLine(7, true));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// With both set up, MSI wins and INTx stays quiet.
TEST_F(GpioInterruptsTest, MsiPreferredOverIntx) {
  UniqueFd intx = Watch(kIntxIrq);
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 7);
  ASSERT_OK(device_.SetInputLine(7, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
}

// Tearing MSI down while a line is pending moves the interrupt to INTx, as
// a level-triggered line would still be asserted.
TEST_F(GpioInterruptsTest, MsiTeardownWhilePendingRaisesIntx) {
  UniqueFd intx = Watch(kIntxIrq);
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 1);
  ASSERT_OK(device_.SetInputLine(1, true));
  EXPECT_THAT(ReadEventfd(msi, kInterruptTimeoutMs), Optional(Eq(1u)));
  ASSERT_OK(client_->DisableIrqs(kMsiIrq));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// INTx is a level: unmasking it while a line is still pending raises it
// again; once the driver has cleared the status, an unmask raises nothing.
TEST_F(GpioInterruptsTest, IntxReassertsOnUnmaskWhilePending) {
  UniqueFd intx = Watch(kIntxIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 3);
  ASSERT_OK(device_.SetInputLine(3, true));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));

  ASSERT_OK(SetMasked(kIntxIrq, true));
  ASSERT_OK(SetMasked(kIntxIrq, false));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));

  Write32(GpioDevice::kRegIrqStatus, 1u << 3);
  ASSERT_OK(SetMasked(kIntxIrq, true));
  ASSERT_OK(SetMasked(kIntxIrq, false));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
}

// An INTx raised while masked is delivered by the unmask exactly once: the
// level re-assertion does not add a second one.
TEST_F(GpioInterruptsTest, MaskedIntxDeliversOnceOnUnmask) {
  UniqueFd intx = Watch(kIntxIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 3);
  ASSERT_OK(SetMasked(kIntxIrq, true));
  ASSERT_OK(device_.SetInputLine(3, true));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
  ASSERT_OK(SetMasked(kIntxIrq, false));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
}

// Installing the INTx eventfd while a line is pending raises it at once.
TEST_F(GpioInterruptsTest, IntxEventfdInstalledWhilePending) {
  Write32(GpioDevice::kRegIrqEnable, 1u << 3);
  ASSERT_OK(device_.SetInputLine(3, true));
  UniqueFd intx = Watch(kIntxIrq);
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// Events from another thread while the client works the registers: each
// one that makes a line pending is delivered, none is lost or invented.
TEST_F(GpioInterruptsTest, InputChangesFromAnotherThread) {
  UniqueFd msi = Watch(kMsiIrq);
  Write32(GpioDevice::kRegIrqEnable, 0xffff);
  constexpr int kRounds = 200;
  std::thread outside([&] {
    for (int i = 0; i < kRounds; ++i) {
      EXPECT_OK(device_.SetInputLine(i % GpioDevice::kNumLines, (i / 16) % 2 == 0));
    }
  });
  for (int i = 0; i < kRounds; ++i) Read32(GpioDevice::kRegInput);
  outside.join();
  // Nothing was acknowledged, so each line became pending once: 16 raises.
  uint64_t raised = 0;
  while (std::optional<uint64_t> count = ReadEventfd(msi, 0)) raised += *count;
  EXPECT_EQ(raised, 16u);
  EXPECT_EQ(Read32(GpioDevice::kRegIrqStatus), 0xffffu);
}

}  // namespace
}  // namespace vfu::devices

namespace vfu::devices {
namespace {

// The guest's MSI Enable bit decides even before the client installs the
// MSI eventfd (QEMU installs it right after): INTx stays quiet meanwhile,
// as PCI demands, and carries the still-pending line once MSI is off.
TEST_F(GpioInterruptsTest, MsiEnableBitSilencesIntxUntilCleared) {
  UniqueFd intx = Watch(kIntxIrq);
  const uint32_t msi_cap = MsiCap();
  WriteConfig16(msi_cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
  Write32(GpioDevice::kRegIrqEnable, 1u << 5);
  ASSERT_OK(device_.SetInputLine(5, true));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
  WriteConfig16(msi_cap + PCI_MSI_FLAGS, 0);
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
}

// Config space's Interrupt Status bit follows the INTx line: up while a
// line is pending, down once the driver acknowledged it.
TEST_F(GpioInterruptsTest, IntxShowsInConfigStatus) {
  UniqueFd intx = Watch(kIntxIrq);
  Write32(GpioDevice::kRegIrqEnable, 1u << 2);
  EXPECT_FALSE(InterruptStatus());
  ASSERT_OK(device_.SetInputLine(2, true));
  EXPECT_THAT(ReadEventfd(intx, kInterruptTimeoutMs), Optional(Eq(1u)));
  EXPECT_TRUE(InterruptStatus());
  Write32(GpioDevice::kRegIrqStatus, 1u << 2);
  EXPECT_FALSE(InterruptStatus());
  ASSERT_OK(SetMasked(kIntxIrq, false));
  EXPECT_EQ(ReadEventfd(intx, 0), kNothing);
}

}  // namespace
}  // namespace vfu::devices
