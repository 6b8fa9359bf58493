// Controller registers and the PCI face: CAP, VS, CC/CSTS enable, disable,
// shutdown and fatal status, split 64-bit writes, INTMS/INTMC, identity and
// BAR layout.
#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

using RegistersTest = NvmeTest;

TEST_F(RegistersTest, CapAdvertisesQueuesTimeoutNvmAndPageSizes) {
  ASSERT_OK_AND_ASSIGN(uint64_t cap, driver_->Read64(kRegCap));
  EXPECT_EQ(cap & 0xffff, kMaxQueueEntries - 1);       // MQES
  EXPECT_EQ((cap >> 16) & 1, 1u);                      // CQR
  EXPECT_GE((cap >> 24) & 0xff, 2u);                   // TO
  EXPECT_EQ((cap >> 32) & 0xf, 0u);                    // DSTRD
  EXPECT_EQ((cap >> 37) & 0xff, 1u);                   // CSS: NVM only
  EXPECT_EQ((cap >> 48) & 0xf, 0u);                    // MPSMIN 4 KiB
  EXPECT_EQ((cap >> 52) & 0xf, kMpsMax);               // MPSMAX
  // Linux reads it as two dwords: same value.
  ASSERT_OK_AND_ASSIGN(uint32_t low, driver_->Read32(kRegCap));
  ASSERT_OK_AND_ASSIGN(uint32_t high, driver_->Read32(kRegCap + 4));
  EXPECT_EQ((uint64_t{high} << 32) | low, cap);
  ASSERT_OK_AND_ASSIGN(uint32_t vs, driver_->Read32(kRegVs));
  EXPECT_EQ(vs, 0x00010400u);
}

TEST_F(RegistersTest, PciIdentityIsNvmeWith64BitBar0AndMsix) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> config, client_->RegionRead(kConfigRegion, 0, 64));
  EXPECT_EQ(config[0x0b], 0x01);  // mass storage
  EXPECT_EQ(config[0x0a], 0x08);  // NVM
  EXPECT_EQ(config[0x09], 0x02);  // NVMe
  EXPECT_EQ(config[0x10] & 0x6, 0x4) << "BAR0 is 64-bit memory";
  ASSERT_OK_AND_ASSIGN(RegionInfo bar0, client_->GetRegionInfo(kBar0Region));
  EXPECT_EQ(bar0.info.size, kBar0Size);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo msix, client_->GetIrqInfo(kMsixIrq));
  EXPECT_EQ(msix.count, kMsixVectors);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo intx, client_->GetIrqInfo(kIntxIrq));
  EXPECT_EQ(intx.count, 1u);
}

TEST_F(RegistersTest, EnableSetsReadyAndDisableClearsIt) {
  EXPECT_EQ(Csts() & kCstsReady, 0u);
  ASSERT_OK(driver_->Enable());
  EXPECT_EQ(Csts(), kCstsReady);
  ASSERT_OK(driver_->Disable());
  EXPECT_EQ(Csts(), 0u);
  // And again: the admin queue works after a re-enable.
  ASSERT_OK(driver_->Enable());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  EXPECT_EQ(id[0] | (id[1] << 8), kVendorId);
}

TEST_F(RegistersTest, CcWithoutEnableDoesNotEnable) {
  ASSERT_OK(driver_->Write32(kRegCc, (6u << 16) | (4u << 20)));
  ASSERT_OK_AND_ASSIGN(uint32_t cc, driver_->Read32(kRegCc));
  EXPECT_EQ(cc, (6u << 16) | (4u << 20));
  EXPECT_EQ(Csts() & kCstsReady, 0u);
}

TEST_F(RegistersTest, AdminQueueRegistersKeepSplitWrites) {
  ASSERT_OK(driver_->Write32(kRegAsq, 0x12345000));
  ASSERT_OK(driver_->Write32(kRegAsq + 4, 0xabc));
  ASSERT_OK(driver_->Write32(kRegAcq, 0x00067fff));  // low 12 bits reserved
  ASSERT_OK(driver_->Write32(kRegAqa, 0xffffffff));
  ASSERT_OK_AND_ASSIGN(uint64_t asq, driver_->Read64(kRegAsq));
  ASSERT_OK_AND_ASSIGN(uint64_t acq, driver_->Read64(kRegAcq));
  ASSERT_OK_AND_ASSIGN(uint32_t aqa, driver_->Read32(kRegAqa));
  EXPECT_EQ(asq, 0xabc12345000ull);
  EXPECT_EQ(acq, 0x67000ull);
  EXPECT_EQ(aqa, kAqaMask);
}

TEST_F(RegistersTest, PageSizeOutsideCapIsFatalUntilReset) {
  // MPS = 5 (128 KiB) is above MPSMAX.
  EXPECT_FALSE(driver_->Enable(5u << 7).ok());
  EXPECT_EQ(Csts() & (kCstsFatal | kCstsReady), kCstsFatal);
  ASSERT_OK(driver_->Write32(kRegCc, 0));
  ASSERT_OK(driver_->WaitForCsts(kCstsFatal | kCstsReady, 0));
  ASSERT_OK(driver_->Enable());
  EXPECT_EQ(Csts(), kCstsReady);
}

TEST_F(RegistersTest, LargerPageSizeWorks) {
  ASSERT_OK(driver_->Enable(1u << 7));  // 8 KiB pages
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  EXPECT_EQ(id[77], kMdts);
}

TEST_F(RegistersTest, ShutdownReportsCompleteAndResetClearsIt) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->Shutdown());
  EXPECT_EQ((Csts() >> kCstsShstShift) & 3, kShstComplete);
  ASSERT_OK(driver_->Disable());
  EXPECT_EQ(Csts(), 0u);
}

TEST_F(RegistersTest, InterruptMaskSetAndClear) {
  ASSERT_OK(driver_->Write32(kRegIntms, 1));
  ASSERT_OK_AND_ASSIGN(uint32_t mask, driver_->Read32(kRegIntms));
  EXPECT_EQ(mask, 1u);
  ASSERT_OK_AND_ASSIGN(mask, driver_->Read32(kRegIntmc));
  EXPECT_EQ(mask, 1u);
  ASSERT_OK(driver_->Write32(kRegIntmc, 1));
  ASSERT_OK_AND_ASSIGN(mask, driver_->Read32(kRegIntms));
  EXPECT_EQ(mask, 0u);
}

TEST_F(RegistersTest, ReadOnlyRegistersIgnoreWritesAndDoorbellsReadZero) {
  ASSERT_OK(driver_->Write32(kRegVs, 0));
  ASSERT_OK(driver_->Write32(kRegCsts, 0xffffffff));
  ASSERT_OK_AND_ASSIGN(uint32_t vs, driver_->Read32(kRegVs));
  EXPECT_EQ(vs, kVersion14);
  EXPECT_EQ(Csts(), 0u);
  ASSERT_OK_AND_ASSIGN(uint32_t doorbell, driver_->Read32(SqTailDoorbell(0)));
  EXPECT_EQ(doorbell, 0u);
}

TEST_F(RegistersTest, DeviceResetQuiescesAndClearsRegisters) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(client_->Reset());
  ASSERT_OK(driver_->WaitForCsts(kCstsReady, 0));
  ASSERT_OK_AND_ASSIGN(uint32_t cc, driver_->Read32(kRegCc));
  EXPECT_EQ(cc, 0u);
  ASSERT_OK(driver_->Enable());
  EXPECT_EQ(Csts(), kCstsReady);
}

}  // namespace
}  // namespace vfu::nvme
