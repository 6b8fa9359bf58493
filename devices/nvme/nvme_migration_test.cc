// The NVMe controller migrating between two servers in one process while
// I/O is in flight: our driver as the guest, its memory shared with both
// servers, the namespace files shared too. Every command completes exactly
// once, some on each side, the data reads back right on the destination,
// and an Asynchronous Event Request fetched on the source completes on the
// destination. A corrupted stream is refused and a failed migration resumes
// on the source.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices/gpio/gpio_device.h"
#include "devices/nvme/nvme_test_fixture.h"
#include "testing/corrupted_migration.h"
#include "vfu/client/migration.h"

namespace vfu::nvme {
namespace {

constexpr uint16_t kQueues = 8;
constexpr uint32_t kQueueEntries = 64;
constexpr uint16_t kCommandsPerQueue = kQueueEntries - 1;
// Completion queues smaller than the submission queues: until the driver
// consumes completions, which it does only after the migration, the
// controller fetches at most kCqEntries - 1 commands of a queue, so the
// rest are certainly in flight when the device migrates (and each CQ
// migrates full, with entries the driver has not consumed).
constexpr uint32_t kCqEntries = 16;
constexpr uint32_t kBlocksPerCommand = 256;  // 128 KiB of 512-byte blocks
constexpr uint64_t kCommandBytes = uint64_t{kBlocksPerCommand} * 512;
constexpr uint16_t kAerCid = 0xae00;

uint64_t Lba(uint16_t qid, uint16_t command) {
  return (uint64_t{qid - 1u} * kCommandsPerQueue + command) * kBlocksPerCommand;
}

// The destination: another controller on the same image files, its own
// server, and a client on it.
struct Peer {
  testing::ScopedTempDir dir;
  std::unique_ptr<NvmeController> controller;
  std::unique_ptr<Server> server;
  std::unique_ptr<Client> client;
};

class NvmeMigrationTest : public NvmeTest {
 protected:
  void SetUp() override {
    NvmeTestConfig config;
    config.namespace_bytes = uint64_t{kQueues} * kCommandsPerQueue * kCommandBytes;
    config.driver.memory_bytes = 64ull << 20;
    Start(config);
  }
  void TearDown() override {
    Stop();  // the source first: its detach must not wait for the peer
    peer_.client.reset();
    if (peer_.server != nullptr) peer_.server->Stop();
    peer_.server.reset();
    peer_.controller.reset();
  }

  void StartPeer(Device* other = nullptr) {
    if (other == nullptr) {
      ASSERT_OK_AND_ASSIGN(peer_.controller,
                           NvmeController::Create({namespace_path(1)}, 512, config_.io_threads));
      other = peer_.controller.get();
    }
    ServerOptions options;
    options.runtime.dma_timeout = absl::Minutes(5);
    ASSERT_OK_AND_ASSIGN(peer_.server, Server::Create(std::move(options)));
    ASSERT_OK(peer_.server->AddDevice(peer_.dir.File("dest.sock"), *other));
    ASSERT_OK(peer_.server->Start());
    ClientOptions client_options;
    client_options.timeout = kTestTimeout;
    ASSERT_OK_AND_ASSIGN(peer_.client,
                         Client::Connect(peer_.dir.File("dest.sock"), client_options));
  }

  // Enables the controller with its queues, leaves an event request with
  // it, and submits kCommandsPerQueue 128 KiB writes on every queue (queue
  // q writes pattern q), ringing each queue once.
  void StartIo() {
    ASSERT_OK(driver_->Enable());
    for (uint16_t q = 1; q <= kQueues; ++q) {
      ASSERT_OK(driver_->CreateIoQueuePair(q, kQueueEntries, kCqEntries));
    }
    SubmissionEntry aer = {};
    aer.opcode = kAdminAsyncEvent;
    aer.cid = kAerCid;
    ASSERT_OK(driver_->Submit(0, aer));
    for (uint16_t q = 1; q <= kQueues; ++q) {
      const uint64_t buffer = driver_->Allocate(kCommandBytes);
      ASSERT_NE(buffer, 0u);
      FillPattern(driver_->Host(buffer), kCommandBytes, q);
      const uint64_t list = driver_->Allocate(NvmeDriver::kPage);
      for (uint16_t i = 0; i < kCommandsPerQueue; ++i) {
        SubmissionEntry write = driver_->WriteCommand(1, Lba(q, i), kBlocksPerCommand, buffer,
                                                      kCommandBytes);
        driver_->SetPrps(write, buffer, kCommandBytes, list);
        write.cid = i;
        ASSERT_OK(driver_->Submit(q, write, /*ring=*/i == kCommandsPerQueue - 1));
      }
    }
  }

