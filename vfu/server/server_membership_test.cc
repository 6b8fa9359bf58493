// Devices added, removed and reset while the server runs; statistics and
// events the runtime records on the way.
#include <poll.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testing/memory_device.h"
#include "testing/status_matchers.h"
#include "vfu/client/client.h"
#include "vfu/server/server.h"
#include "vfu/server/server_test_util.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_access.h"

namespace vfu::testing {
namespace {

using ::testing::ElementsAre;

class ServerMembershipTest : public ServerFixture {
 protected:
  // Every event published so far.
  std::vector<ServerEvent> Events() {
    return server_->events().WaitAfter(0, absl::Now()).events;
  }
  // Waits (bounded) until an event of `kind` for `device` is published.
  ServerEvent AwaitEvent(ServerEvent::Kind kind, const std::string& device) {
    uint64_t after = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      EventBus::Batch batch = server_->events().WaitAfter(after, deadline);
      for (const ServerEvent& e : batch.events) {
        after = e.sequence;
        if (e.kind == kind && e.device == device) return e;
      }
    }
    ADD_FAILURE() << "no event of kind " << static_cast<int>(kind) << " for " << device;
    return {};
  }
};

TEST_F(ServerMembershipTest, AddsAndRemovesDevicesWhileAnotherClientStaysAttached) {
  StartServer();
  std::unique_ptr<Client> first = Connect(0);
  ASSERT_NE(first, nullptr);
  ASSERT_OK(first->RegionWrite(0, 0, std::vector<uint8_t>{1, 2, 3, 4}));

  MemoryDevice added(4096);
  const std::string path = dir_.File("added.sock");
  ASSERT_OK(server_->AddDevice(path, added, {.name = "added"}));
  ASSERT_NE(server_->FindDevice("added"), nullptr);
  ASSERT_NE(server_->FindDevice(path), nullptr);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> second, Client::Connect(path, PatientClient()));
    ASSERT_OK(second->RegionWrite(0, 8, std::vector<uint8_t>{9}));
    AwaitEvent(ServerEvent::Kind::kClientAttached, "added");
    // Removing detaches the client first; its connection ends.
    ASSERT_OK(server_->RemoveDevice("added"));
    EXPECT_EQ(server_->FindDevice("added"), nullptr);
    EXPECT_FALSE(second->RegionRead(0, 8, 1).ok());
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket left behind";
  EXPECT_EQ(added.resets(), 0);
  ServerEvent detached = AwaitEvent(ServerEvent::Kind::kClientDetached, "added");
  EXPECT_EQ(detached.reason, "server shutting down");

  // The first client never noticed.
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, first->RegionRead(0, 0, 4));
  EXPECT_THAT(bytes, ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(server_->devices().size(), 1u);

  std::vector<ServerEvent::Kind> kinds;
  for (const ServerEvent& e : Events()) {
    if (e.device == "added") kinds.push_back(e.kind);
  }
  EXPECT_THAT(kinds, ElementsAre(ServerEvent::Kind::kDeviceAdded,
                                 ServerEvent::Kind::kClientAttached,
                                 ServerEvent::Kind::kClientDetached,
                                 ServerEvent::Kind::kDeviceRemoved));
}

