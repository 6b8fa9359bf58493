// End-to-end: what one client can make the server hold is bounded (fds and
// bytes of commands it sends, fds of replies it does not read), and a client
// that exceeds a bound is slowed down or disconnected without harming the
// server. Raw sockets play the hostile client.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "testing/memory_device.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/base/log.h"
#include "vfu/base/syscalls.h"
#include "vfu/server/server.h"
#include "vfu/server/server_test_util.h"
#include "vfu/server/unix_listener.h"
#include "vfu/transport/message_reader.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/version.h"

namespace vfu {
namespace {

using ::vfu::testing::CountOpenFds;
using ::vfu::testing::IsOk;
using ::vfu::testing::MemoryDevice;
using ::vfu::testing::ScopedTempDir;
using ::vfu::testing::StatusIs;

// MemoryDevice whose region 1 the client may mmap: DEVICE_GET_REGION_INFO
// for it replies with a (duplicated) fd.
class MappableDevice : public MemoryDevice {
 public:
  MappableDevice() : MemoryDevice(64 * 1024), memfd_(::memfd_create("region1", MFD_CLOEXEC)) {
    EXPECT_EQ(::ftruncate(memfd_.get(), 4096), 0);
  }
  RegionDescription DescribeRegion(uint32_t index) const override {
    if (index != 1) return MemoryDevice::DescribeRegion(index);
    return {.size = 4096,
            .readable = true,
            .mmap_areas = {{.offset = 0, .size = 4096}},
            .mmap_fd = memfd_.get()};
  }

 private:
  UniqueFd memfd_;
};

// Sends all of `bytes`, waiting while the socket is full. False if the
// connection failed.
bool SendAll(int fd, absl::Span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN) return false;
    struct pollfd p = {fd, POLLOUT, 0};
    ::poll(&p, 1, 100);
  }
  return true;
}

// Connects with a raw socket and sends VERSION with `json` capabilities.
UniqueFd RawClient(const std::string& path, const std::string& json = "{}") {
  absl::StatusOr<UniqueFd> fd = ConnectUnix(path);
  EXPECT_THAT(fd, IsOk());
  if (!fd.ok()) return UniqueFd();
  std::vector<uint8_t> m = wire::StartMessage();
  wire::EncodeVersionWithJson(0, 0, json, m);
  wire::FinishMessage(wire::CommandHeader(1, wire::Command::kVersion), m);
  EXPECT_TRUE(SendAll(fd->get(), m));
  return std::move(*fd);
}

// Reads from `fd` until `count` messages arrived (or 60 s passed).
std::vector<InboundMessage> ReadMessages(int fd, size_t count) {
  MessageReader reader(1 << 20, 4);
  std::vector<InboundMessage> messages;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (messages.size() < count && absl::Now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if (!reader.ReadAvailable(fd, PosixSyscalls::Instance(), messages).ok()) break;
  }
  return messages;
}

// Waits up to 30 s for the server to close `fd`'s connection.
bool WaitForHangUp(int fd) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 100) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  }
  return false;
}

std::vector<uint8_t> RegionCommand(uint16_t id, wire::Command command,
                                   const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> m = wire::StartMessage(payload.size());
  m.insert(m.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(id, command), m);
  return m;
}

// A REGION_WRITE of `size` bytes to BAR0 offset 0.
std::vector<uint8_t> BigWrite(uint16_t id, size_t size) {
  std::vector<uint8_t> data(size, 0x5a), payload;
  wire::EncodeRegionWriteRequest({.offset = 0, .region = 0, .data = data}, payload);
  return RegionCommand(id, wire::Command::kRegionWrite, payload);
}

// A REGION_READ of 1 byte at BAR0 `offset`.
std::vector<uint8_t> SmallRead(uint16_t id, uint64_t offset) {
  std::vector<uint8_t> payload;
  wire::EncodeRegionReadRequest({.offset = offset, .region = 0, .count = 1}, payload);
  return RegionCommand(id, wire::Command::kRegionRead, payload);
}

class ConnectionLimitsTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options, std::unique_ptr<MemoryDevice> device) {
    device_ = std::move(device);
    ASSERT_OK_AND_ASSIGN(server_, Server::Create(options));
    ASSERT_OK(server_->AddDevice(Path(), *device_));
    ASSERT_OK(server_->Start());
  }
  std::string Path() const { return dir_.File("dev.sock"); }
  void TearDown() override {
    // A test that failed early must not leave a hook blocked.
    if (!release_.HasBeenNotified()) release_.Notify();
    if (server_) server_->Stop();
  }

  // For device hooks, which may outlive a failed test's body.
  absl::Notification release_;
  absl::Notification dma_done_;
  absl::Status dma_status_;

  ScopedTempDir dir_;
  std::unique_ptr<MemoryDevice> device_;
  std::unique_ptr<Server> server_;
};

// Problem: fds sent with every byte of a large message were all kept until
// the message completed. Now the connection is closed once more fds than
// max_msg_fds wait for one message, and every one of them is closed.
TEST_F(ConnectionLimitsTest, FdsTrickledIntoOneMessageCloseTheConnection) {
  StartServer({}, std::make_unique<MemoryDevice>(64 * 1024));
  UniqueFd raw = RawClient(Path());
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  const int baseline = CountOpenFds();  // includes the server's end
  std::vector<uint8_t> big = BigWrite(2, 200000);
  ASSERT_TRUE(SendAll(raw.get(), absl::MakeConstSpan(big).subspan(0, wire::kHeaderSize)));
  int sent_with_fds = 0;
  for (size_t pos = wire::kHeaderSize; pos < wire::kHeaderSize + 100; ++pos) {
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
    char control[CMSG_SPACE(sizeof(int))] = {};
    struct iovec iov = {big.data() + pos, 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int raw_efd = efd.get();
    std::memcpy(CMSG_DATA(c), &raw_efd, sizeof raw_efd);
    if (::sendmsg(raw.get(), &msg, MSG_NOSIGNAL) != 1) break;  // closed by the server
    ++sent_with_fds;
  }
  EXPECT_GT(sent_with_fds, 8);  // more than the default max_msg_fds
  EXPECT_TRUE(WaitForHangUp(raw.get())) << "the connection stayed open";
  // Every fd the server received is closed, and so is its end of the socket.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (CountOpenFds() > baseline - 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // polling a condition, with a deadline
  }
  EXPECT_LE(CountOpenFds(), baseline - 1);
}

// Problem: commands were bounded by count only, so a few large ones could
// queue many MiB. Now the IO thread stops reading past max_queued_bytes: a
// client whose commands cannot run gets no further than the bound, its
// socket buffers and one read. Once the commands run, all of them complete.
TEST_F(ConnectionLimitsTest, QueuedCommandBytesStopReading) {
  constexpr size_t kMaxQueued = 256 * 1024;
  constexpr size_t kWriteSize = 60000;
  ServerOptions options;
  options.runtime.max_queued_bytes = kMaxQueued;
  auto device = std::make_unique<MemoryDevice>(64 * 1024);
  device->set_read_hook([this](uint32_t, uint64_t offset) {
    if (offset == 1) release_.WaitForNotification();
  });
  StartServer(options, std::move(device));
  UniqueFd raw = RawClient(Path());
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  ASSERT_TRUE(SendAll(raw.get(), SmallRead(2, 1)));  // holds the strand

  const std::vector<uint8_t> write = BigWrite(3, kWriteSize);
  size_t commands = 0;
  size_t partial = 0;  // bytes of the last command sent so far
  constexpr size_t kGiveUp = 24 << 20;
  while (commands * write.size() < kGiveUp) {
    ssize_t n = ::send(raw.get(), write.data() + partial, write.size() - partial,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      partial += static_cast<size_t>(n);
      if (partial == write.size()) {
        ++commands;
        partial = 0;
      }
      continue;
    }
    ASSERT_EQ(errno, EAGAIN);
    // The socket is full. A negative wait: if the server still reads, room
    // appears well within a second.
    struct pollfd p = {raw.get(), POLLOUT, 0};
    if (::poll(&p, 1, 1000) == 0) break;
  }
  const size_t sent = commands * write.size() + partial;
  // The bound, one read budget, one message and the socket buffers (about
  // 1.6 MiB); without a byte bound the server reads 256 commands (15 MiB).
  EXPECT_LT(sent, size_t{4} << 20);

  release_.Notify();
  if (partial > 0) {
    ASSERT_TRUE(SendAll(raw.get(), absl::MakeConstSpan(write).subspan(partial)));
    ++commands;
  }
  std::vector<InboundMessage> replies = ReadMessages(raw.get(), commands + 1);
  ASSERT_EQ(replies.size(), commands + 1);
  for (const InboundMessage& r : replies) EXPECT_FALSE(r.header.is_error());
}