  // Reaps every queue until each command completed; each exactly once.
  void ExpectEveryCommandCompletedOnce() {
    for (uint16_t q = 1; q <= kQueues; ++q) {
      std::vector<int> seen(kCommandsPerQueue, 0);
      uint32_t total = 0;
      while (total < kCommandsPerQueue) {
        Completion batch[16];
        ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(q, absl::MakeSpan(batch), /*wait=*/true));
        for (size_t i = 0; i < n; ++i) {
          ASSERT_LT(batch[i].cid, kCommandsPerQueue);
          EXPECT_EQ(batch[i].status, kSuccess) << "queue " << q << " cid " << batch[i].cid;
          ++seen[batch[i].cid];
        }
        total += static_cast<uint32_t>(n);
      }
      for (uint16_t i = 0; i < kCommandsPerQueue; ++i) {
        EXPECT_EQ(seen[i], 1) << "queue " << q << " cid " << i;
      }
      // Nothing more arrives (a duplicate would).
      Completion extra;
      ASSERT_OK_AND_ASSIGN(size_t more, driver_->Reap(q, absl::MakeSpan(&extra, 1), false));
      EXPECT_EQ(more, 0u) << "queue " << q << ": a completion beyond the commands";
    }
  }

  // Reads every command's range back through the device and checks it.
  void ExpectDataReadsBack() {
    const uint64_t buffer = driver_->Allocate(kCommandBytes);
    const uint64_t list = driver_->Allocate(NvmeDriver::kPage);
    ASSERT_NE(buffer, 0u);
    for (uint16_t q = 1; q <= kQueues; ++q) {
      for (uint16_t i = 0; i < kCommandsPerQueue; i += 7) {
        std::memset(driver_->Host(buffer), 0, kCommandBytes);
        SubmissionEntry read =
            driver_->ReadCommand(1, Lba(q, i), kBlocksPerCommand, buffer, kCommandBytes);
        driver_->SetPrps(read, buffer, kCommandBytes, list);
        ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(q, read));
        ASSERT_EQ(done.status, kSuccess);
        ASSERT_TRUE(MatchesPattern(driver_->Host(buffer), kCommandBytes, q))
            << "queue " << q << " command " << i;
      }
    }
  }

  Peer peer_;
};

TEST_F(NvmeMigrationTest, IoInFlightCompletesExactlyOnceOnTheDestination) {
  ASSERT_NO_FATAL_FAILURE(StartPeer());
  ASSERT_OK(driver_->ShareWith(*peer_.client));
  ASSERT_NO_FATAL_FAILURE(StartIo());
  ASSERT_OK_AND_ASSIGN(MigrationReport report, Migrate(*client_, *peer_.client, MigrationOptions()));
  EXPECT_GT(report.device_state_bytes, 0u);
  ASSERT_OK_AND_ASSIGN(MigrationState source_state, GetMigrationState(*client_));
  EXPECT_EQ(source_state, MigrationState::kStop);
  const uint64_t on_source = controller_->zero_copy_transfers();
  driver_->UseClient(*peer_.client);

  ASSERT_NO_FATAL_FAILURE(ExpectEveryCommandCompletedOnce());
  const uint64_t on_destination = peer_.controller->zero_copy_transfers();
  EXPECT_LE(on_source, uint64_t{kQueues} * (kCqEntries - 1)) << "a full CQ did not stop the source";
  EXPECT_GT(on_destination, 0u);
  EXPECT_EQ(on_source + on_destination, uint64_t{kQueues} * kCommandsPerQueue)
      << "a write ran twice or not at all";
  EXPECT_EQ(controller_->zero_copy_transfers(), on_source) << "the stopped source went on";

  // The event request fetched on the source completes on the destination.
  ASSERT_OK(driver_->Write32(SqTailDoorbell(kMaxIoQueues), 1));  // no such queue: an event
  bool event_seen = false;
  const absl::Time deadline = absl::Now() + kTestTimeout;
  while (!event_seen && absl::Now() < deadline) {
    Completion completion;
    ASSERT_OK_AND_ASSIGN(size_t n, driver_->Reap(0, absl::MakeSpan(&completion, 1), true));
    if (n == 1 && completion.cid == kAerCid) {
      event_seen = true;
      EXPECT_EQ(completion.dw0, AerResult(kAerTypeError, kAerInfoInvalidDoorbell, kLogError));
    }
  }
  EXPECT_TRUE(event_seen);
  ASSERT_NO_FATAL_FAILURE(ExpectDataReadsBack());
}

