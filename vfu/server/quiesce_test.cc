// The threaded runtime and a device that quiesces later: the command waits
// without holding a worker, the client's later commands wait behind it in
// order, a failed quiesce gets an error reply, and a client that leaves
// meanwhile does not hang the server.
#include <poll.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/engine/testing_migrating_device.h"
#include "vfu/server/server.h"
#include "vfu/server/server_test_util.h"
#include "vfu/server/unix_listener.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

using ::testing::Contains;
using testing::MigratingDevice;
using QuiesceMode = MigratingDevice::QuiesceMode;
using wire::Command;

class QuiesceServerTest : public ::testing::Test {
 protected:
  void Start(RuntimeOptions runtime = {}) {
    ASSERT_OK_AND_ASSIGN(server_, Server::Create(ServerOptions{.runtime = runtime}));
    ASSERT_OK(server_->AddDevice(dir_.File("dev.sock"), device_));
    ASSERT_OK(server_->Start());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // A negotiated raw client with fd-less memory mapped at [0, 64 KiB).
  UniqueFd Client() {
    UniqueFd fd = testing::RawNegotiatedClient(dir_.File("dev.sock"));
    std::vector<InboundMessage> version = testing::ReadMessages(fd.get(), 1);
    EXPECT_EQ(version.size(), 1u);
    testing::MapFdLessMemory(fd.get());
    return fd;
  }

  static std::vector<uint8_t> Command(uint16_t id, wire::Command cmd,
                                      const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> m = wire::StartMessage();
    m.insert(m.end(), payload.begin(), payload.end());
    wire::FinishMessage(wire::CommandHeader(id, cmd), m);
    return m;
  }
  static std::vector<uint8_t> Unmap(uint16_t id) {
    std::vector<uint8_t> p;
    wire::EncodeDmaUnmapRequest({.addr = 0, .size = 0x10000}, p);
    return Command(id, Command::kDmaUnmap, p);
  }
  static std::vector<uint8_t> RegionWrite(uint16_t id, uint8_t value) {
    std::vector<uint8_t> p;
    wire::EncodeRegionWriteRequest({.offset = 8, .region = 0, .data = {&value, 1}}, p);
    return Command(id, Command::kRegionWrite, p);
  }
  static std::vector<uint8_t> RegionRead(uint16_t id) {
    std::vector<uint8_t> p;
    wire::EncodeRegionReadRequest({.offset = 8, .region = 0, .count = 1}, p);
    return Command(id, Command::kRegionRead, p);
  }

  // True when nothing arrives on `fd` within `window` (a bounded negative
  // check, not a synchronization).
  static bool Silent(int fd, absl::Duration window) {
    struct pollfd p = {fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(window))) == 0;
  }

  // Polls `condition` until it holds or 30 s pass.
  template <typename F>
  static bool Eventually(F condition) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));  // polling a condition, with a deadline
    }
    return true;
  }

  testing::ScopedTempDir dir_;
  MigratingDevice device_;
  std::unique_ptr<Server> server_;
};

TEST_F(QuiesceServerTest, LaterCommandsWaitInOrderForADeferredQuiesce) {
  Start();
  UniqueFd fd = Client();
  device_.ClearLog();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  testing::SendAll(fd.get(), Unmap(10));
  device_.AwaitHeldQuiesce();
  // The client keeps sending while the device is quiescing.
  testing::SendAll(fd.get(), RegionWrite(11, 0x5a));
  testing::SendAll(fd.get(), RegionRead(12));
  EXPECT_TRUE(Silent(fd.get(), absl::Milliseconds(200))) << "no reply before the device answers";
  EXPECT_THAT(device_.events(), ::testing::ElementsAre("quiesce DMA unmap"))
      << "the write waits behind the unmap";

  std::thread device_thread([this] { EXPECT_TRUE(device_.CompleteQuiesce(absl::OkStatus())); });
  std::vector<InboundMessage> replies = testing::ReadMessages(fd.get(), 3);
  device_thread.join();
  ASSERT_EQ(replies.size(), 3u);
  for (size_t i = 0; i < replies.size(); ++i) {
    EXPECT_EQ(replies[i].header.msg_id, 10 + i) << "replies in command order";
    EXPECT_FALSE(replies[i].header.is_error()) << replies[i].header.error;
  }
  EXPECT_EQ(replies[2].payload().back(), 0x5a) << "the read saw the write";
  EXPECT_THAT(device_.events(), ::testing::ElementsAre("quiesce DMA unmap", "unmap (quiesced)",
                                                       "unquiesce", "write"));
}

TEST_F(QuiesceServerTest, FailedQuiesceGetsAnErrorReplyAndTheClientGoesOn) {
  Start();
  UniqueFd fd = Client();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  testing::SendAll(fd.get(), Unmap(10));
  testing::SendAll(fd.get(), RegionRead(11));
  device_.AwaitHeldQuiesce();
  std::thread device_thread(
      [this] { EXPECT_TRUE(device_.CompleteQuiesce(wire::WireError(EAGAIN, "jobs in flight"))); });
  std::vector<InboundMessage> replies = testing::ReadMessages(fd.get(), 2);
  device_thread.join();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].header.msg_id, 10);
  EXPECT_TRUE(replies[0].header.is_error());
  EXPECT_EQ(replies[0].header.error, static_cast<uint32_t>(EAGAIN));
  EXPECT_EQ(replies[1].header.msg_id, 11);
  EXPECT_FALSE(replies[1].header.is_error());
}

