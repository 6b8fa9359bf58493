// Shadow doorbells (Doorbell Buffer Config with EventIdx): the command's
// checks, I/O with far fewer doorbell messages, queues switched after
// creation, a full completion queue woken through its EventIdx, and a
// reset forgetting the buffer.
#include <set>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

class ShadowDoorbellTest : public NvmeTest {
 protected:
  uint16_t Config(uint64_t shadow, uint64_t event_index) {
    SubmissionEntry sqe = {};
    sqe.opcode = kAdminDoorbellBufferConfig;
    sqe.prp1 = shadow;
    sqe.prp2 = event_index;
    return AdminStatus(sqe);
  }
  // Writes then reads back `count` blocks one command at a time.
  void WriteAndVerify(uint16_t qid, uint32_t count, uint32_t seed) {
    const uint64_t buffer = driver_->Allocate(4096);
    for (uint32_t i = 0; i < count; ++i) {
      FillPattern(driver_->Host(buffer), 512, seed + i);
      ASSERT_OK_AND_ASSIGN(Completion done,
                           driver_->Run(qid, driver_->WriteCommand(1, i, 1, buffer, 512)));
      ASSERT_EQ(done.status, kSuccess);
    }
    for (uint32_t i = 0; i < count; ++i) {
      ASSERT_OK_AND_ASSIGN(Completion done,
                           driver_->Run(qid, driver_->ReadCommand(1, i, 1, buffer, 512)));
      ASSERT_EQ(done.status, kSuccess);
      ASSERT_TRUE(MatchesPattern(driver_->Host(buffer), 512, seed + i)) << "LBA " << i;
    }
  }
};

TEST_F(ShadowDoorbellTest, IsAdvertisedAndChecksItsPages) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  EXPECT_EQ(id[256] | (id[257] << 8), 1 << 8) << "OACS: Doorbell Buffer Config";
  const uint64_t a = driver_->Allocate(4096);
  const uint64_t b = driver_->Allocate(4096);
  EXPECT_EQ(Config(a + 8, b), kInvalidField) << "misaligned";
  EXPECT_EQ(Config(a, b + 4), kInvalidField) << "misaligned";
  EXPECT_EQ(Config(a, a), kInvalidField) << "one page for both";
  EXPECT_EQ(Config(0, b), kInvalidField);
  EXPECT_EQ(Config(a, b), kSuccess);
}

TEST_F(ShadowDoorbellTest, IoWorksWithFarFewerDoorbellMessages) {
  EnableWithQueues(1, 16);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  const uint64_t before = driver_->mmio_doorbells();
  constexpr uint32_t kCount = 100;
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, kCount, 1));
  // Each command rang the SQ tail and wrote the CQ head once: 400 writes
  // without shadow doorbells. The CQ head only reaches the device when it
  // passes the EventIdx, which the controller moves only when it waits
  // for free slots.
  const uint64_t mmio = driver_->mmio_doorbells() - before;
  EXPECT_LT(mmio, 2 * 2 * kCount * 3 / 4) << mmio << " doorbell messages";
}

TEST_F(ShadowDoorbellTest, QueuesCreatedBeforeTheConfigSwitch) {
  EnableWithQueues(2, 16);
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(2, 10, 50));
  ASSERT_OK(driver_->EnableShadowDoorbells());
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(2, 40, 100));
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 40, 200));
}

TEST_F(ShadowDoorbellTest, FullCompletionQueueWakesThroughEventIdx) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->EnableShadowDoorbells());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 32, /*cq_entries=*/2));
  std::set<uint16_t> waiting;
  for (uint16_t cid = 0; cid < 31; ++cid) {
    SubmissionEntry flush = {};
    flush.opcode = kNvmFlush;
    flush.nsid = 1;
    flush.cid = cid;
    waiting.insert(cid);
    ASSERT_OK(driver_->Submit(1, flush, /*ring=*/cid == 30));
  }
  while (!waiting.empty()) {
    Completion done;
    ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(&done, 1), /*wait=*/true));
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(waiting.erase(done.cid), 1u) << "twice or unknown: " << done.cid;
  }
}

TEST_F(ShadowDoorbellTest, StaleDoorbellMessagesDoNotMoveAShadowedQueueBack) {
  EnableWithQueues(1, 16);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 5, 600));
  // Posted doorbells can arrive after the controller read a newer shadow
  // value: old tails and heads must not be taken (they would replay
  // entries already run).
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 1));
  ASSERT_OK(driver_->Write32(CqHeadDoorbell(1), 1));
  Completion stray;
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(&stray, 1), /*wait=*/false));
  EXPECT_EQ(n, 0u) << "nothing replayed";
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 5, 700));
  EXPECT_FALSE(driver_->TakeStray().has_value()) << "an old command completed again";
  EXPECT_EQ(Csts(), kCstsReady);
}

TEST_F(ShadowDoorbellTest, ResetForgetsTheBuffer) {
  EnableWithQueues(1, 16);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 10, 300));
  ASSERT_OK(driver_->Disable());
  EXPECT_FALSE(driver_->shadow_doorbells());
  EnableWithQueues(1, 16);
  // Plain doorbells again: every one is a message.
  const uint64_t before = driver_->mmio_doorbells();
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 10, 400));
  EXPECT_EQ(driver_->mmio_doorbells() - before, 2u * 2 * 10);
}

// The doorbells the controller asks for arrive through ioeventfds (as a
// guest's stores do under KVM), without a value: the shadow has it.
TEST_F(ShadowDoorbellTest, DoorbellsThroughIoeventfds) {
  NvmeTestConfig config;
  config.driver.ioeventfds = true;
  Start(config);
  EnableWithQueues(2, 16);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  const uint64_t doorbells = driver_->mmio_doorbells();
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 40, 800));
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(2, 40, 900));
  EXPECT_GT(driver_->eventfd_doorbells(), 0u);
  EXPECT_EQ(driver_->eventfd_doorbells(), driver_->mmio_doorbells() - doorbells)
      << "every doorbell of a shadowed queue went through its eventfd";
}

TEST_F(ShadowDoorbellTest, IoeventfdsAreOfferedForEveryIoDoorbell) {
  ASSERT_OK_AND_ASSIGN(RegionIoFds fds, client_->GetRegionIoFds(kBar0Region));
  ASSERT_EQ(fds.reply.entries.size(), 2u * kIoeventfdQueues);
  EXPECT_EQ(fds.reply.entries[0].offset, SqTailDoorbell(1));
  EXPECT_EQ(fds.reply.entries[kIoeventfdQueues].offset, CqHeadDoorbell(1));
  for (const wire::IoFdEntry& entry : fds.reply.entries) EXPECT_EQ(entry.size, 4u);
}

TEST_F(ShadowDoorbellTest, WorksOverMessageDma) {
  NvmeTestConfig config;
  config.driver.shared_memory = false;
  Start(config);
  EnableWithQueues(1, 16);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  ASSERT_NO_FATAL_FAILURE(WriteAndVerify(1, 30, 500));
}

}  // namespace
}  // namespace vfu::nvme
