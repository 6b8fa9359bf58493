// A DMA engine job running while its device migrates between two servers
// in one process, our client as the VMM on both, client memory shared by
// both: the job resumes on the destination at the byte the source reached,
// every byte arrives and none is written twice (the dirty logs of the two
// servers split the destination pages between them, without overlap). A
// corrupted stream is refused, and a failed migration resumes the job on
// the source.
#include <bit>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices/dma_engine/dma_engine_registers.h"
#include "devices/dma_engine/dma_engine_test_fixture.h"
#include "devices/gpio/gpio_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/corrupted_migration.h"
#include "testing/status_matchers.h"
#include "vfu/client/migration.h"

namespace vfu::devices {
namespace {

using ::testing::HasSubstr;
using dma_engine::kStatusBusy;
using dma_engine::kStatusDone;

constexpr uint64_t kSourceIova = 0x10000000;
constexpr uint64_t kDestinationIova = 0x40000000;
// Long enough through DMA messages (the source side is fd-less) that the
// job is still running when the migration stops it.
constexpr uint32_t kJobBytes = 32u << 20;
constexpr uint64_t kPage = 4096;
constexpr uint32_t kChannel = 1;

// A second server with its own DMA engine and a client on it: the
// destination.
struct Peer {
  testing::ScopedTempDir dir;
  DmaEngineDevice device;
  std::unique_ptr<Server> server;
  std::unique_ptr<Client> client;
};

class DmaEngineMigrationTest : public DmaEngineTest {
 protected:
  void SetUp() override {
    DmaEngineTest::SetUp();
    source_memory_ = NewBuffer(kJobBytes);
    FillPattern(source_memory_, 7);
    ASSERT_OK(client_->StartServingThread());
    ASSERT_NO_FATAL_FAILURE(MapMemory(*client_));
  }
  void TearDown() override {
    if (peer_.client) peer_.client.reset();
    if (peer_.server) peer_.server->Stop();
    DmaEngineTest::TearDown();
  }

  // The same client memory on either server: the source range fd-less
  // (DMA messages), the destination range a shared memfd.
  void MapMemory(Client& client) {
    ASSERT_OK(client.DmaMapMemory(kSourceIova, source_memory_));
    ASSERT_OK(client.DmaMap(kDestinationIova, destination_memory_.size(), kReadWrite,
                            destination_memory_.Share()));
  }

  void StartPeer(Device& device) {
    ServerOptions options;
    options.runtime.dma_timeout = kDmaTimeout;
    ASSERT_OK_AND_ASSIGN(peer_.server, Server::Create(std::move(options)));
    ASSERT_OK(peer_.server->AddDevice(peer_.dir.File("dest.sock"), device));
    ASSERT_OK(peer_.server->Start());
    ASSERT_OK_AND_ASSIGN(peer_.client,
                         Client::Connect(peer_.dir.File("dest.sock"), PatientClientOptions()));
    ASSERT_OK(peer_.client->StartServingThread());
  }

  // Starts the job on the source and waits until it has copied something.
  void StartJob() {
    Program(kChannel, kSourceIova, kDestinationIova, kJobBytes);
    Ring(kChannel);
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
    while (Progress(kChannel) == 0 && absl::Now() < deadline) {
    }
    ASSERT_GT(Progress(kChannel), 0u);
  }

  static uint64_t CountBits(absl::Span<const uint8_t> bitmap) {
    uint64_t n = 0;
    for (uint8_t b : bitmap) n += std::popcount(b);
    return n;
  }

  absl::Span<uint8_t> source_memory_;
  SharedMemory destination_memory_{kJobBytes};
  GpioDevice gpio_;  // a destination of another type; outlives peer_'s server
  Peer peer_;
};

TEST_F(DmaEngineMigrationTest, JobInFlightResumesOnTheDestinationWithNoByteLostOrRepeated) {
  ASSERT_NO_FATAL_FAILURE(StartPeer(peer_.device));
  ASSERT_NO_FATAL_FAILURE(MapMemory(*peer_.client));
  const wire::DmaLoggingRange range{.iova = kDestinationIova, .length = kJobBytes};
  ASSERT_OK(StartDirtyLogging(*peer_.client, kPage, {range}));
  UniqueFd done_irq = NewEventfd();
  {
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(done_irq.get()));
    ASSERT_OK(peer_.client->SetIrqEventfds(kMsixIrq, kChannel, std::move(fds)));
  }

  ASSERT_NO_FATAL_FAILURE(StartJob());
  MigrationOptions options;
  options.max_precopy_rounds = 2;
  options.dirty_log_ranges = {range};
  std::vector<uint8_t> source_dirty(kJobBytes / kPage / 8, 0);
  options.on_dirty_pages = [&](const wire::DmaLoggingRange&, absl::Span<const uint8_t> bitmap) {
    ASSERT_EQ(bitmap.size(), source_dirty.size());
    for (size_t i = 0; i < bitmap.size(); ++i) source_dirty[i] |= bitmap[i];
  };
  ASSERT_OK_AND_ASSIGN(MigrationReport report, Migrate(*client_, *peer_.client, options));
  EXPECT_GT(report.device_state_bytes, 0u);
  EXPECT_GT(report.stream_bytes, report.device_state_bytes);

