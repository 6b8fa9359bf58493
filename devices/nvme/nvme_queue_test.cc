// Queue pairs: wrap-around and phase tags, SQ heads in completions, a
// completion queue smaller than the commands outstanding (full CQ), and
// each completion queue's own MSI-X vector.
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <set>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

class QueueTest : public NvmeTest {
 protected:
  SubmissionEntry Flush(uint16_t cid) {
    SubmissionEntry sqe = {};
    sqe.opcode = kNvmFlush;
    sqe.nsid = 1;
    sqe.cid = cid;
    return sqe;
  }
};

TEST_F(QueueTest, SmallQueueWrapsManyTimesWithCorrectPhaseAndHeads) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 4));
  const uint64_t buffer = driver_->Allocate(4096);
  for (uint32_t i = 0; i < 40; ++i) {
    FillPattern(driver_->Host(buffer), 512, i);
    ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(1, driver_->WriteCommand(1, i, 1, buffer, 512)));
    ASSERT_EQ(done.status, kSuccess);
    EXPECT_EQ(done.sq_id, 1);
    EXPECT_EQ(done.sq_head, (i + 1) % 4) << "command " << i;
  }
  for (uint32_t i = 0; i < 40; ++i) {
    std::vector<uint8_t> block = FileBytes(1, i * 512, 512);
    ASSERT_TRUE(MatchesPattern(block.data(), 512, i)) << "LBA " << i;
  }
}

TEST_F(QueueTest, FullBatchesWrapTheRing) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 8));
  uint16_t cid = 0;
  for (int round = 0; round < 10; ++round) {
    std::set<uint16_t> waiting;
    for (int i = 0; i < 7; ++i) {  // a queue of 8 holds 7
      waiting.insert(cid);
      ASSERT_OK(driver_->Submit(1, Flush(cid++), /*ring=*/i == 6));
    }
    EXPECT_FALSE(driver_->Submit(1, Flush(cid)).ok()) << "the driver's ring is full";
    while (!waiting.empty()) {
      Completion done[8];
      ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(done), /*wait=*/true));
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(done[i].status, kSuccess);
        EXPECT_EQ(waiting.erase(done[i].cid), 1u) << "completed twice or unknown: " << done[i].cid;
      }
    }
  }
}

TEST_F(QueueTest, CompletionQueueSmallerThanOutstandingCommandsLosesNothing) {
  ASSERT_OK(driver_->Enable());
  // The CQ holds one entry at a time; 15 commands are submitted at once.
  ASSERT_OK(driver_->CreateIoQueuePair(1, 16, /*cq_entries=*/2));
  std::set<uint16_t> waiting;
  for (uint16_t cid = 0; cid < 15; ++cid) {
    waiting.insert(cid);
    ASSERT_OK(driver_->Submit(1, Flush(cid), /*ring=*/false));
  }
  ASSERT_OK(driver_->RingSubmission(1));
  uint16_t last_head = 0;
  while (!waiting.empty()) {
    Completion done;
    ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(&done, 1), /*wait=*/true));
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(waiting.erase(done.cid), 1u) << "completed twice or unknown: " << done.cid;
    EXPECT_GT(done.sq_head, last_head) << "the SQ head only advances";
    last_head = done.sq_head;
  }
  EXPECT_EQ(last_head, 15);
}

TEST_F(QueueTest, EachCompletionQueueRaisesItsOwnVector) {
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 8));
  ASSERT_OK(driver_->CreateIoQueuePair(2, 8));
  ASSERT_OK(driver_->Submit(2, Flush(7)));
  pollfd p = {.fd = driver_->interrupt_fd(2), .events = POLLIN, .revents = 0};
  ASSERT_EQ(::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kTestTimeout))), 1)
      << "vector 2 raised";
  pollfd other = {.fd = driver_->interrupt_fd(1), .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&other, 1, 0), 0) << "vector 1 quiet";
  Completion done;
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(2, absl::MakeSpan(&done, 1), /*wait=*/false));
  ASSERT_EQ(n, 1u) << "the entry is visible once the vector fired";
  EXPECT_EQ(done.cid, 7);
}