// Problem: while a DMA reply was awaited the IO thread read without any
// bound. Now commands queued meanwhile may reach
// max_queued_bytes_awaiting_reply; past it the client is disconnected with
// a log line, and the DMA fails.
TEST_F(ConnectionLimitsTest, CommandsQueuedWhileAwaitingDmaReplyAreBounded) {
  constexpr size_t kAwaitingLimit = 2 << 20;
  ServerOptions options;
  options.runtime.dma_timeout = absl::Minutes(5);
  options.runtime.max_queued_bytes = 256 * 1024;
  options.runtime.max_queued_bytes_awaiting_reply = kAwaitingLimit;
  auto device = std::make_unique<MemoryDevice>(64 * 1024);
  MemoryDevice* dev = device.get();
  device->set_read_hook([this, dev](uint32_t, uint64_t offset) {
    if (offset != 1) return;
    std::vector<uint8_t> out(8);
    dma_status_ = dev->context()->DmaRead(0x1000, absl::MakeSpan(out));
    dma_done_.Notify();
  });
  StartServer(options, std::move(device));
  std::atomic<int> warnings{0};
  ScopedLogCapture capture([&](LogLevel level, std::string_view text) {
    if (level == LogLevel::kWarning && text.find("DMA reply is awaited") != text.npos) ++warnings;
  });
  UniqueFd raw = RawClient(Path());
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  // Memory without an fd: the device's DMA travels as DMA_READ messages.
  std::vector<uint8_t> map = wire::StartMessage();
  wire::EncodeDmaMapRequest(
      {.flags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite, .addr = 0, .size = 0x10000}, map);
  wire::FinishMessage(wire::CommandHeader(2, wire::Command::kDmaMap), map);
  ASSERT_TRUE(SendAll(raw.get(), map));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);

  ASSERT_TRUE(SendAll(raw.get(), SmallRead(3, 1)));
  std::vector<InboundMessage> request = ReadMessages(raw.get(), 1);
  ASSERT_EQ(request.size(), 1u);
  ASSERT_EQ(request[0].header.command, static_cast<uint16_t>(wire::Command::kDmaRead));

  // Never answer; flood instead.
  const std::vector<uint8_t> write = BigWrite(4, 60000);
  size_t sent = 0;
  bool closed = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!closed && sent < (size_t{64} << 20) && absl::Now() < deadline) {
    const size_t at = sent % write.size();  // resume a partly sent command
    ssize_t n = ::send(raw.get(), write.data() + at, write.size() - at,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (errno == EAGAIN) {
      struct pollfd p = {raw.get(), POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else {
      closed = true;  // EPIPE or ECONNRESET
    }
  }
  EXPECT_TRUE(closed) << sent << " bytes sent and the connection is still open";
  // The bound, one read budget, one message, the socket buffers.
  EXPECT_LT(sent, kAwaitingLimit + (size_t{2} << 20));
  raw.reset();  // ends the DMA wait in any case
  dma_done_.WaitForNotification();
  EXPECT_THAT(dma_status_, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GE(warnings.load(), 1);
}

// Problem: replies carrying fds piled up without bound for a client that
// does not read them (each fd open in the server). Now the client's
// commands stop running past outbound_fds_high_water queued fds, and resume
// once it reads.
TEST_F(ConnectionLimitsTest, UnreadRepliesWithFdsPauseCommands) {
  constexpr size_t kHighWater = 32;
  constexpr size_t kRequests = 3000;
  ServerOptions options;
  options.runtime.outbound_fds_high_water = kHighWater;
  options.runtime.outbound_fds_low_water = 8;
  options.runtime.max_write_stall = absl::Minutes(10);
  StartServer(options, std::make_unique<MappableDevice>());
  // A small max_data_xfer_size keeps the server's socket send buffer at its
  // default, so the kernel holds only a few hundred replies.
  UniqueFd raw = RawClient(Path(), R"({"capabilities":{"max_data_xfer_size":4096}})");
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  const int baseline = CountOpenFds();

  std::vector<uint8_t> requests;
  for (size_t i = 0; i < kRequests; ++i) {
    std::vector<uint8_t> payload;
    wire::EncodeRegionInfoRequest({.index = 1}, payload);
    std::vector<uint8_t> m = RegionCommand(static_cast<uint16_t>(i), wire::Command::kDeviceGetRegionInfo, payload);
    requests.insert(requests.end(), m.begin(), m.end());
  }
  std::atomic<bool> sent_all{false};
  std::thread sender([&] { sent_all = SendAll(raw.get(), requests); });

  // A negative wait: give the server two seconds to pile up fds.
  int most = 0;
  const absl::Time until = absl::Now() + absl::Seconds(2);
  while (absl::Now() < until) {
    most = std::max(most, CountOpenFds() - baseline);
    absl::SleepFor(absl::Milliseconds(5));
  }
  // The mark plus one reply's fd (before: thousands).
  EXPECT_LE(most, static_cast<int>(kHighWater + 1));

  std::vector<InboundMessage> replies = ReadMessages(raw.get(), kRequests);
  sender.join();
  EXPECT_TRUE(sent_all.load());
  ASSERT_EQ(replies.size(), kRequests);
  for (const InboundMessage& r : replies) {
    EXPECT_FALSE(r.header.is_error());
    EXPECT_EQ(r.fds.size(), 1u);
  }
}

// A client that disconnects while its commands are paused for unread fds is
// let go: the strand finishes, the device detaches, no fd stays open.
TEST_F(ConnectionLimitsTest, DisconnectWhilePausedForFdsFinishes) {
  ServerOptions options;
  options.runtime.outbound_fds_high_water = 4;
  options.runtime.outbound_fds_low_water = 1;
  options.runtime.max_write_stall = absl::Minutes(10);
  StartServer(options, std::make_unique<MappableDevice>());
  const int before = CountOpenFds();
  UniqueFd raw = RawClient(Path(), R"({"capabilities":{"max_data_xfer_size":4096}})");
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  std::vector<uint8_t> requests;
  for (uint16_t i = 0; i < 1000; ++i) {
    std::vector<uint8_t> payload;
    wire::EncodeRegionInfoRequest({.index = 1}, payload);
    std::vector<uint8_t> m = RegionCommand(i, wire::Command::kDeviceGetRegionInfo, payload);
    requests.insert(requests.end(), m.begin(), m.end());
  }
  ASSERT_TRUE(SendAll(raw.get(), requests));
  // Wait (bounded) until the strand has paused: fds pile up in the server.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (CountOpenFds() - before < 4 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition, with a deadline
  }
  raw.reset();
  while (device_->detaches() < 1 && absl::Now() < deadline + absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition, with a deadline
  }
  EXPECT_EQ(device_->detaches(), 1);
  while (CountOpenFds() > before && absl::Now() < deadline + absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition, with a deadline
  }
  EXPECT_LE(CountOpenFds(), before);
}

}  // namespace
}  // namespace vfu
