// RaiseInterrupt / SetIntxLevel through a PciDevice: which of MSI-X, MSI
// and INTx a raise becomes, and VFIO's INTx semantics.
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/device/pci_device.h"
#include "vfu/wire/byte_io.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using Route = InterruptRouter::Route;

constexpr uint32_t kMsixTableOffset = 0x1000;
constexpr uint32_t kMsixPbaOffset = 0x1800;

PciDeviceSpec RouterSpec(bool intx = true, uint32_t msi = 4, uint16_t msix = 4) {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x4243, .class_code = 0x058000};
  spec.bars[0] = {.size = 0x2000};
  spec.interrupts = {.intx = intx,
                     .msi_vectors = msi,
                     .msix_vectors = msix,
                     .msix_bar = 0,
                     .msix_table_offset = kMsixTableOffset,
                     .msix_pba_offset = kMsixPbaOffset};
  return spec;
}

class RoutedDevice : public PciDevice {
 public:
  explicit RoutedDevice(PciDeviceSpec spec = RouterSpec()) : PciDevice(std::move(spec)) {}
};

class InterruptRouterTest : public ::testing::Test {
 protected:
  InterruptRouterTest() { device_.OnAttach(nullptr); }

  // Installs an eventfd on `index`.`vector`; returns the test's copy.
  UniqueFd Assign(uint32_t index, uint32_t vector) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    std::vector<UniqueFd> fds;
    fds.emplace_back(::dup(fd.get()));
    wire::SetIrqsRequest request{
        .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        .index = index,
        .start = vector,
        .count = 1};
    EXPECT_THAT(device_.SetIrqs(request, fds), IsOk());
    return fd;
  }

  absl::Status UnmaskIntx() {
    std::vector<UniqueFd> none;
    wire::SetIrqsRequest request{.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                 .index = VFIO_PCI_INTX_IRQ_INDEX,
                                 .start = 0,
                                 .count = 1};
    return device_.SetIrqs(request, none);
  }

  uint16_t Config16(uint32_t offset) {
    uint8_t bytes[2];
    EXPECT_THAT(device_.ReadRegion(kConfigRegion, offset, absl::MakeSpan(bytes)), IsOk());
    return static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
  }

  void WriteConfig16(uint32_t offset, uint16_t value) {
    uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
    ASSERT_THAT(device_.WriteRegion(kConfigRegion, offset, bytes), IsOk());
  }

  uint32_t FindCap(uint8_t id) {
    uint32_t offset = Config16(PCI_CAPABILITY_LIST) & 0xfc;
    for (int guard = 0; offset != 0 && guard < 48; ++guard) {
      if ((Config16(offset) & 0xff) == id) return offset;
      offset = (Config16(offset) >> 8) & 0xfc;
    }
    return 0;
  }

  // MSI Enable with 2^log2_messages messages granted.
  void EnableMsi(uint16_t log2_messages) {
    const uint32_t cap = FindCap(PCI_CAP_ID_MSI);
    ASSERT_NE(cap, 0u);
    WriteConfig16(cap + PCI_MSI_FLAGS,
                  static_cast<uint16_t>(PCI_MSI_FLAGS_ENABLE | (log2_messages << 4)));
  }
  void DisableMsi() { WriteConfig16(FindCap(PCI_CAP_ID_MSI) + PCI_MSI_FLAGS, 0); }
  void EnableMsix() {
    const uint32_t cap = FindCap(PCI_CAP_ID_MSIX);
    ASSERT_NE(cap, 0u);
    WriteConfig16(cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
  }

  bool InterruptStatus() { return (Config16(PCI_STATUS) & PCI_STATUS_INTERRUPT) != 0; }

  static uint64_t Drain(const UniqueFd& fd) {
    uint64_t count = 0;
    if (::read(fd.get(), &count, sizeof count) != sizeof count) return 0;
    return count;
  }

  RoutedDevice device_;
};

