// DEVICE_RESET and a function-level reset (Initiate FLR in the PCI Express
// capability) with I/O in flight: the reset quiesces the controller, whose
// threads finish the batch they run; every command completes at most once,
// the data of each completed write is in the file, and the controller
// comes back as new.
#include <linux/pci_regs.h>

#include <cstring>
#include <vector>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

constexpr uint16_t kQueues = 4;
constexpr uint32_t kQueueEntries = 64;
constexpr uint16_t kCommands = kQueueEntries - 1;
// Smaller CQs: the controller fetches at most kCqEntries - 1 commands of a
// queue before the reset, so commands are certainly in flight at it.
constexpr uint32_t kCqEntries = 16;
constexpr uint32_t kBlocks = 64;  // 32 KiB
constexpr uint64_t kBytes = uint64_t{kBlocks} * 512;

uint64_t Lba(uint16_t qid, uint16_t command) {
  return (uint64_t{qid - 1u} * kCommands + command) * kBlocks;
}

enum class ResetKind { kDeviceReset, kFunctionLevelReset };

class ResetInFlightTest : public NvmeTest, public ::testing::WithParamInterface<ResetKind> {
 protected:
  void SetUp() override {
    NvmeTestConfig config;
    config.namespace_bytes = uint64_t{kQueues} * kCommands * kBytes;
    config.driver.interrupts = false;  // a reset disables them; poll
    Start(config);
  }

  uint16_t Config16(uint32_t offset) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client_->RegionRead(kConfigRegion, offset, 2);
    EXPECT_OK(bytes);
    uint16_t value = 0;
    if (bytes.ok() && bytes->size() == 2) std::memcpy(&value, bytes->data(), 2);
    return value;
  }
  uint32_t ExpressCapability() {
    uint32_t cap = Config16(PCI_CAPABILITY_LIST) & 0xff;
    for (int hops = 0; cap != 0 && hops < 48; ++hops) {
      const uint16_t header = Config16(cap);
      if ((header & 0xff) == PCI_CAP_ID_EXP) return cap;
      cap = header >> 8;
    }
    return 0;
  }
};

TEST_P(ResetInFlightTest, EveryCommandCompletesAtMostOnceAndCompletedWritesAreInTheFile) {
  ASSERT_OK(driver_->Enable());
  for (uint16_t q = 1; q <= kQueues; ++q) {
    ASSERT_OK(driver_->CreateIoQueuePair(q, kQueueEntries, kCqEntries));
  }
  for (uint16_t q = 1; q <= kQueues; ++q) {
    const uint64_t buffer = driver_->Allocate(kBytes);
    const uint64_t list = driver_->Allocate(NvmeDriver::kPage);
    FillPattern(driver_->Host(buffer), kBytes, q);
    for (uint16_t i = 0; i < kCommands; ++i) {
      SubmissionEntry write = driver_->WriteCommand(1, Lba(q, i), kBlocks, buffer, kBytes);
      driver_->SetPrps(write, buffer, kBytes, list);
      write.cid = i;
      ASSERT_OK(driver_->Submit(q, write, /*ring=*/i == kCommands - 1));
    }
  }
  if (GetParam() == ResetKind::kDeviceReset) {
    ASSERT_OK(client_->Reset());
  } else {
    const uint32_t exp = ExpressCapability();
    ASSERT_NE(exp, 0u);
    const uint16_t devctl = Config16(exp + PCI_EXP_DEVCTL) | PCI_EXP_DEVCTL_BCR_FLR;
    uint8_t bytes[2];
    std::memcpy(bytes, &devctl, 2);
    ASSERT_OK(client_->RegionWrite(kConfigRegion, exp + PCI_EXP_DEVCTL, bytes));
  }
  ASSERT_OK(driver_->WaitForCsts(kCstsReady, 0));

  // What the controller posted before the reset: each command at most once,
  // all of them successful, and fewer than were submitted.
  uint32_t completed = 0;
  for (uint16_t q = 1; q <= kQueues; ++q) {
    std::vector<int> seen(kCommands, 0);
    Completion batch[kCqEntries];
    ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(q, absl::MakeSpan(batch), /*wait=*/false));
    ASSERT_LT(n, kCqEntries);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_LT(batch[i].cid, kCommands);
      EXPECT_EQ(batch[i].status, kSuccess);
      EXPECT_EQ(++seen[batch[i].cid], 1) << "queue " << q << " cid " << batch[i].cid;
      std::vector<uint8_t> file = FileBytes(1, Lba(q, batch[i].cid) * 512, kBytes);
      EXPECT_TRUE(MatchesPattern(file.data(), kBytes, q))
          << "queue " << q << " cid " << batch[i].cid << " completed without its data";
    }
    completed += static_cast<uint32_t>(n);
  }
  EXPECT_LT(completed, uint32_t{kQueues} * kCommands);
  EXPECT_EQ(FileSize(1), config_.namespace_bytes);

  // The controller comes back as new.
  ASSERT_OK(driver_->Disable());
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 16));
  const uint64_t buffer = driver_->Allocate(4096);
  ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(1, driver_->ReadCommand(1, Lba(1, 0), 8,
                                                                             buffer, 4096)));
  EXPECT_EQ(done.status, kSuccess);
}

INSTANTIATE_TEST_SUITE_P(Resets, ResetInFlightTest,
                         ::testing::Values(ResetKind::kDeviceReset, ResetKind::kFunctionLevelReset));

}  // namespace
}  // namespace vfu::nvme