TEST_F(NvmeMigrationTest, CorruptedStreamIsRefusedAndTheSourceResumes) {
  ASSERT_NO_FATAL_FAILURE(StartPeer());
  ASSERT_NO_FATAL_FAILURE(StartIo());
  ASSERT_OK(SetMigrationState(*peer_.client, MigrationState::kResuming));
  ASSERT_OK(testing::CopyMigrationWithOneBitFlipped(*client_, *peer_.client));
  EXPECT_THAT(SetMigrationState(*peer_.client, MigrationState::kStop),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(SetMigrationState(*client_, MigrationState::kRunning));
  ASSERT_NO_FATAL_FAILURE(ExpectEveryCommandCompletedOnce());
  ASSERT_NO_FATAL_FAILURE(ExpectDataReadsBack());
}

TEST_F(NvmeMigrationTest, FailedMigrationResumesOnTheSource) {
  devices::GpioDevice gpio;  // a destination of another type
  ASSERT_NO_FATAL_FAILURE(StartPeer(&gpio));
  ASSERT_NO_FATAL_FAILURE(StartIo());
  absl::StatusOr<MigrationReport> report = Migrate(*client_, *peer_.client, MigrationOptions());
  EXPECT_THAT(report.status(), testing::StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(MigrationState source_state, GetMigrationState(*client_));
  EXPECT_EQ(source_state, MigrationState::kRunning);
  ASSERT_NO_FATAL_FAILURE(ExpectEveryCommandCompletedOnce());
  ASSERT_NO_FATAL_FAILURE(ExpectDataReadsBack());
  peer_.client.reset();
  peer_.server->Stop();
}

// A state that names a queue out of range is refused, and nothing of it is
// applied: the controller stays as it was.
TEST_F(NvmeMigrationTest, LoadStateRefusesOutOfRangeQueues) {
  NvmeControllerState state;
  state.set_page_size(4096);
  state.set_enabled(true);
  state.mutable_admin()->set_queues_allocated(kMaxIoQueues);
  NvmeCompletionQueueState* cq = state.add_cqs();
  cq->set_id(1);
  cq->set_size(16);
  cq->set_head(16);  // == size
  std::string bytes;
  ASSERT_TRUE(state.SerializeToString(&bytes));
  EXPECT_THAT(controller_->LoadState({bytes}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  cq->set_head(0);
  NvmeSubmissionQueueState* sq = state.add_sqs();
  sq->set_id(1);
  sq->set_size(16);
  sq->set_cq_id(2);  // no such CQ
  ASSERT_TRUE(state.SerializeToString(&bytes));
  EXPECT_THAT(controller_->LoadState({bytes}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(controller_->LoadState({"not a state"}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  // Untouched: the driver still enables it and runs I/O.
  EnableWithQueues(1);
  const uint64_t buffer = driver_->Allocate(4096);
  ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(1, driver_->ReadCommand(1, 0, 8, buffer, 4096)));
  EXPECT_EQ(done.status, kSuccess);
}

}  // namespace
}  // namespace vfu::nvme