TEST_F(InterruptRouterTest, EnableBitsChooseMsixThenMsiThenIntx) {
  UniqueFd intx = Assign(kIntxIrq, 0);
  UniqueFd msi = Assign(kMsiIrq, 1);
  UniqueFd msix = Assign(kMsixIrq, 1);

  EnableMsi(/*log2_messages=*/2);
  EXPECT_EQ(device_.interrupt_route(), Route::kMsi);
  ASSERT_THAT(device_.RaiseInterrupt(1), IsOk());
  EXPECT_EQ(Drain(msi), 1u);

  EnableMsix();
  EXPECT_EQ(device_.interrupt_route(), Route::kMsix);
  ASSERT_THAT(device_.RaiseInterrupt(1), IsOk());
  EXPECT_EQ(Drain(msix), 1u);
  EXPECT_EQ(Drain(msi), 0u);
  EXPECT_EQ(Drain(intx), 0u);
}

// A client that set up interrupts with SET_IRQS alone (no enable bits).
TEST_F(InterruptRouterTest, WithoutEnableBitsTheClientsEventfdsChoose) {
  UniqueFd intx = Assign(kIntxIrq, 0);
  EXPECT_EQ(device_.interrupt_route(), Route::kIntx);
  ASSERT_THAT(device_.RaiseInterrupt(3), IsOk());
  EXPECT_EQ(Drain(intx), 1u) << "every vector is the one INTx line";
  ASSERT_THAT(UnmaskIntx(), IsOk());

  UniqueFd msi = Assign(kMsiIrq, 0);
  EXPECT_EQ(device_.interrupt_route(), Route::kMsi);
  UniqueFd msix = Assign(kMsixIrq, 2);
  EXPECT_EQ(device_.interrupt_route(), Route::kMsix);
  ASSERT_THAT(device_.RaiseInterrupt(2), IsOk());
  EXPECT_EQ(Drain(msix), 1u);
  EXPECT_EQ(Drain(msi), 0u);
  EXPECT_EQ(Drain(intx), 0u);
}

TEST_F(InterruptRouterTest, MsiVectorsBeyondTheGrantedCountFold) {
  std::vector<UniqueFd> msi;
  for (uint32_t v = 0; v < 4; ++v) msi.push_back(Assign(kMsiIrq, v));
  EnableMsi(/*log2_messages=*/1);  // 2 messages
  ASSERT_THAT(device_.RaiseInterrupt(1), IsOk());
  EXPECT_EQ(Drain(msi[1]), 1u);
  ASSERT_THAT(device_.RaiseInterrupt(3), IsOk());
  EXPECT_EQ(Drain(msi[1]), 1u) << "3 & (2 - 1)";
  ASSERT_THAT(device_.RaiseInterrupt(6), IsOk());
  EXPECT_EQ(Drain(msi[0]), 1u) << "6 & (2 - 1)";
  EXPECT_EQ(Drain(msi[3]), 0u);

  EnableMsi(/*log2_messages=*/0);  // one message: everything is vector 0
  ASSERT_THAT(device_.RaiseInterrupt(1), IsOk());
  EXPECT_EQ(Drain(msi[0]), 1u);
  EXPECT_EQ(Drain(msi[1]), 0u);
}

