// The controller as a whole: many queues at once with verified data, reset
// and detach with I/O in flight, and a hostile driver (queues in unmapped
// memory, out-of-range doorbells).
#include <atomic>
#include <set>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

using ControllerTest = NvmeTest;

// Reads what the server sends (each Poll() handles what came; nothing
// sleeps) until the client has received more than `count` commands.
void AwaitServerCommands(Client& client, uint64_t count) {
  const absl::Time deadline = absl::Now() + kTestTimeout;
  while (client.stats().server_commands_received <= count && absl::Now() < deadline) {
    ASSERT_OK(client.Poll(kTestTimeout));
  }
  ASSERT_GT(client.stats().server_commands_received, count);
}

TEST_F(ControllerTest, ManyQueuesConcurrentlyKeepEveryBlockIntact) {
  NvmeTestConfig config;
  config.namespace_bytes = 32ull << 20;
  config.io_threads = 3;
  Start(config);
  constexpr uint16_t kQueues = 8;
  constexpr uint32_t kDepth = 8;
  constexpr uint32_t kBlock = 4096;
  // Queue q owns blocks [q * 512, q * 512 + 512): slots of 4 KiB.
  constexpr uint32_t kSlots = 512;
  EnableWithQueues(kQueues, 32);
  const uint64_t buffers = driver_->Allocate(uint64_t{kQueues} * kDepth * kBlock);
  // Seed (generation) last written to each slot, 0 = never.
  std::vector<uint32_t> written(kQueues * kSlots, 0);
  struct Op {
    bool write;
    uint32_t slot;
    uint32_t seed;
  };
  std::vector<Op> ops(kQueues * kDepth);
  std::vector<bool> busy(kQueues * kDepth, false);
  uint32_t seed = 1;
  uint64_t completed = 0;
  uint64_t verified_reads = 0;
  uint32_t rng = 12345;
  auto next = [&rng] {
    rng = rng * 1103515245 + 12345;
    return rng >> 8;
  };
  const absl::Time end = absl::Now() + absl::Milliseconds(1500);
  bool stopping = false;
  for (;;) {
    stopping = stopping || absl::Now() > end;
    bool any_busy = false;
    for (uint16_t q = 1; q <= kQueues; ++q) {
      for (uint32_t d = 0; d < kDepth; ++d) {
        const uint32_t tag = (q - 1) * kDepth + d;
        if (busy[tag]) {
          any_busy = true;
          continue;
        }
        if (stopping) continue;
        // One command per slot at a time: pick a slot no other tag of this
        // queue uses (slots are split by depth index).
        const uint32_t slot = d + kDepth * (next() % (kSlots / kDepth));
        const bool write = written[(q - 1) * kSlots + slot] == 0 || next() % 2 == 0;
        const uint64_t buffer = buffers + uint64_t{tag} * kBlock;
        const uint64_t lba = ((uint64_t{q} - 1) * kSlots + slot) * (kBlock / 512);
        SubmissionEntry sqe;
        if (write) {
          ops[tag] = {true, slot, seed++};
          FillPattern(driver_->Host(buffer), kBlock, ops[tag].seed);
          sqe = driver_->WriteCommand(1, lba, kBlock / 512, buffer, kBlock);
        } else {
          ops[tag] = {false, slot, written[(q - 1) * kSlots + slot]};
          std::memset(driver_->Host(buffer), 0, kBlock);
          sqe = driver_->ReadCommand(1, lba, kBlock / 512, buffer, kBlock);
        }
        sqe.cid = static_cast<uint16_t>(tag);
        ASSERT_OK(driver_->Submit(q, sqe, /*ring=*/false));
        busy[tag] = true;
        any_busy = true;
      }
      ASSERT_OK(driver_->RingSubmission(q));
    }
    if (!any_busy) break;
    for (uint16_t q = 1; q <= kQueues; ++q) {
      Completion done[kDepth];
      ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(q, absl::MakeSpan(done), /*wait=*/false));
      for (size_t i = 0; i < n; ++i) {
        const uint16_t tag = done[i].cid;
        ASSERT_LT(tag, kQueues * kDepth);
        ASSERT_EQ(tag / kDepth, q - 1u) << "completion on the wrong queue";
        ASSERT_TRUE(busy[tag]) << "completed twice: " << tag;
        ASSERT_EQ(done[i].status, kSuccess);
        busy[tag] = false;
        ++completed;
        const Op& op = ops[tag];
        if (op.write) {
          written[(q - 1) * kSlots + op.slot] = op.seed;
        } else {
          ASSERT_TRUE(MatchesPattern(driver_->Host(buffers + uint64_t{tag} * kBlock), kBlock,
                                     op.seed))
              << "queue " << q << " slot " << op.slot;
          ++verified_reads;
        }
      }
    }
  }
  EXPECT_GT(completed, 100u);
  EXPECT_GT(verified_reads, 10u);
  // The file agrees with the last write of every slot.
  for (uint16_t q = 1; q <= kQueues; ++q) {
    for (uint32_t slot = 0; slot < kSlots; ++slot) {
      const uint32_t s = written[(q - 1) * kSlots + slot];
      if (s == 0) continue;
      std::vector<uint8_t> block = FileBytes(1, ((uint64_t{q} - 1) * kSlots + slot) * kBlock, kBlock);
      ASSERT_TRUE(MatchesPattern(block.data(), kBlock, s)) << "queue " << q << " slot " << slot;
    }
  }
}

