// The DMA engine as a client first sees it: PCI identity and layout, and
// the register file's access rules (no copying here).
#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using DmaEngineRegistersTest = DmaEngineTest;

// Config space carries the identity; BAR0 is a 4 KiB register block and
// MSI-X has one vector per channel.
TEST_F(DmaEngineRegistersTest, LayoutAndIdentity) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> ids, client_->RegionRead(kConfigRegion, 0, 4));
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[0] | ids[1] << 8, kVendorId);
  EXPECT_EQ(ids[2] | ids[3] << 8, kDeviceId);

  ASSERT_OK_AND_ASSIGN(RegionInfo bar0, client_->GetRegionInfo(kBar0Region));
  EXPECT_EQ(bar0.info.size, kBarSize);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo msix, client_->GetIrqInfo(kMsixIrq));
  EXPECT_EQ(msix.count, kNumChannels);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo msi, client_->GetIrqInfo(kMsiIrq));
  EXPECT_EQ(msi.count, 0u);

  EXPECT_EQ(Read32(kRegId), kIdValue);
  EXPECT_EQ(Read32(kRegVersion), kRegisterRevision);
  EXPECT_EQ(Read32(kRegChannels), kNumChannels);
}

// SOURCE and DESTINATION are 64-bit pairs: an 8-byte write fills both
// halves, a byte write changes only its byte. Each channel has its own.
TEST_F(DmaEngineRegistersTest, ChannelRegistersHoldWhatIsWritten) {
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    Program(channel, 0x1122334455667788 + channel, 0x99aabbccddeeff00 + channel, 0x1000 + channel);
  }
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    EXPECT_EQ(ReadChannel(channel, kRegSourceLo), 0x55667788u + channel);
    EXPECT_EQ(ReadChannel(channel, kRegSourceHi), 0x11223344u);
    EXPECT_EQ(ReadChannel(channel, kRegDestinationLo), 0xddeeff00u + channel);
    EXPECT_EQ(ReadChannel(channel, kRegDestinationHi), 0x99aabbccu);
    EXPECT_EQ(ReadChannel(channel, kRegLength), 0x1000u + channel);
  }
  Write<uint8_t>(ChannelRegister(1, kRegSourceHi) + 2, 0xee);
  EXPECT_EQ(ReadChannel(1, kRegSourceHi), 0x11ee3344u);
  EXPECT_EQ(ReadChannel(1, kRegSourceLo), 0x55667789u);

  // One 8-byte read returns both halves, low first.
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes,
                       client_->RegionRead(kBar0Region, ChannelRegister(2, kRegSourceLo), 8));
  ASSERT_EQ(bytes.size(), 8u);
  uint64_t source = 0;
  std::memcpy(&source, bytes.data(), 8);
  EXPECT_EQ(source, 0x1122334455667788u + 2);
}

// Read-only registers ignore writes, DOORBELL reads 0, and reserved
// offsets read 0 whatever is written to them.
TEST_F(DmaEngineRegistersTest, ReadOnlyAndReservedOffsets) {
  Write<uint32_t>(kRegId, 0);
  Write<uint32_t>(kRegChannels, 99);
  Write<uint32_t>(ChannelRegister(0, kRegStatus), kStatusDone);
  Write<uint32_t>(ChannelRegister(0, kRegError), kErrorAborted);
  Write<uint32_t>(ChannelRegister(0, kRegProgress), 1234);
  EXPECT_EQ(Read32(kRegId), kIdValue);
  EXPECT_EQ(Read32(kRegChannels), kNumChannels);
  EXPECT_EQ(Status(0), kStatusIdle);
  EXPECT_EQ(Error(0), kErrorNone);
  EXPECT_EQ(Progress(0), 0u);
  EXPECT_EQ(ReadChannel(0, kRegDoorbell), 0u);

  for (uint64_t offset :
       {uint64_t{0x010}, uint64_t{0x0fc}, ChannelRegister(0, 0x24), ChannelRegister(3, 0x3c),
        uint64_t{0x200}, uint64_t{0x7fc}, uint64_t{0xffc}}) {
    Write<uint32_t>(offset, 0xffffffff);
    EXPECT_EQ(Read32(offset), 0u) << "offset 0x" << std::hex << offset;
  }
}

// IRQ_STATUS collects one bit per channel whose job ended; writing ones
// clears exactly those bits.
TEST_F(DmaEngineRegistersTest, IrqStatusIsWriteOneToClear) {
  // Empty jobs finish at once without touching memory.
  for (uint32_t channel : {0u, 2u, 3u}) {
    Program(channel, 0, 0x1000, 0);
    Ring(channel);
    EXPECT_EQ(WaitWhileBusy(channel), kStatusDone);
  }
  EXPECT_EQ(Read32(kRegIrqStatus), 0b1101u);
  Write<uint32_t>(kRegIrqStatus, 0b0101);
  EXPECT_EQ(Read32(kRegIrqStatus), 0b1000u);
  Write<uint8_t>(kRegIrqStatus, 0xff);
  EXPECT_EQ(Read32(kRegIrqStatus), 0u);
}

// DEVICE_RESET puts every register back to its reset value.
TEST_F(DmaEngineRegistersTest, ResetClearsRegisters) {
  Program(1, 0x1000, 0x2000, 0);
  Ring(1);
  ASSERT_EQ(WaitWhileBusy(1), kStatusDone);
  Program(1, 0x1000, 0x2000, 0x3000);
  ASSERT_NE(Read32(kRegIrqStatus), 0u);

  ASSERT_OK(client_->Reset());
  for (uint64_t reg : {kRegSourceLo, kRegSourceHi, kRegDestinationLo, kRegDestinationHi, kRegLength,
                       kRegStatus, kRegError, kRegProgress}) {
    EXPECT_EQ(ReadChannel(1, reg), 0u) << "register +0x" << std::hex << reg;
  }
  EXPECT_EQ(Read32(kRegIrqStatus), 0u);
  EXPECT_EQ(Read32(kRegId), kIdValue);
}

// The MSI-X table lives in BAR0 but belongs to the framework: what the
// client writes there stays (the register file would drop it).
TEST_F(DmaEngineRegistersTest, MsixTableIsServedInBar0) {
  const uint64_t entry1_data = kMsixTableOffset + 16 + 8;
  Write<uint32_t>(entry1_data, 0xabcd);
  EXPECT_EQ(Read32(entry1_data), 0xabcdu);
  // Vector control: masked at reset, as PCI says.
  EXPECT_EQ(Read32(kMsixTableOffset + 12), 1u);
  EXPECT_EQ(Read32(kMsixPbaOffset), 0u);
}

}  // namespace
}  // namespace vfu::devices::dma_engine