TEST_F(InterruptRouterTest, MsixVectorBeyondTheTableIsRefused) {
  UniqueFd msix = Assign(kMsixIrq, 0);
  EnableMsix();
  EXPECT_THAT(device_.RaiseInterrupt(4), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(Drain(msix), 0u);
}

TEST_F(InterruptRouterTest, NothingEnabledIsFailedPreconditionAndUnavailableWhenDetached) {
  EXPECT_THAT(device_.RaiseInterrupt(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EnableMsix();
  EXPECT_THAT(device_.RaiseInterrupt(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  device_.OnDetach();
  EXPECT_THAT(device_.RaiseInterrupt(0), StatusIs(absl::StatusCode::kUnavailable));
}

// VFIO's INTx: the delivery masks the line until the client's unmask;
// Status.Interrupt Status shows the line from the raise to that unmask.
TEST_F(InterruptRouterTest, IntxIsAutoMaskedAndShownInStatus) {
  UniqueFd intx = Assign(kIntxIrq, 0);
  EXPECT_FALSE(InterruptStatus());
  ASSERT_THAT(device_.RaiseInterrupt(0), IsOk());
  EXPECT_EQ(Drain(intx), 1u);
  EXPECT_TRUE(InterruptStatus());
  EXPECT_TRUE((device_.ReadConfig16(PCI_STATUS) & PCI_STATUS_INTERRUPT) != 0);

  ASSERT_THAT(device_.RaiseInterrupt(0), IsOk());
  EXPECT_EQ(Drain(intx), 0u) << "masked until the client unmasks";
  ASSERT_THAT(UnmaskIntx(), IsOk());
  EXPECT_EQ(Drain(intx), 1u) << "the raise held while masked";
  EXPECT_TRUE(InterruptStatus());
  ASSERT_THAT(UnmaskIntx(), IsOk());
  EXPECT_EQ(Drain(intx), 0u);
  EXPECT_FALSE(InterruptStatus());
}

TEST_F(InterruptRouterTest, InterruptDisableHoldsIntxPending) {
  UniqueFd intx = Assign(kIntxIrq, 0);
  WriteConfig16(PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
  ASSERT_THAT(device_.RaiseInterrupt(0), IsOk());
  EXPECT_EQ(Drain(intx), 0u);
  EXPECT_TRUE(InterruptStatus()) << "Interrupt Status ignores InterruptDisable";
  WriteConfig16(PCI_COMMAND, 0);
  EXPECT_EQ(Drain(intx), 1u);
}

// A level that is up while MSI is enabled appears on INTx when the guest
// goes back to INTx, and each unmask while it is up delivers it again.
TEST_F(InterruptRouterTest, IntxLevelWaitsOutMsiAndRefiresWhileUp) {
  UniqueFd intx = Assign(kIntxIrq, 0);
  UniqueFd msi = Assign(kMsiIrq, 0);
  EnableMsi(0);
  ASSERT_THAT(device_.SetIntxLevel(true), IsOk());
  EXPECT_EQ(Drain(intx), 0u) << "INTx is off while MSI is enabled";
  DisableMsi();
  EXPECT_EQ(Drain(intx), 0u) << "the MSI eventfd still routes to MSI";
  // QEMU removes the MSI eventfds when the guest disables MSI.
  std::vector<UniqueFd> none;
  ASSERT_THAT(device_.SetIrqs({.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = kMsiIrq},
                              none),
              IsOk());
  EXPECT_EQ(Drain(intx), 1u);
  ASSERT_THAT(UnmaskIntx(), IsOk());
  EXPECT_EQ(Drain(intx), 1u) << "still up at the unmask";
  ASSERT_THAT(device_.SetIntxLevel(false), IsOk());
  EXPECT_FALSE(InterruptStatus());
  ASSERT_THAT(UnmaskIntx(), IsOk());
  EXPECT_EQ(Drain(intx), 0u);
  EXPECT_EQ(Drain(msi), 0u);
}

TEST_F(InterruptRouterTest, ResetLowersTheLevel) {
  ASSERT_THAT(device_.SetIntxLevel(true), IsOk());
  EXPECT_TRUE(InterruptStatus());
  ASSERT_THAT(device_.Reset(), IsOk());
  EXPECT_FALSE(InterruptStatus());
}

TEST_F(InterruptRouterTest, IrqInfoSaysIntxIsAutoMasked) {
  EXPECT_EQ(device_.IrqInfoFlags(kIntxIrq),
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED);
  EXPECT_EQ(device_.IrqInfoFlags(kMsixIrq), static_cast<uint32_t>(VFIO_IRQ_INFO_EVENTFD));
  RoutedDevice no_intx(RouterSpec(/*intx=*/false));
  EXPECT_EQ(no_intx.IrqInfoFlags(kIntxIrq), 0u);
}

TEST(InterruptRouterNoIntxTest, LevelNeedsIntx) {
  RoutedDevice device(RouterSpec(/*intx=*/false));
  EXPECT_THAT(device.SetIntxLevel(true), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace vfu
