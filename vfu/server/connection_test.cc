// Connection: nothing a client sent is lost when it closes, a slow client
// that reads is not dropped, and a request whose caller gave up is not sent.
#include "vfu/server/connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/log.h"
#include "vfu/client/client.h"
#include "vfu/server/server_test_util.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::MapFdLessMemory;
using ::vfu::testing::RawNegotiatedClient;
using ::vfu::testing::ReadMessages;
using ::vfu::testing::SendAll;
using ::vfu::testing::StatusIs;

class ConnectionTest : public testing::ServerFixture {};

std::vector<uint8_t> RegionWriteCommand(uint16_t id, uint64_t offset, uint8_t value,
                                        bool posted) {
  std::vector<uint8_t> m = wire::StartMessage();
  const std::vector<uint8_t> data = {value};
  wire::EncodeRegionWriteRequest({.offset = offset, .region = 0, .data = data}, m);
  wire::Header header = wire::CommandHeader(id, wire::Command::kRegionWrite);
  if (posted) header.flags |= wire::kFlagNoReply;
  wire::FinishMessage(header, m);
  return m;
}

// A posted write sent just before close() still runs: 1000 sessions each
// read what the previous one wrote, then post a new value and close.
TEST_F(ConnectionTest, PostedWriteBeforeCloseIsNeverLost) {
  StartServer();
  uint8_t expected = 0;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(Path(0), PatientClient());
    ASSERT_THAT(client, IsOk()) << "session " << i;
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, (*client)->RegionRead(0, 0, 1));
    ASSERT_EQ(bytes[0], expected) << "session " << i;
    expected = static_cast<uint8_t>(i * 7 + 1);
    ASSERT_OK((*client)->RegionWrite(0, 0, std::vector<uint8_t>{expected}, /*posted=*/true));
  }
}

// A client whose commands pile up behind a slow device (so the server
// stops reading it: max_queued_commands) fills its socket with posted
// writes and hangs up: every write it sent runs, including those still in
// the socket when the server noticed the hang-up.
TEST_F(ConnectionTest, CommandsUnreadAtHangUpStillRun) {
  ServerOptions options;
  options.runtime.max_queued_commands = 4;
  StartServer(options);
  absl::Notification hook_entered, release;
  devices_[0]->set_write_hook([&](uint32_t, uint64_t offset) {
    if (offset == 0xffff) {
      hook_entered.Notify();
      release.WaitForNotification();
    }
  });
  absl::Notification hung_up;
  std::atomic<int> disconnects{0};
  ScopedLogCapture capture([&](LogLevel, std::string_view text) {
    // The next client's disconnect at the end logs the same line.
    if (text.find("client disconnected") != std::string_view::npos &&
        disconnects.fetch_add(1) == 0) {
      hung_up.Notify();
    }
  });
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  // 1. A write the device holds on to.
  SendAll(raw.get(), RegionWriteCommand(9, 0xffff, 1, /*posted=*/true));
  hook_entered.WaitForNotification();
  // 2. Posted writes until the socket is full: the server stopped reading.
  constexpr int kMaxWrites = 60000;
  std::vector<uint8_t> all;
  size_t message_size = 0;
  for (int i = 0; i < kMaxWrites; ++i) {
    std::vector<uint8_t> m = RegionWriteCommand(static_cast<uint16_t>(i + 10),
                                                static_cast<uint64_t>(i),
                                                static_cast<uint8_t>(i * 3 + 1), /*posted=*/true);
    message_size = m.size();
    all.insert(all.end(), m.begin(), m.end());
  }
  size_t sent = 0;
  while (sent < all.size()) {
    const ssize_t n = ::send(raw.get(), all.data() + sent, all.size() - sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    sent += static_cast<size_t>(n);
  }
  ASSERT_LT(sent, all.size()) << "the server kept reading";
  const int complete = static_cast<int>(sent / message_size);
  // 3. Hang up; let the device go on once the server has noticed.
  raw.reset();
  ASSERT_TRUE(hung_up.WaitForNotificationWithTimeout(absl::Seconds(30)));
  release.Notify();

  std::unique_ptr<Client> next = Connect();
  ASSERT_NE(next, nullptr);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, next->RegionRead(0, 0, complete));
  for (int i = 0; i < complete; ++i) {
    ASSERT_EQ(bytes[i], static_cast<uint8_t>(i * 3 + 1)) << "write " << i << " of " << complete;
  }
}

// A client that reads its replies slowly, but steadily, is kept however
// long back-pressure lasts: the stall limit measures time without progress.
TEST_F(ConnectionTest, SlowButReadingClientIsNotDropped) {
  ServerOptions options;
  options.runtime.max_write_stall = absl::Seconds(2);
  options.runtime.outbound_high_water = 64 * 1024;
  options.runtime.outbound_low_water = 16 * 1024;
  StartServer(options);
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  // 200 replies of 64 KiB (12.8 MiB), read at about 1.3 MiB/s: back-pressure
  // lasts about ten seconds, five times max_write_stall, and a reader
  // descheduled for a second on a loaded machine is still not stalled.
  constexpr int kReads = 200;
  constexpr uint32_t kCount = 64 * 1024;
  std::vector<uint8_t> commands;
  for (int i = 0; i < kReads; ++i) {
    std::vector<uint8_t> m = wire::StartMessage();
    wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = kCount}, m);
    wire::FinishMessage(wire::CommandHeader(static_cast<uint16_t>(i + 10),
                                            wire::Command::kRegionRead),
                        m);
    commands.insert(commands.end(), m.begin(), m.end());
  }
  SendAll(raw.get(), commands);
  const size_t reply_size = wire::kHeaderSize + 16 + kCount;
  const size_t expected = kReads * reply_size;
  size_t received = 0;
  std::vector<uint8_t> buffer(64 * 1024);
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (received < expected && absl::Now() < deadline) {
    struct pollfd p = {raw.get(), POLLIN, 0};
    ASSERT_GE(::poll(&p, 1, 1000), 0);
    const ssize_t n = ::recv(raw.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    ASSERT_NE(n, 0) << "dropped after " << received << " of " << expected << " bytes";
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      continue;
    }
    received += static_cast<size_t>(n);
    // The slowness under test: this client takes 64 KiB per 50 ms.
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(received, expected);
}

// A DMA_READ whose caller timed out before the IO thread took it from the
// outgoing queue never reaches the client.
TEST_F(ConnectionTest, RequestWhoseCallerGaveUpIsNotSent) {
  ServerOptions options;
  options.runtime.dma_timeout = absl::Milliseconds(200);
  StartServer(options);
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  MapFdLessMemory(raw.get());
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);

  // Hold the IO thread so the request stays in the outgoing queue.
  absl::Notification io_thread_held, release;
  server_->reactor().Post([&] {
    io_thread_held.Notify();
    release.WaitForNotification();
  });
  io_thread_held.WaitForNotification();
  std::vector<uint8_t> out(8);
  EXPECT_THAT(context->DmaRead(0x1000, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  release.Notify();

  // The request was queued before this command's reply; had it been sent,
  // it would arrive first.
  std::vector<uint8_t> info = wire::StartMessage();
  wire::EncodeDeviceGetInfoRequest({}, info);
  wire::FinishMessage(wire::CommandHeader(77, wire::Command::kDeviceGetInfo), info);
  SendAll(raw.get(), info);
  std::vector<InboundMessage> messages = ReadMessages(raw.get(), 1);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].header.command, static_cast<uint16_t>(wire::Command::kDeviceGetInfo));
  EXPECT_EQ(messages[0].header.msg_id, 77);
}

}  // namespace
}  // namespace vfu
