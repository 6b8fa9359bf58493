// Interrupt coalescing end to end (Set Features 08h / 09h): interrupts are
// counted on the MSI-X eventfds the driver installed, completions are
// found by looking at the CQ memory (never by waiting for the interrupt
// being counted).
//
// TIME is at most 25.5 ms, so a step that asserts "no interrupt yet"
// holds the controller's coalescing timer
// (NvmeController::HoldCoalescingTimerForTesting): a slow machine cannot
// make TIME run out under it. Steps that test the timer let it run.
#include <poll.h>
#include <unistd.h>

#include <chrono>

#include "devices/nvme/nvme_test_fixture.h"
#include "vfu/client/migration.h"

namespace vfu::nvme {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t Coalescing(uint32_t thr, uint32_t time) { return thr | (time << 8); }
// TIME = 255: 25.5 ms.
constexpr uint32_t kLongTime = 255;

class CoalescingTest : public NvmeTest {
 protected:
  void SetUp() override {
    NvmeTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(EnableWithQueues(2));
    buffer_ = driver_->Allocate(4096);
  }

  void SetFeature(uint8_t fid, uint32_t value) {
    SubmissionEntry sqe = {};
    sqe.opcode = kAdminSetFeatures;
    sqe.cdw10 = fid;
    sqe.cdw11 = value;
    ASSERT_EQ(AdminStatus(sqe), kSuccess);
  }
  void SetCoalescing(uint32_t thr, uint32_t time) {
    SetFeature(kFeatInterruptCoalescing, Coalescing(thr, time));
  }
  void SetVectorCoalescingDisabled(uint16_t vector, bool disabled) {
    SetFeature(kFeatInterruptVectorConfig, vector | (disabled ? 1u << 16 : 0u));
  }

  // Interrupts raised on `vector` since the last call (reads the eventfd).
  uint64_t TakeInterrupts(uint16_t vector) {
    uint64_t count = 0;
    if (::read(driver_->interrupt_fd(vector), &count, sizeof count) != sizeof count) return 0;
    return count;
  }
  // Waits until `vector` raised one interrupt or more; how many.
  uint64_t WaitInterrupts(uint16_t vector) {
    const absl::Time deadline = absl::Now() + kTestTimeout;
    pollfd p = {.fd = driver_->interrupt_fd(vector), .events = POLLIN, .revents = 0};
    while (absl::Now() < deadline) {
      const int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (::poll(&p, 1, std::max(left, 1)) == 1) return TakeInterrupts(vector);
    }
    return 0;
  }
  // Waits until `vector` raised `count` interrupts in all (or the test's
  // timeout passed); the total.
  uint64_t WaitForTotal(uint16_t vector, uint64_t count) {
    uint64_t total = TakeInterrupts(vector);
    const absl::Time deadline = absl::Now() + kTestTimeout;
    while (total < count && absl::Now() < deadline) total += WaitInterrupts(vector);
    return total;
  }

  // Runs a one-block read on I/O queue `qid` (Get Features Arbitration on
  // the admin queue) to its completion, found in CQ memory (polled with the
  // test's deadline, no interrupt waited for).
  void CompleteOne(uint16_t qid) {
    SubmissionEntry read = {};
    if (qid == 0) {
      read.opcode = kAdminGetFeatures;
      read.cdw10 = kFeatArbitration;
    } else {
      read = driver_->ReadCommand(1, 0, 1, buffer_, 512);
    }
    read.cid = next_cid_++;
    ASSERT_OK(driver_->Submit(qid, read));
    const absl::Time deadline = absl::Now() + kTestTimeout;
    for (;;) {
      Completion done;
      ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(qid, absl::MakeSpan(&done, 1), /*wait=*/false));
      if (n == 1) {
        ASSERT_EQ(done.cid, read.cid);
        ASSERT_EQ(done.status, kSuccess);
        return;
      }
      ASSERT_LT(absl::Now(), deadline) << "no completion on queue " << qid;
      std::this_thread::yield();
    }
  }

  void HoldTimer(bool hold) { controller_->HoldCoalescingTimerForTesting(hold); }

