// Completion interrupts through the framework's routing: MSI-X, with the
// guest's function mask and per-vector masks holding them pending.
#include <linux/pci_regs.h>

#include <cstdint>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

constexpr uint64_t kSourceIova = 0x10000000;
constexpr uint64_t kDestinationIova = 0x20000000;
constexpr uint32_t kLength = 8192;

class DmaEngineInterruptsTest : public DmaEngineTest {
 protected:
  void SetUp() override {
    DmaEngineTest::SetUp();
    FillPattern(source_.bytes(), 7);
    MapShared(kSourceIova, source_);
    MapShared(kDestinationIova, destination_);
  }

  uint16_t Config16(uint32_t offset) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client_->RegionRead(kConfigRegion, offset, 2);
    EXPECT_OK(bytes);
    return bytes.ok() && bytes->size() == 2 ? static_cast<uint16_t>((*bytes)[0] | (*bytes)[1] << 8)
                                            : 0;
  }
  void WriteMsixControl(uint16_t value) {
    uint32_t offset = Config16(PCI_CAPABILITY_LIST) & 0xfc;
    for (int guard = 0; offset != 0 && guard < 48; ++guard) {
      const uint16_t header = Config16(offset);
      if ((header & 0xff) == PCI_CAP_ID_MSIX) break;
      offset = (header >> 8) & 0xfc;
    }
    ASSERT_NE(offset, 0u) << "no MSI-X capability";
    const uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
    EXPECT_OK(client_->RegionWrite(kConfigRegion, offset + PCI_MSIX_FLAGS, bytes));
  }
  // Runs a job on `channel` to its end without waiting for an interrupt.
  void RunJob(uint32_t channel) {
    Program(channel, kSourceIova, kDestinationIova, kLength);
    Ring(channel);
    ASSERT_EQ(WaitWhileBusy(channel), kStatusDone);
  }

  SharedMemory source_{kLength};
  SharedMemory destination_{kLength};
};

TEST_F(DmaEngineInterruptsTest, FunctionMaskHoldsTheCompletionUntilCleared) {
  UniqueFd irq = WatchChannel(1);
  WriteMsixControl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  RunJob(1);
  EXPECT_FALSE(ReadEventfd(irq, 0).has_value()) << "function masked";
  WriteMsixControl(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(ReadEventfd(irq, kWaitTimeoutMs), 1u);
}

TEST_F(DmaEngineInterruptsTest, VectorMaskShowsThePendingBitInThePba) {
  UniqueFd irq = WatchChannel(2);
  WriteMsixControl(PCI_MSIX_FLAGS_ENABLE);
  const uint64_t control = kMsixTableOffset + 2 * 16 + 12;
  Write<uint32_t>(control, PCI_MSIX_ENTRY_CTRL_MASKBIT);
  RunJob(2);
  EXPECT_FALSE(ReadEventfd(irq, 0).has_value());
  EXPECT_EQ(Read32(kMsixPbaOffset), 1u << 2);
  Write<uint32_t>(control, 0);
  EXPECT_EQ(ReadEventfd(irq, kWaitTimeoutMs), 1u);
  EXPECT_EQ(Read32(kMsixPbaOffset), 0u);
}

// Each channel's completion is its own vector, and only that one fires.
TEST_F(DmaEngineInterruptsTest, EachChannelRaisesItsOwnVector) {
  UniqueFd irq0 = WatchChannel(0);
  UniqueFd irq3 = WatchChannel(3);
  WriteMsixControl(PCI_MSIX_FLAGS_ENABLE);
  RunJob(3);
  EXPECT_EQ(ReadEventfd(irq3, kWaitTimeoutMs), 1u);
  EXPECT_FALSE(ReadEventfd(irq0, 0).has_value());
}

}  // namespace
}  // namespace vfu::devices::dma_engine