  // The source stopped mid-job (region reads are allowed in STOP).
  ASSERT_OK_AND_ASSIGN(MigrationState source_state, GetMigrationState(*client_));
  EXPECT_EQ(source_state, MigrationState::kStop);
  const uint32_t stopped_at = Progress(kChannel);
  EXPECT_EQ(Status(kChannel), kStatusBusy);
  EXPECT_GT(stopped_at, 0u);
  EXPECT_LT(stopped_at, kJobBytes) << "the job ended before the migration stopped it";

  // The destination finishes it, with its interrupt.
  ASSERT_TRUE(ReadEventfd(done_irq, kWaitTimeoutMs).has_value());
  auto read_channel = [&](uint64_t reg) {
    absl::StatusOr<std::vector<uint8_t>> bytes =
        peer_.client->RegionRead(kBar0Region, dma_engine::ChannelRegister(kChannel, reg), 4);
    EXPECT_OK(bytes);
    uint32_t value = 0;
    if (bytes.ok() && bytes->size() == 4) std::memcpy(&value, bytes->data(), 4);
    return value;
  };
  EXPECT_EQ(read_channel(dma_engine::kRegStatus), kStatusDone);
  EXPECT_EQ(read_channel(dma_engine::kRegProgress), kJobBytes);
  EXPECT_EQ(FirstPatternMismatch(destination_memory_.bytes(), 7), -1);

  // The source wrote only below the byte it stopped at, the destination
  // only from there on, every page of it once (the logs cover what each
  // device wrote while logging; the source's began with the migration).
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> destination_dirty,
                       ReportDirtyPages(*peer_.client, kDestinationIova, kJobBytes, kPage));
  ASSERT_EQ(stopped_at % kPage, 0u);
  const uint64_t first_resumed_page = stopped_at / kPage;
  for (uint64_t page = 0; page < kJobBytes / kPage; ++page) {
    const bool by_source = (source_dirty[page / 8] >> (page % 8)) & 1;
    const bool by_destination = (destination_dirty[page / 8] >> (page % 8)) & 1;
    if (page < first_resumed_page) {
      ASSERT_FALSE(by_destination) << "the destination rewrote page " << page;
    } else {
      ASSERT_FALSE(by_source) << "the source wrote page " << page << " after it stopped at page "
                              << first_resumed_page;
      ASSERT_TRUE(by_destination) << "the destination skipped page " << page;
    }
  }
  EXPECT_EQ(report.dirty_pages, CountBits(source_dirty));
}

// A stream damaged in transit is refused at RESUMING -> STOP; the source,
// put back to RUNNING, finishes the job itself.
TEST_F(DmaEngineMigrationTest, CorruptedStreamIsRefusedAndTheSourceResumes) {
  ASSERT_NO_FATAL_FAILURE(StartPeer(peer_.device));
  ASSERT_NO_FATAL_FAILURE(StartJob());
  ASSERT_OK(SetMigrationState(*peer_.client, MigrationState::kResuming));
  ASSERT_OK(testing::CopyMigrationWithOneBitFlipped(*client_, *peer_.client));
  const absl::Status refused = SetMigrationState(*peer_.client, MigrationState::kStop);
  EXPECT_THAT(refused, testing::StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(MigrationState destination_state, GetMigrationState(*peer_.client));
  EXPECT_EQ(destination_state, MigrationState::kResuming);

  ASSERT_OK(SetMigrationState(*client_, MigrationState::kRunning));
  EXPECT_EQ(WaitWhileBusy(kChannel), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(destination_memory_.bytes(), 7), -1);
}

// Migrating to a device of another type fails at the destination's
// RESUMING -> STOP with its error; Migrate() puts the source back to
// RUNNING and the job completes there.
TEST_F(DmaEngineMigrationTest, FailedMigrationResumesOnTheSource) {
  ASSERT_NO_FATAL_FAILURE(StartPeer(gpio_));
  ASSERT_NO_FATAL_FAILURE(StartJob());
  absl::StatusOr<MigrationReport> report = Migrate(*client_, *peer_.client, MigrationOptions());
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status(), testing::StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(MigrationState source_state, GetMigrationState(*client_));
  EXPECT_EQ(source_state, MigrationState::kRunning);
  EXPECT_EQ(WaitWhileBusy(kChannel), kStatusDone);
  EXPECT_EQ(FirstPatternMismatch(destination_memory_.bytes(), 7), -1);
  // The destination was reset, not left half-resumed.
  ASSERT_OK_AND_ASSIGN(MigrationState destination_state, GetMigrationState(*peer_.client));
  EXPECT_EQ(destination_state, MigrationState::kRunning);
}

}  // namespace
}  // namespace vfu::devices