  // Asserts that THR = 3 holds four completions to one interrupt on `qid`
  // (TIME long, the timer held).
  void ExpectFourCompletionsOneInterrupt(uint16_t qid) {
    HoldTimer(true);
    // Any interrupt still due from an earlier step goes first.
    SetCoalescing(0, 0);
    TakeInterrupts(qid);
    SetCoalescing(3, kLongTime);
    TakeInterrupts(qid);
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(CompleteOne(qid));
    const uint64_t early = TakeInterrupts(qid);
    ASSERT_NO_FATAL_FAILURE(CompleteOne(qid));
    // The fourth reaches THR + 1: its interrupt comes now, timer or not.
    const uint64_t late = early + WaitForTotal(qid, 1);
    HoldTimer(false);
    EXPECT_EQ(early, 0u) << "three completions are held back";
    EXPECT_EQ(late, 1u) << "four completions, one interrupt";
  }

  uint64_t buffer_ = 0;
  uint16_t next_cid_ = 0x100;
};

TEST_F(CoalescingTest, ThresholdOfFourGivesOneInterruptForFourCompletions) {
  ExpectFourCompletionsOneInterrupt(1);
}

// NVMe: TIME = 0 means no delay, which disables coalescing whatever THR
// says; the same THR with a TIME does coalesce.
TEST_F(CoalescingTest, ZeroTimeDisablesCoalescing) {
  SetCoalescing(3, 0);
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_EQ(WaitForTotal(1, 4), 4u) << "THR = 3, TIME = 0: every completion";
  ExpectFourCompletionsOneInterrupt(1);
}

// A lone completion below the threshold gets its interrupt when TIME runs
// out, with no further completion to push it: not before, and not never.
TEST_F(CoalescingTest, LoneCompletionSignalledWhenTimeRunsOut) {
  SetCoalescing(255, 1);  // 100 us
  CompleteOne(1);
  EXPECT_EQ(WaitInterrupts(1), 1u) << "TIME = 1 still delivers";
  SetCoalescing(255, 50);  // 5 ms
  TakeInterrupts(1);
  const Clock::time_point submitted = Clock::now();
  CompleteOne(1);
  ASSERT_EQ(WaitInterrupts(1), 1u);
  EXPECT_GE(Clock::now() - submitted, std::chrono::milliseconds(5))
      << "held for TIME after the completion";
}

// CD = 1 on vector 1 (Feature 09h): its queue is signalled per completion
// while queue 2's vector still coalesces.
TEST_F(CoalescingTest, CoalescingDisableBitExemptsItsVector) {
  SetVectorCoalescingDisabled(1, true);
  SubmissionEntry get = {};
  get.opcode = kAdminGetFeatures;
  get.cdw10 = kFeatInterruptVectorConfig;
  get.cdw11 = 1;
  uint32_t dw0 = 0;
  ASSERT_EQ(AdminStatus(get, &dw0), kSuccess);
  ASSERT_EQ(dw0, 1u | (1u << 16));
  SetCoalescing(3, kLongTime);
  TakeInterrupts(1);
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_EQ(WaitForTotal(1, 4), 4u) << "vector 1 is exempt";
  ExpectFourCompletionsOneInterrupt(2);
  SetVectorCoalescingDisabled(1, false);
  ExpectFourCompletionsOneInterrupt(1);
}

// Admin completions raise vector 0 every time, while an I/O completion on
// vector 1 is held back under the same setting.
TEST_F(CoalescingTest, AdminCompletionQueueIsNeverCoalesced) {
  HoldTimer(true);
  SetCoalescing(255, kLongTime);
  TakeInterrupts(0);
  TakeInterrupts(1);
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(CompleteOne(0));
  EXPECT_EQ(TakeInterrupts(1), 0u) << "the I/O completion is held back meanwhile";
  // At least: the Set Features' own interrupt may land after its
  // completion was seen. Coalesced, the four would give one.
  EXPECT_GE(WaitForTotal(0, 4), 4u) << "each admin completion raises vector 0";
  SetCoalescing(0, 0);  // signals what waits on vector 1
  EXPECT_EQ(WaitForTotal(1, 1), 1u);
  HoldTimer(false);
}