TEST_F(QuiesceServerTest, DisconnectWhileAQuiesceIsPendingDoesNotHangTheServer) {
  Start(RuntimeOptions{.quiesce_wait_after_disconnect = absl::Milliseconds(100)});
  UniqueFd fd = Client();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  testing::SendAll(fd.get(), Unmap(10));
  testing::SendAll(fd.get(), RegionWrite(11, 0x77));
  device_.AwaitHeldQuiesce();
  fd.reset();
  // The detach gives up on the parked unmap (still running the write
  // behind it) and then on its own quiesce.
  ASSERT_TRUE(Eventually([this] {
    std::vector<std::string> events = device_.events();
    return std::find(events.begin(), events.end(), "detach") != events.end();
  }));
  EXPECT_THAT(device_.events(), Contains("write")) << "commands sent before the hang-up still run";
  // The next client is served.
  device_.set_quiesce_mode(QuiesceMode::kImmediate);
  UniqueFd next = Client();
  testing::SendAll(next.get(), RegionRead(20));
  std::vector<InboundMessage> replies = testing::ReadMessages(next.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].header.is_error());
  EXPECT_EQ(replies[0].payload().back(), 0x77);
}

TEST_F(QuiesceServerTest, DisconnectWhileAQuiesceIsPendingFinishesWhenTheDeviceAnswers) {
  Start();
  UniqueFd fd = Client();
  device_.ClearLog();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  testing::SendAll(fd.get(), Unmap(10));
  device_.AwaitHeldQuiesce();
  fd.reset();
  // The detach now waits (bounded) for the parked command's answer; the
  // answer lets it go on, and the detach's own quiesce is held next.
  ASSERT_TRUE(device_.CompleteQuiesce(absl::OkStatus()));
  device_.AwaitHeldQuiesce();
  ASSERT_TRUE(device_.CompleteQuiesce(absl::OkStatus()));
  ASSERT_TRUE(Eventually([this] {
    std::vector<std::string> events = device_.events();
    return std::find(events.begin(), events.end(), "detach (quiesced)") != events.end();
  }));
  EXPECT_THAT(device_.events(),
              ::testing::ElementsAre("quiesce DMA unmap", "unmap (quiesced)", "unquiesce",
                                     "quiesce lost connection", "detach (quiesced)",
                                     "unquiesce"));
}

TEST_F(QuiesceServerTest, StopWithAQuiesceThatNeverEndsReturns) {
  Start(RuntimeOptions{.quiesce_wait_after_disconnect = absl::Milliseconds(100)});
  UniqueFd fd = Client();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  testing::SendAll(fd.get(), Unmap(10));
  device_.AwaitHeldQuiesce();
  const absl::Time start = absl::Now();
  server_->Stop();
  server_.reset();
  // Two bounded waits (the parked unmap, the detach's own quiesce), plus
  // generous slack for a loaded machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  std::vector<std::string> events = device_.events();
  EXPECT_NE(std::find(events.begin(), events.end(), "detach"), events.end());
}

// PROTOCOL.md section 8: a departing client leaves the device's migration
// state as it was, for the next client to see.
TEST_F(QuiesceServerTest, MigrationStateOutlivesTheClient) {
  Start();
  auto feature = [](uint16_t id, uint32_t ops, std::optional<uint32_t> state) {
    std::vector<uint8_t> p;
    wire::DeviceFeatureRequest request{
        .argsz = 16, .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kMigDeviceState, ops)};
    if (state) request.data = wire::FeatureMigState{.device_state = *state};
    wire::EncodeDeviceFeatureRequest(request, p);
    return Command(id, Command::kDeviceFeature, p);
  };
  {
    UniqueFd fd = Client();
    testing::SendAll(fd.get(), feature(10, wire::kDeviceFeatureSet, 1));
    std::vector<InboundMessage> replies = testing::ReadMessages(fd.get(), 1);
    ASSERT_EQ(replies.size(), 1u);
    ASSERT_FALSE(replies[0].header.is_error());
  }
  // The first client's detach may still run: the next waits in the backlog.
  UniqueFd next = testing::RawNegotiatedClient(dir_.File("dev.sock"));
  ASSERT_EQ(testing::ReadMessages(next.get(), 1).size(), 1u);
  testing::SendAll(next.get(), feature(20, wire::kDeviceFeatureGet, std::nullopt));
  std::vector<InboundMessage> replies = testing::ReadMessages(next.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_FALSE(replies[0].header.is_error());
  absl::StatusOr<wire::DeviceFeatureGetReply> get =
      wire::DecodeDeviceFeatureGetReply(replies[0].payload(), 0);
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(std::get<wire::FeatureMigState>(get->data).device_state, 1u) << "still STOP";
  EXPECT_THAT(device_.arcs(), ::testing::ElementsAre(MigratingDevice::Arc{
                                  MigrationState::kRunning, MigrationState::kStop}));
}

}  // namespace
}  // namespace vfu