class InFlightTest : public NvmeTest {
 protected:
  void SetUp() override {
    NvmeTestConfig config;
    config.driver.shared_memory = false;  // DMA goes through messages we can hold
    Start(config);
    EnableWithQueues(1, 16);
    buffer_ = driver_->Allocate(4096);
    FillPattern(driver_->Host(buffer_), 4096, 9);
  }
  // Holds the client's answers, submits a write and returns once the
  // controller is stuck fetching it.
  void SubmitHeldWrite() {
    const uint64_t before = client_->stats().server_commands_received;
    client_->HoldServerCommands();
    SubmissionEntry write = driver_->WriteCommand(1, 0, 8, buffer_, 4096);
    write.cid = 77;
    ASSERT_OK(driver_->Submit(1, write));
    AwaitServerCommands(*client_, before);
  }
  uint64_t buffer_ = 0;
};

TEST_F(InFlightTest, ResetWaitsForTheCommandInFlightAndCompletesItAtMostOnce) {
  ASSERT_NO_FATAL_FAILURE(SubmitHeldWrite());
  ASSERT_OK(driver_->Write32(kRegCc, (6u << 16) | (4u << 20)));  // EN = 0
  // The I/O thread is inside the command: not ready to report RDY = 0.
  EXPECT_EQ(Csts() & kCstsReady, kCstsReady);
  client_->ReleaseServerCommands();
  ASSERT_OK(driver_->WaitForCsts(kCstsReady, 0));
  // The admin thread applies CC.EN = 0 on its own time: if it had not
  // killed the CQ when the write got its data, the write completed before
  // the reset (once, with its data); otherwise it completes never.
  Completion done[2];
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(done), /*wait=*/false));
  ASSERT_LE(n, 1u) << "completed twice";
  if (n == 1) {
    EXPECT_EQ(done[0].cid, 77);
    EXPECT_EQ(done[0].status, kSuccess);
  }
  EXPECT_EQ(FileSize(1), config_.namespace_bytes);
  // The controller comes back as new.
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 16));
  ASSERT_OK_AND_ASSIGN(Completion again,
                       driver_->Run(1, driver_->WriteCommand(1, 0, 8, buffer_, 4096)));
  EXPECT_EQ(again.status, kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 0, 4096);
  EXPECT_TRUE(MatchesPattern(file.data(), 4096, 9));
}

TEST_F(InFlightTest, DetachMidIoFreesTheDeviceForTheNextClient) {
  ASSERT_NO_FATAL_FAILURE(SubmitHeldWrite());
  // The client goes away with the command unanswered.
  Reconnect();
  EXPECT_EQ(Csts(), 0u) << "the detach reset the controller";
  EXPECT_EQ(FileBytes(1, 0, 4096), std::vector<uint8_t>(4096, 0))
      << "the write never got its data";
  ASSERT_OK(driver_->Enable());
  ASSERT_OK(driver_->CreateIoQueuePair(1, 16));
  const uint64_t buffer = driver_->Allocate(4096);
  FillPattern(driver_->Host(buffer), 4096, 10);
  ASSERT_OK_AND_ASSIGN(Completion done,
                       driver_->Run(1, driver_->WriteCommand(1, 0, 8, buffer, 4096)));
  EXPECT_EQ(done.status, kSuccess);
}