// A controller reset returns coalescing to off: after it, the recreated
// queue raises its vector for every completion.
TEST_F(CoalescingTest, ResetClearsCoalescing) {
  ExpectFourCompletionsOneInterrupt(1);
  SetCoalescing(3, kLongTime);
  ASSERT_OK(driver_->Disable());
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 64));
  SubmissionEntry get = {};
  get.opcode = kAdminGetFeatures;
  get.cdw10 = kFeatInterruptCoalescing;
  uint32_t dw0 = 0xffff;
  ASSERT_EQ(AdminStatus(get, &dw0), kSuccess);
  EXPECT_EQ(dw0, 0u);
  TakeInterrupts(1);
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_EQ(WaitForTotal(1, 4), 4u) << "no coalescing after the reset";
}

// Deleting the queue pair while its completion waits for the timer: the
// timer touches no queue, the vector is still signalled once the timer
// runs, and the controller serves a queue recreated on the same id.
TEST_F(CoalescingTest, DeletingQueueWithPendingTimerIsSafe) {
  HoldTimer(true);
  SetCoalescing(255, kLongTime);
  TakeInterrupts(1);
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  ASSERT_OK(driver_->DeleteIoQueuePair(1));
  EXPECT_EQ(TakeInterrupts(1), 0u) << "still held when the queue went away";
  HoldTimer(false);
  EXPECT_EQ(WaitForTotal(1, 1), 1u) << "the waiting completion's interrupt";
  ASSERT_OK(driver_->CreateIoQueuePair(1, 64));
  // Again with a reset instead of the deletion: the reset drops it.
  HoldTimer(true);
  TakeInterrupts(1);
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  ASSERT_OK(driver_->Disable());
  ASSERT_OK(driver_->Enable());
  HoldTimer(false);
  ASSERT_OK(driver_->CreateIoQueuePair(1, 64));
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_GE(WaitForTotal(1, 1), 1u) << "served after the reset";
}

// A quiesce (here for a DMA map) signals the completions waiting for a
// coalesced interrupt before it completes: a migration, which runs
// quiesced, carries none.
TEST_F(CoalescingTest, QuiesceSignalsWaitingCompletions) {
  HoldTimer(true);
  SetCoalescing(255, kLongTime);
  TakeInterrupts(1);
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_EQ(TakeInterrupts(1), 0u) << "held back before the quiesce";
  // Another mapping: the server quiesces the device around it.
  std::vector<uint8_t> extra(4096);
  ASSERT_OK(client_->DmaMapMemory(0x900000000ull, absl::MakeSpan(extra)));
  EXPECT_EQ(TakeInterrupts(1), 1u) << "signalled by the time the map returned";
  ASSERT_OK(client_->DmaUnmap(0x900000000ull, extra.size()));
  SetCoalescing(0, 0);
  HoldTimer(false);
  // Coalescing works again once the device runs.
  ExpectFourCompletionsOneInterrupt(1);
}

// Migration: entering STOP (quiesced) signals the completions waiting for
// a coalesced interrupt before the state change completes, so the saved
// state holds no coalescing in progress; back in RUNNING, coalescing
// applies again with the same setting.
TEST_F(CoalescingTest, MigrationStopSignalsWaitingCompletions) {
  HoldTimer(true);
  SetCoalescing(255, kLongTime);
  TakeInterrupts(1);
  ASSERT_NO_FATAL_FAILURE(CompleteOne(1));
  EXPECT_EQ(TakeInterrupts(1), 0u) << "held back while running";
  ASSERT_OK(SetMigrationState(*client_, MigrationState::kStop));
  EXPECT_EQ(TakeInterrupts(1), 1u) << "signalled by the time STOP was reached";
  ASSERT_OK(SetMigrationState(*client_, MigrationState::kRunning));
  HoldTimer(false);
  ExpectFourCompletionsOneInterrupt(1);
}

}  // namespace
}  // namespace vfu::nvme