TEST_F(ServerMembershipTest, RejectsDuplicatesAndUnknownDevices) {
  StartServer();
  MemoryDevice other;
  EXPECT_EQ(server_->AddDevice(Path(0), other).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(server_->AddDevice(dir_.File("x.sock"), other, {.name = Path(0)}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(server_->RemoveDevice("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_->ResetDevice("nope", absl::Now() + absl::Seconds(5)).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ServerMembershipTest, AddedSocketHasTheAskedMode) {
  StartServer();
  MemoryDevice added;
  const std::string path = dir_.File("mode.sock");
  ASSERT_OK(server_->AddDevice(path, added, {.socket_mode = 0640}));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(ServerMembershipTest, ResetRunsInOrderWithTheClientsCommands) {
  StartServer();
  std::unique_ptr<Client> client = Connect(0);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(client->RegionWrite(0, 0, std::vector<uint8_t>{7}));
  ASSERT_OK(server_->ResetDevice(Path(0), absl::Now() + absl::Seconds(60)));
  EXPECT_EQ(devices_[0]->resets(), 1);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, client->RegionRead(0, 0, 1));
  EXPECT_THAT(bytes, ElementsAre(0));
  AwaitEvent(ServerEvent::Kind::kDeviceReset, Path(0));
}

TEST_F(ServerMembershipTest, ResetWithoutAClient) {
  StartServer();
  ASSERT_OK(server_->ResetDevice(Path(0), absl::Now() + absl::Seconds(60)));
  EXPECT_EQ(devices_[0]->resets(), 1);
  // Clients are accepted again afterwards.
  std::unique_ptr<Client> client = Connect(0);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(client->RegionWrite(0, 0, std::vector<uint8_t>{1}));
}

TEST_F(ServerMembershipTest, StatisticsCountAKnownSequenceExactly) {
  StartServer();
  std::unique_ptr<Client> client = Connect(0);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_OK(client->RegionRead(0, 0, 4).status());
  ASSERT_OK(client->RegionWrite(0, 0, std::vector<uint8_t>{1, 2}));
  // Past the end of BAR0: EINVAL.
  EXPECT_FALSE(client->RegionRead(0, 64 * 1024, 4).ok());
  const DeviceStatistics::Snapshot s = server_->FindDevice(Path(0))->statistics().snapshot();
  if (!kStatisticsEnabled) GTEST_SKIP() << "statistics compiled out";
  auto count_of = [&](wire::Command c) -> uint64_t {
    for (const auto& cs : s.commands) {
      if (cs.command == static_cast<uint32_t>(c)) return cs.count;
    }
    return 0;
  };
  EXPECT_EQ(count_of(wire::Command::kVersion), 1u);
  EXPECT_EQ(count_of(wire::Command::kRegionRead), 4u);
  EXPECT_EQ(count_of(wire::Command::kRegionWrite), 1u);
  EXPECT_EQ(s.region_bytes_read, 12u);
  EXPECT_EQ(s.region_bytes_written, 2u);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].errno_value, static_cast<uint32_t>(EINVAL));
  EXPECT_EQ(s.errors[0].count, 1u);
  EXPECT_EQ(s.clients_connected, 1u);
  EXPECT_EQ(s.clients_served, 1u);
  EXPECT_EQ(s.clients_refused, 0u);
}

TEST_F(ServerMembershipTest, ConcurrentAddsAndRemovesAreSafe) {
  StartServer();
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<MemoryDevice>> devices;
  for (int i = 0; i < kThreads; ++i) devices.push_back(std::make_unique<MemoryDevice>());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string path = dir_.File("c" + std::to_string(t) + ".sock");
      for (int round = 0; round < 5; ++round) {
        EXPECT_OK(server_->AddDevice(path, *devices[t]));
        EXPECT_NE(server_->FindDevice(path), nullptr);
        EXPECT_OK(server_->RemoveDevice(path));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(server_->devices().size(), 1u);
}

}  // namespace
}  // namespace vfu::testing

namespace vfu::testing {
namespace {

// A client that sends reads and never reads the replies: the server stops
// running its commands (replies backed up), then stops reading them
// (commands queued); each counts as one back-pressure episode.
TEST_F(ServerMembershipTest, BackPressureEpisodesAreCounted) {
  ServerOptions options;
  options.runtime.outbound_high_water = 4096;
  options.runtime.outbound_low_water = 1024;
  options.runtime.max_queued_commands = 16;
  StartServer(options);
  UniqueFd fd = RawNegotiatedClient(Path(0));
  ASSERT_TRUE(fd);
  std::vector<uint8_t> read = wire::StartMessage();
  wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = 4}, read);
  wire::FinishMessage(wire::CommandHeader(2, wire::Command::kRegionRead), read);
  const DeviceStatistics& stats = server_->FindDevice(Path(0))->statistics();
  if (!kStatisticsEnabled) GTEST_SKIP() << "statistics compiled out";
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  DeviceStatistics::Snapshot s;
  size_t sent = 0;  // of the current message: a partial send is finished first
  while (absl::Now() < deadline) {
    s = stats.snapshot();
    if (s.backpressure_reply_episodes > 0 && s.backpressure_command_episodes > 0) break;
    // A full socket just means the server stopped reading: look again.
    struct pollfd p = {fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, 10) != 1) continue;
    const ssize_t n = ::send(fd.get(), read.data() + sent, read.size() - sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent = (sent + static_cast<size_t>(n)) % read.size();
  }
  EXPECT_GE(s.backpressure_reply_episodes, 1u);
  EXPECT_GE(s.backpressure_command_episodes, 1u);
}

// Device DMA by path: through a mapping the client shared with an fd, and
// as DMA_READ/DMA_WRITE messages for memory it mapped without one.
TEST_F(ServerMembershipTest, DmaIsCountedByPath) {
  StartServer();
  std::unique_ptr<Client> client = Connect(0);
  ASSERT_NE(client, nullptr);
  constexpr uint64_t kMapped = 0x100000, kMessages = 0x200000, kSize = 4096;
  UniqueFd memfd(::memfd_create("client-page", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(memfd.get(), kSize), 0);
  ASSERT_OK(client->DmaMap(kMapped, kSize, wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                           UniqueFd(::dup(memfd.get()))));
  std::vector<uint8_t> ram(kSize);
  ASSERT_OK(client->DmaMapMemory(kMessages, absl::MakeSpan(ram)));
  ASSERT_OK(client->StartServingThread());
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);
  std::vector<uint8_t> buffer(100);
  ASSERT_OK(context->DmaRead(kMapped, absl::MakeSpan(buffer)));
  ASSERT_OK(context->DmaWrite(kMapped, std::vector<uint8_t>(30, 1)));
  ASSERT_OK(context->DmaRead(kMessages, absl::MakeSpan(buffer)));
  ASSERT_OK(context->DmaWrite(kMessages, std::vector<uint8_t>(50, 2)));
  client->StopServingThread();
  const DeviceStatistics::Snapshot s = server_->FindDevice(Path(0))->statistics().snapshot();
  if (!kStatisticsEnabled) GTEST_SKIP() << "statistics compiled out";
  EXPECT_EQ(s.dma_mapped_bytes_read, 100u);
  EXPECT_EQ(s.dma_mapped_bytes_written, 30u);
  EXPECT_EQ(s.dma_message_bytes_read, 100u);
  EXPECT_EQ(s.dma_message_bytes_written, 50u);
  EXPECT_EQ(s.dma_messages, 2u);
  EXPECT_EQ(ram[0], 2);
}

}  // namespace
}  // namespace vfu::testing