TEST_F(ControllerTest, ShutdownWithIoQueuedFlushesAndKeepsCompletions) {
  EnableWithQueues(1, 16);
  const uint64_t buffer = driver_->Allocate(16 * 4096);
  for (uint16_t i = 0; i < 8; ++i) {
    FillPattern(driver_->Host(buffer + i * 4096), 4096, 100 + i);
    SubmissionEntry write = driver_->WriteCommand(1, i * 8, 8, buffer + i * 4096, 4096);
    write.cid = i;
    ASSERT_OK(driver_->Submit(1, write, /*ring=*/i == 7));
  }
  ASSERT_OK(driver_->Shutdown());
  std::set<uint16_t> seen;
  while (seen.size() < 8) {
    Completion done[8];
    ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(done), /*wait=*/true));
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(done[i].status, kSuccess);
      EXPECT_TRUE(seen.insert(done[i].cid).second) << "twice: " << done[i].cid;
    }
  }
  for (uint16_t i = 0; i < 8; ++i) {
    std::vector<uint8_t> block = FileBytes(1, i * 4096, 4096);
    EXPECT_TRUE(MatchesPattern(block.data(), 4096, 100 + i));
  }
}

TEST_F(ControllerTest, SubmissionQueueInUnmappedMemoryIsFatal) {
  ASSERT_OK(driver_->Enable());
  SubmissionEntry cq = {};
  cq.opcode = kAdminCreateCq;
  cq.prp1 = driver_->Allocate(4096, NvmeDriver::kQueueAlignment);
  cq.cdw10 = 1 | (15u << 16);
  cq.cdw11 = 3 | (1u << 16);
  ASSERT_EQ(AdminStatus(cq), kSuccess);
  SubmissionEntry sq = {};
  sq.opcode = kAdminCreateSq;
  sq.prp1 = 0x40000;  // nothing mapped there
  sq.cdw10 = 1 | (15u << 16);
  sq.cdw11 = 1 | (1u << 16);
  ASSERT_EQ(AdminStatus(sq), kSuccess);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 1));
  ASSERT_OK(driver_->WaitForCsts(kCstsFatal, kCstsFatal));
  // A reset clears it.
  ASSERT_OK(driver_->Disable());
  EXPECT_EQ(Csts(), 0u);
  ASSERT_OK(driver_->Enable());
}

TEST_F(ControllerTest, CompletionQueueInUnmappedMemoryIsFatal) {
  ASSERT_OK(driver_->Enable());
  SubmissionEntry cq = {};
  cq.opcode = kAdminCreateCq;
  cq.prp1 = 0x40000;
  cq.cdw10 = 1 | (15u << 16);
  cq.cdw11 = 3 | (1u << 16);
  ASSERT_EQ(AdminStatus(cq), kSuccess);
  SubmissionEntry sq = {};
  sq.opcode = kAdminCreateSq;
  sq.prp1 = driver_->Allocate(4096, NvmeDriver::kQueueAlignment);
  sq.cdw10 = 1 | (15u << 16);
  sq.cdw11 = 1 | (1u << 16);
  ASSERT_EQ(AdminStatus(sq), kSuccess);
  SubmissionEntry flush = {};
  flush.opcode = kNvmFlush;
  flush.nsid = 1;
  std::memcpy(driver_->Host(sq.prp1), &flush, sizeof flush);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 1));
  ASSERT_OK(driver_->WaitForCsts(kCstsFatal, kCstsFatal));
}