TEST_F(QueueTest, PolledQueueRaisesNoInterrupt) {
  ASSERT_OK(driver_->Enable());
  SubmissionEntry cq = {};
  cq.opcode = kAdminCreateCq;
  cq.prp1 = driver_->Allocate(4096, NvmeDriver::kQueueAlignment);
  cq.cdw10 = 1 | (7u << 16);
  cq.cdw11 = 1 | (1u << 16);  // PC, IEN = 0, vector 1
  ASSERT_EQ(AdminStatus(cq), kSuccess);
  SubmissionEntry sq = {};
  sq.opcode = kAdminCreateSq;
  sq.prp1 = driver_->Allocate(4096, NvmeDriver::kQueueAlignment);
  sq.cdw10 = 1 | (7u << 16);
  sq.cdw11 = 1 | (1u << 16);
  ASSERT_EQ(AdminStatus(sq), kSuccess);
  // Write the entry by hand and ring; poll the CQ memory for the phase.
  std::memcpy(driver_->Host(sq.prp1), &static_cast<const SubmissionEntry&>(Flush(3)), 64);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 1));
  const uint8_t* entry = driver_->Host(cq.prp1);
  const absl::Time deadline = absl::Now() + kTestTimeout;
  while ((std::atomic_ref<const uint8_t>(entry[14]).load() & 1) == 0 && absl::Now() < deadline) {
  }
  ASSERT_EQ(entry[14] & 1, 1) << "completion posted";
  EXPECT_EQ(entry[12], 3) << "CID";
  pollfd p = {.fd = driver_->interrupt_fd(1), .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "IEN = 0: no interrupt";
}

TEST_F(QueueTest, MsiRouteHonoursInterruptMask) {
  // No MSI-X: the client gives MSI vector 0 an eventfd instead.
  NvmeTestConfig config;
  config.driver.interrupts = false;
  Start(config);
  UniqueFd msi(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.push_back(DuplicateFd(msi.get()));
  ASSERT_OK(client_->SetIrqEventfds(kMsiIrq, 0, std::move(fds)));
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->Write32(kRegIntms, 1));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  pollfd p = {.fd = msi.get(), .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "masked by INTMS";
  // Unmasking signals the completion still unconsumed... which the driver
  // consumed already; a new command signals.
  ASSERT_OK(driver_->Write32(kRegIntmc, 1));
  ASSERT_OK_AND_ASSIGN(id, driver_->Identify(kCnsController));
  EXPECT_EQ(::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kTestTimeout))), 1);
}

// INTx (no MSI-X, no MSI): a completion raises the line, which the
// framework masks at each delivery (as vfio-pci does) until the client
// unmasks it; an entry still unconsumed then raises it again (a level).
TEST_F(QueueTest, IntxFiresAndWaitsForTheUnmask) {
  NvmeTestConfig config;
  config.driver.interrupts = false;
  Start(config);
  UniqueFd intx(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.push_back(DuplicateFd(intx.get()));
  ASSERT_OK(client_->SetIrqEventfds(kIntxIrq, 0, std::move(fds)));
  ASSERT_OK(driver_->Enable());
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(kTestTimeout));
  pollfd p = {.fd = intx.get(), .events = POLLIN, .revents = 0};
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  ASSERT_EQ(::poll(&p, 1, timeout_ms), 1) << "the first completion raised INTx";
  uint64_t count = 0;
  ASSERT_EQ(::read(intx.get(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  // A completion the driver leaves unconsumed: the line stays up, masked.
  SubmissionEntry abort = {};
  abort.opcode = kAdminAbort;
  abort.cid = 0x77;
  ASSERT_OK(driver_->Submit(0, abort));
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "masked since the last delivery";
  wire::SetIrqsRequest unmask;
  unmask.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
  unmask.index = kIntxIrq;
  unmask.count = 1;
  ASSERT_OK(client_->SetIrqs(unmask));
  EXPECT_EQ(::poll(&p, 1, timeout_ms), 1) << "raised again for the unconsumed entry";
  Completion done;
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(0, absl::MakeSpan(&done, 1), /*wait=*/true));
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(done.cid, 0x77);
}

}  // namespace
}  // namespace vfu::nvme