TEST_F(ControllerTest, OutOfRangeDoorbellsAreIgnoredAndTheQueueGoesOn) {
  EnableWithQueues(1, 16);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 16));       // tail == size
  ASSERT_OK(driver_->Write32(SqTailDoorbell(1), 0xffffffff));
  ASSERT_OK(driver_->Write32(CqHeadDoorbell(1), 5));        // past the tail
  ASSERT_OK(driver_->Write32(SqTailDoorbell(kMaxIoQueues), 1));  // no such queue
  // Beyond the doorbell array, and a 2-byte doorbell write.
  ASSERT_OK(driver_->Write32(kDoorbellEnd, 1));
  const uint8_t half[2] = {1, 0};
  ASSERT_OK(client_->RegionWrite(kBar0Region, SqTailDoorbell(1), half));
  EXPECT_EQ(Csts(), kCstsReady) << "not fatal";
  const uint64_t buffer = driver_->Allocate(4096);
  FillPattern(driver_->Host(buffer), 4096, 11);
  ASSERT_OK_AND_ASSIGN(Completion done,
                       driver_->Run(1, driver_->WriteCommand(1, 0, 8, buffer, 4096)));
  EXPECT_EQ(done.status, kSuccess);
  EXPECT_EQ(done.sq_head, 1) << "the bad tails were not taken";
  // The first error event waits for a request.
  SubmissionEntry aer = {};
  aer.opcode = kAdminAsyncEvent;
  uint32_t dw0 = 0;
  EXPECT_EQ(AdminStatus(aer, &dw0), kSuccess);
  EXPECT_EQ(dw0, AerResult(kAerTypeError, kAerInfoInvalidDoorbellValue, kLogError));
}

TEST_F(ControllerTest, DeletingAQueueWithCommandsQueuedLetsItBeRecreated) {
  EnableWithQueues(2, 64);
  const uint64_t buffer = driver_->Allocate(4096);
  for (uint16_t i = 0; i < 32; ++i) {
    SubmissionEntry read = driver_->ReadCommand(1, i, 1, buffer, 512);
    read.cid = i;
    ASSERT_OK(driver_->Submit(2, read, /*ring=*/i == 31));
  }
  ASSERT_OK(driver_->DeleteIoQueuePair(2));
  // The deletion waited for the batch in flight; the queue is gone.
  SubmissionEntry sq = {};
  sq.opcode = kAdminDeleteSq;
  sq.cdw10 = 2;
  EXPECT_EQ(AdminStatus(sq), kInvalidQueueId);
  ASSERT_OK(driver_->CreateIoQueuePair(2, 64));
  ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(2, driver_->ReadCommand(1, 0, 1, buffer, 512)));
  EXPECT_EQ(done.status, kSuccess);
}

TEST_F(ControllerTest, DeletingASubmissionQueueAbortsWhatWasNotFetched) {
  EnableWithQueues(1, 64);
  ASSERT_OK(driver_->EnableShadowDoorbells());
  const uint64_t buffer = driver_->Allocate(4096);
  // No command yet: nothing has woken the queue's thread since the queue
  // exists (a served command's CQ doorbell would, at a time of its own).
  const Completion first = {.sq_head = 0};
  // Ten commands the controller can only learn of from the shadow tail: no
  // doorbell wakes its thread, so none is fetched before the deletion.
  constexpr uint16_t kQueued = 10;
  for (uint16_t i = 0; i < kQueued; ++i) {
    SubmissionEntry read = driver_->ReadCommand(1, i, 1, buffer, 512);
    read.cid = static_cast<uint16_t>(100 + i);
    ASSERT_OK(driver_->Submit(1, read, /*ring=*/false));
  }
  const uint32_t tail = (first.sq_head + kQueued) % 64;
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(
                                driver_->Host(driver_->shadow_buffer() + 8 * 1)))
      .store(tail, std::memory_order_release);
  SubmissionEntry del = {};
  del.opcode = kAdminDeleteSq;
  del.cdw10 = 1;
  ASSERT_EQ(AdminStatus(del), kSuccess);
  // Posted before the deletion completed: all there without waiting.
  Completion aborted[kQueued + 1];
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(aborted), /*wait=*/false));
  ASSERT_EQ(n, kQueued);
  for (uint16_t i = 0; i < kQueued; ++i) {
    EXPECT_EQ(aborted[i].cid, 100 + i);
    EXPECT_EQ(aborted[i].status, kAbortedSqDeletion);
    EXPECT_EQ(aborted[i].sq_id, 1);
    EXPECT_EQ(aborted[i].sq_head, (first.sq_head + i + 1) % 64);
  }
}

TEST_F(ControllerTest, DeletingABusySubmissionQueueCompletesEveryCommandOnce) {
  EnableWithQueues(1, 64);
  const uint64_t buffer = driver_->Allocate(4096);
  constexpr uint16_t kCommands = 48;
  for (uint16_t i = 0; i < kCommands; ++i) {
    SubmissionEntry read = driver_->ReadCommand(1, i, 8, buffer, 4096);
    read.cid = i;
    ASSERT_OK(driver_->Submit(1, read, /*ring=*/i == kCommands - 1));
  }
  SubmissionEntry del = {};
  del.opcode = kAdminDeleteSq;
  del.cdw10 = 1;
  ASSERT_EQ(AdminStatus(del), kSuccess);
  // Those fetched completed normally, the rest were aborted: each once, all
  // before the deletion's own completion.
  Completion all[kCommands + 1];
  ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(1, absl::MakeSpan(all), /*wait=*/false));
  ASSERT_EQ(n, kCommands);
  std::vector<int> seen(kCommands, 0);
  bool aborting = false;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LT(all[i].cid, kCommands);
    ++seen[all[i].cid];
    if (all[i].status == kAbortedSqDeletion) {
      aborting = true;
    } else {
      EXPECT_EQ(all[i].status, kSuccess);
      EXPECT_FALSE(aborting) << "a command ran after one was aborted";
    }
  }
  for (uint16_t i = 0; i < kCommands; ++i) EXPECT_EQ(seen[i], 1) << "cid " << i;
}

// Waits until admin CQ entry `slot` carries phase tag 1 (first pass).
bool WaitForPosted(uint8_t* cq, uint32_t slot) {
  const absl::Time deadline = absl::Now() + kTestTimeout;
  auto* status = reinterpret_cast<uint16_t*>(cq + 16 * slot + 14);
  while (absl::Now() < deadline) {
    if ((std::atomic_ref<uint16_t>(*status).load(std::memory_order_acquire) & 1) != 0) return true;
    std::this_thread::yield();
  }
  return false;
}

TEST_F(ControllerTest, AnEventWaitsForRoomInAFullAdminCompletionQueue) {
  NvmeTestConfig config;
  config.driver.admin_entries = 4;  // three completions fill the admin CQ
  config.driver.interrupts = false;
  Start(config);
  ASSERT_OK(driver_->Enable());
  ASSERT_OK_AND_ASSIGN(uint64_t asq, driver_->Read64(kRegAsq));
  ASSERT_OK_AND_ASSIGN(uint64_t acq, driver_->Read64(kRegAcq));
  // Raw admin entries, bypassing the driver's bookkeeping: an event request
  // (kept by the controller), then three commands whose completions are
  // never consumed.
  auto put = [&](uint32_t slot, uint8_t opcode, uint16_t cid) {
    SubmissionEntry sqe = {};
    sqe.opcode = opcode;
    sqe.cid = cid;
    if (opcode == kAdminGetFeatures) sqe.cdw10 = 0x07;  // number of queues
    std::memcpy(driver_->Host(asq + 64 * slot), &sqe, sizeof sqe);
  };
  put(0, kAdminAsyncEvent, 1);
  put(1, kAdminGetFeatures, 2);
  put(2, kAdminGetFeatures, 3);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(0), 3));
  ASSERT_TRUE(WaitForPosted(driver_->Host(acq), 1));
  put(3, kAdminGetFeatures, 4);
  ASSERT_OK(driver_->Write32(SqTailDoorbell(0), 0));
  ASSERT_TRUE(WaitForPosted(driver_->Host(acq), 2));
  // The CQ is full. An event for the waiting request: a doorbell for a
  // queue that does not exist.
  ASSERT_OK(driver_->Write32(SqTailDoorbell(kMaxIoQueues), 1));
  // Still full: its completion waits.
  const absl::Time deadline = absl::Now() + kTestTimeout;
  while (controller_->delayed_events() == 0 && absl::Now() < deadline) std::this_thread::yield();
  ASSERT_EQ(controller_->delayed_events(), 1u);
  // Freeing the slots lets it through.
  ASSERT_OK(driver_->Write32(CqHeadDoorbell(0), 3));
  ASSERT_TRUE(WaitForPosted(driver_->Host(acq), 3)) << "the event was lost";
  CompletionEntry cqe;
  std::memcpy(&cqe, driver_->Host(acq + 16 * 3), sizeof cqe);
  EXPECT_EQ(cqe.cid, 1);
  EXPECT_EQ(cqe.status >> 1, kSuccess);
  EXPECT_EQ(cqe.dw0, AerResult(kAerTypeError, kAerInfoInvalidDoorbell, kLogError));
}

}  // namespace
}  // namespace vfu::nvme
