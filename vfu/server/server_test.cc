// End-to-end: a vfu Server with memory devices, driven by the client library
// over real UNIX sockets.
#include "vfu/server/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
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

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "testing/memory_device.h"
#include "vfu/server/server_test_util.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/base/log.h"
#include "vfu/client/client.h"
#include "vfu/base/syscalls.h"
#include "vfu/server/unix_listener.h"
#include "vfu/transport/message_reader.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/version.h"

namespace vfu {
namespace {

using ::vfu::testing::CountOpenFds;
using ::vfu::testing::IsOk;
using ::vfu::testing::MapFdLessMemory;
using ::vfu::testing::RawNegotiatedClient;
using ::vfu::testing::ReadMessages;
using ::vfu::testing::MemoryDevice;
using ::vfu::testing::StatusIs;

class ServerTest : public testing::ServerFixture {};

// A client negotiates, reads the layout, and its writes are read back.
TEST_F(ServerTest, ServesBasicSession) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(wire::DeviceInfo info, client->GetDeviceInfo());
  EXPECT_EQ(info.num_regions, 9u);
  ASSERT_OK(client->RegionWrite(0, 8, std::vector<uint8_t>{1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, client->RegionRead(0, 7, 5));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0, 1, 2, 3, 0}));
  EXPECT_EQ(devices_[0]->attaches(), 1);
}

// Errors keep their errno end to end.
TEST_F(ServerTest, ErrorRepliesCarryErrno) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::vector<uint8_t>> r = client->RegionRead(0, 64 * 1024 - 2, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(wire::ReplyErrno(r.status()), EINVAL);
}

// Posted writes followed by a read are observed in order (PROTOCOL.md 2.3).
TEST_F(ServerTest, PostedWritesCompleteBeforeLaterRead) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  for (uint8_t i = 0; i < 200; ++i) {
    ASSERT_OK(client->RegionWrite(0, i, std::vector<uint8_t>{static_cast<uint8_t>(i + 1)},
                                  /*posted=*/true));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, client->RegionRead(0, 0, 200));
  for (int i = 0; i < 200; ++i) ASSERT_EQ(bytes[i], i + 1) << i;
}

// 10 000 pipelined reads: every reply is matched to its command.
TEST_F(ServerTest, TenThousandPipelinedCommands) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  std::vector<uint8_t> pattern(4096);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7);
  ASSERT_OK(client->RegionWrite(0, 0, pattern));
  constexpr int kCount = 10000;
  std::vector<uint16_t> ids;
  for (int i = 0; i < kCount; ++i) {
    std::vector<uint8_t> p;
    wire::EncodeRegionReadRequest(
        {.offset = static_cast<uint64_t>(i % 4000), .region = 0, .count = 4}, p);
    ASSERT_OK_AND_ASSIGN(uint16_t id, client->Send(wire::Command::kRegionRead, p));
    ids.push_back(id);
  }
  for (int i = 0; i < kCount; ++i) {
    ASSERT_OK_AND_ASSIGN(Reply reply, client->Await(ids[i]));
    ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data,
                         wire::DecodeRegionReadReply(reply.payload(), 0));
    ASSERT_EQ(data.offset, static_cast<uint64_t>(i % 4000));
    ASSERT_EQ(data.data[0], pattern[i % 4000]);
  }
}

// Eventfd wake-ups of the IO thread during `round_trips` sequential reads.
uint64_t WakeupsForReads(Server& server, Client& client, int round_trips) {
  const uint64_t before = server.reactor().wakeups();
  for (int i = 0; i < round_trips; ++i) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client.RegionRead(0, 0, 4);
    EXPECT_THAT(bytes, IsOk());
    if (!bytes.ok()) break;
  }
  return server.reactor().wakeups() - before;
}

// While a command runs on a worker the IO thread polls for its reply, so
// the reply needs no eventfd wake-up: with a window longer than the test,
// 50 round trips cost none.
TEST_F(ServerTest, ReplyPollingSparesTheReplyWakeup) {
  ServerOptions options;
  options.runtime.reply_busy_poll = absl::Minutes(10);
  options.runtime.poll_backoff = absl::ZeroDuration();  // whatever the load
  StartServer(options);
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(WakeupsForReads(*server_, *client, 50), 0u);
}

// The contrast: with reply polling off the IO thread sleeps while the
// command runs, and each reply wakes it.
TEST_F(ServerTest, WithoutReplyPollingEachReplyWakesTheIoThread) {
  ServerOptions options;
  options.runtime.reply_busy_poll = absl::ZeroDuration();
  StartServer(options);
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(WakeupsForReads(*server_, *client, 50), 50u);
}

// Reply polling with a window too short for any reply (it ends before the
// worker is done): every reply still arrives, through the eventfd.
TEST_F(ServerTest, ReplyPollingThatTimesOutLosesNoReply) {
  ServerOptions options;
  options.runtime.reply_busy_poll = absl::Nanoseconds(1);
  StartServer(options);
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(client->RegionWrite(0, 0, std::vector<uint8_t>{static_cast<uint8_t>(i)}));
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, client->RegionRead(0, 0, 1));
    ASSERT_EQ(bytes[0], static_cast<uint8_t>(i));
  }
}

// One device serves one client: a second one waits (in the backlog, with
// one log line however many wait) while the first is attached, and is
// served, with the same device state, once the first has left.
TEST_F(ServerTest, SecondClientWaitsForTheFirstAndFindsItsState) {
  StartServer();
  std::atomic<int> waiting_lines{0};
  absl::Notification noticed;
  ScopedLogCapture capture([&](LogLevel, std::string_view text) {
    if (text.find("a client is waiting") != std::string_view::npos &&
        waiting_lines.fetch_add(1) == 0) {
      noticed.Notify();
    }
  });
  std::unique_ptr<Client> first = Connect();
  ASSERT_NE(first, nullptr);
  ASSERT_OK(first->RegionWrite(0, 0, std::vector<uint8_t>{42}));

  absl::StatusOr<std::unique_ptr<Client>> second;
  absl::Notification second_served;
  std::thread connector([&] {
    second = Client::Connect(Path(0), ClientOptions{.timeout = absl::Seconds(60)});
    second_served.Notify();
  });
  ASSERT_TRUE(noticed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // A third one waits as well, without another log line.
  ASSERT_OK_AND_ASSIGN(UniqueFd third, ConnectUnix(Path(0)));
  // The first client is served meanwhile; the second is not.
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, first->RegionRead(0, 0, 1));
    ASSERT_EQ(bytes[0], 42);
  }
  EXPECT_FALSE(second_served.HasBeenNotified());
  EXPECT_EQ(devices_[0]->attaches(), 1);
  EXPECT_EQ(waiting_lines.load(), 1);  // once per attachment

  first.reset();
  connector.join();
  ASSERT_THAT(second, IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, (*second)->RegionRead(0, 0, 1));
  EXPECT_EQ(bytes[0], 42);
  EXPECT_EQ(devices_[0]->attaches(), 2);
}

// The libvfio-user #279 race, made deterministic: the client has already
// sent more commands when a device callback asks for DMA_READ. The reply is
// matched, and the queued commands run afterwards, in order.
TEST_F(ServerTest, DmaInsideCallbackWithCommandsQueuedBehind) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  std::vector<uint8_t> guest(8192);
  for (size_t i = 0; i < guest.size(); ++i) guest[i] = static_cast<uint8_t>(i ^ 0x5a);
  ASSERT_OK(client->DmaMapMemory(0x10000, absl::MakeSpan(guest)));

  absl::Notification later_commands_sent;
  std::vector<uint8_t> dma_result(100);
  absl::Status dma_status = absl::UnknownError("not run");
  std::atomic<int> hook_runs{0};
  devices_[0]->set_read_hook([&](uint32_t, uint64_t offset) {
    if (offset != 0 || hook_runs.fetch_add(1) != 0) return;
    later_commands_sent.WaitForNotification();
    dma_status = devices_[0]->context()->DmaRead(0x10000 + 50, absl::MakeSpan(dma_result));
  });

  std::vector<uint8_t> read_req;
  wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = 1}, read_req);
  ASSERT_OK_AND_ASSIGN(uint16_t first, client->Send(wire::Command::kRegionRead, read_req));
  std::vector<uint16_t> later;
  for (uint8_t i = 1; i <= 20; ++i) {
    std::vector<uint8_t> w;
    std::vector<uint8_t> data = {i};
    wire::EncodeRegionWriteRequest({.offset = 1000, .region = 0, .data = data}, w);
    ASSERT_OK_AND_ASSIGN(uint16_t id, client->Send(wire::Command::kRegionWrite, w));
    later.push_back(id);
  }
  later_commands_sent.Notify();
  ASSERT_THAT(client->Await(first), IsOk());  // serves the DMA_READ meanwhile
  ASSERT_OK(dma_status);
  EXPECT_EQ(0, std::memcmp(dma_result.data(), guest.data() + 50, dma_result.size()));
  for (uint16_t id : later) ASSERT_THAT(client->Await(id), IsOk());
  // In-order execution: the last write wins.
  EXPECT_EQ(devices_[0]->bar0()[1000], 20);
}

// Many device threads do DMA at once; every transfer gets its own bytes.
TEST_F(ServerTest, ConcurrentDmaFromManyThreads) {
  StartServer();
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  std::vector<uint8_t> guest(64 * 1024);
  for (size_t i = 0; i < guest.size(); ++i) guest[i] = static_cast<uint8_t>(i * 31 + 7);
  ASSERT_OK(client->DmaMapMemory(0x100000, absl::MakeSpan(guest)));
  ASSERT_OK(client->StartServingThread());
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);
  constexpr int kThreads = 8, kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        uint64_t offset = static_cast<uint64_t>((t * 7919 + i * 104729) % (60 * 1024));
        std::vector<uint8_t> out(1024);
        if (i % 2 == 0) {
          if (!context->DmaRead(0x100000 + offset, absl::MakeSpan(out)).ok() ||
              std::memcmp(out.data(), guest.data() + offset, out.size()) != 0) {
            failures.fetch_add(1);
          }
        } else {
          std::vector<uint8_t> data(16, static_cast<uint8_t>(t));
          // Each thread writes its own 16-byte slot past the read area.
          if (!context->DmaWrite(0x100000 + 61 * 1024 + t * 16, data).ok()) failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  client->StopServingThread();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(guest[61 * 1024 + t * 16], t);
}

// Each device's connection speaks its own DMA message layout: one device
// is served to a QEMU-style client, the other to a spec-layout one.
TEST_F(ServerTest, DmaLayoutIsChosenPerDevice) {
  StartServer({}, 2, {DeviceOptions{}, DeviceOptions{.dma_layout = wire::DmaTransferLayout::kQemu}});
  for (int device = 0; device < 2; ++device) {
    ClientOptions options;
    options.dma_layout =
        device == 0 ? wire::DmaTransferLayout::kSpec : wire::DmaTransferLayout::kQemu;
    std::unique_ptr<Client> client = Connect(device, options);
    ASSERT_NE(client, nullptr);
    std::vector<uint8_t> guest(256 * 1024);
    for (size_t i = 0; i < guest.size(); ++i) guest[i] = static_cast<uint8_t>(i * 7 + device);
    ASSERT_OK(client->DmaMapMemory(0x10000, absl::MakeSpan(guest)));
    ASSERT_OK(client->StartServingThread());
    // A small read, and one large enough for its data to be received
    // straight into `out`.
    for (size_t size : {size_t{64}, size_t{200 * 1024}}) {
      std::vector<uint8_t> out(size);
      ASSERT_OK(devices_[device]->context()->DmaRead(0x10000 + 8, absl::MakeSpan(out)));
      EXPECT_TRUE(std::equal(out.begin(), out.end(), guest.begin() + 8)) << size;
    }
    const std::vector<uint8_t> data(16, 0xee);
    ASSERT_OK(devices_[device]->context()->DmaWrite(0x10000 + 100, data));
    client->StopServingThread();
    EXPECT_EQ(guest[100], 0xee);
    EXPECT_EQ(guest[115], 0xee);
  }
}

// A client that disconnects while DMA calls wait for it: every waiter
// returns Unavailable at once, long before its one-minute deadline.
TEST_F(ServerTest, DisconnectWakesDmaWaiters) {
  ServerOptions options;
  options.runtime.dma_timeout = absl::Minutes(1);
  StartServer(options);
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);  // the VERSION reply
  MapFdLessMemory(raw.get());
  // The device is attached before the VERSION reply leaves.
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);
  constexpr int kWaiters = 4;
  std::vector<absl::Status> results(kWaiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      std::vector<uint8_t> out(8);
      results[i] = context->DmaRead(0x1000, absl::MakeSpan(out));
    });
  }
  // All four DMA_READ commands reach the client, which never answers.
  std::vector<InboundMessage> requests = ReadMessages(raw.get(), kWaiters);
  ASSERT_EQ(requests.size(), static_cast<size_t>(kWaiters));
  for (const InboundMessage& r : requests) {
    EXPECT_EQ(r.header.command, static_cast<uint16_t>(wire::Command::kDmaRead));
  }
  absl::Time start = absl::Now();
  raw.reset();
  for (std::thread& t : threads) t.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  for (const absl::Status& s : results) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  }
}

// The client answers a DMA_READ with a reply whose id matches nothing and
// sends a command between: the stray reply is dropped with a log line, the
// command is served, and the real reply completes the DMA.
TEST_F(ServerTest, StrayReplyIsDroppedAndCommandsStillServed) {
  StartServer();
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  MapFdLessMemory(raw.get());
  // The device is attached before the VERSION reply leaves.
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);
  absl::Status dma_status;
  std::vector<uint8_t> out(4);
  std::thread device([&] { dma_status = context->DmaRead(0x2000, absl::MakeSpan(out)); });
  std::vector<InboundMessage> requests = ReadMessages(raw.get(), 1);
  ASSERT_EQ(requests.size(), 1u);
  const wire::Header request = requests[0].header;

  int warnings = 0;
  ScopedLogCapture capture([&](LogLevel level, std::string_view text) {
    if (level == LogLevel::kWarning && text.find("unknown id") != std::string_view::npos) {
      ++warnings;
    }
  });
  auto send = [&](const std::vector<uint8_t>& m) {
    ASSERT_EQ(::send(raw.get(), m.data(), m.size(), MSG_NOSIGNAL), (ssize_t)m.size());
  };
  // 1. A reply to an id we never got.
  std::vector<uint8_t> stray = wire::StartMessage();
  wire::EncodeDmaReadReply({.address = 0x2000, .data = out}, wire::DmaTransferLayout::kSpec, stray);
  wire::Header stray_header = wire::ReplyHeader(request);
  stray_header.msg_id = request.msg_id + 1;
  wire::FinishMessage(stray_header, stray);
  send(stray);
  // 2. A client command in between.
  std::vector<uint8_t> info = wire::StartMessage();
  wire::EncodeDeviceGetInfoRequest({}, info);
  wire::FinishMessage(wire::CommandHeader(77, wire::Command::kDeviceGetInfo), info);
  send(info);
  // 3. The real reply.
  std::vector<uint8_t> data = {9, 8, 7, 6};
  std::vector<uint8_t> reply = wire::StartMessage();
  wire::EncodeDmaReadReply({.address = 0x2000, .data = data}, wire::DmaTransferLayout::kSpec,
                           reply);
  wire::FinishMessage(wire::ReplyHeader(request), reply);
  send(reply);

  device.join();
  ASSERT_OK(dma_status);
  EXPECT_EQ(out, data);
  std::vector<InboundMessage> answers = ReadMessages(raw.get(), 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].header.msg_id, 77);
  EXPECT_FALSE(answers[0].header.is_error());
  EXPECT_EQ(warnings, 1);
}

// A caller that timed out halfway through a large DMA_READ reply, whose
// data was being received straight into its buffer: nothing is written
// there once DmaRead() returns, the rest of the late reply is skipped with
// a log line, and the client's next command is served.
TEST_F(ServerTest, LargeReplyAbandonedByItsCallerIsSkipped) {
  ServerOptions options;
  options.runtime.dma_timeout = absl::Milliseconds(300);
  StartServer(options);
  UniqueFd raw = RawNegotiatedClient(Path(0));
  ASSERT_EQ(ReadMessages(raw.get(), 1).size(), 1u);
  MapFdLessMemory(raw.get(), 0x100000);
  std::shared_ptr<DeviceContext> context = devices_[0]->context();
  ASSERT_NE(context, nullptr);

  constexpr size_t kSize = 256 * 1024;
  auto out = std::make_unique<std::vector<uint8_t>>(kSize, 0);
  absl::Status dma_status;
  std::thread device([&] { dma_status = context->DmaRead(0x1000, absl::MakeSpan(*out)); });
  std::vector<InboundMessage> requests = ReadMessages(raw.get(), 1);
  ASSERT_EQ(requests.size(), 1u);

  int warnings = 0;
  ScopedLogCapture capture([&](LogLevel level, std::string_view text) {
    if (level == LogLevel::kWarning && text.find("stopped waiting") != std::string_view::npos) {
      ++warnings;
    }
  });
  const std::vector<uint8_t> data(kSize, 0xa5);
  std::vector<uint8_t> reply = wire::StartMessage();
  wire::EncodeDmaReadReply({.address = 0x1000, .data = data}, wire::DmaTransferLayout::kSpec,
                           reply);
  wire::FinishMessage(wire::ReplyHeader(requests[0].header), reply);
  // The raw socket may take a large message in several sends.
  auto send = [&](absl::Span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      struct pollfd p = {raw.get(), POLLOUT, 0};
      ASSERT_GE(::poll(&p, 1, 30000), 0);
      const ssize_t n = ::send(raw.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      ASSERT_TRUE(n > 0 || errno == EAGAIN) << std::strerror(errno);
      if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
    }
  };
  // Header, fields and the first 1000 data bytes; then the client stalls
  // past the caller's deadline.
  send(absl::MakeConstSpan(reply).first(1032));
  device.join();
  EXPECT_THAT(dma_status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The caller owns its buffer again: mark it, then let the rest arrive.
  std::fill(out->begin(), out->end(), 0x11);
  send(absl::MakeConstSpan(reply).subspan(1032));
  std::vector<uint8_t> info = wire::StartMessage();
  wire::EncodeDeviceGetInfoRequest({}, info);
  wire::FinishMessage(wire::CommandHeader(77, wire::Command::kDeviceGetInfo), info);
  send(info);
  std::vector<InboundMessage> answers = ReadMessages(raw.get(), 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].header.msg_id, 77);
  EXPECT_FALSE(answers[0].header.is_error());
  EXPECT_EQ(*out, std::vector<uint8_t>(kSize, 0x11));
  EXPECT_EQ(warnings, 1);
}

// One server hosts several devices; each socket has its own state.
TEST_F(ServerTest, SeveralDevicesIndependent) {
  StartServer({}, 3);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect(i));
    ASSERT_NE(clients.back(), nullptr);
    ASSERT_OK(clients[i]->RegionWrite(0, 0, std::vector<uint8_t>{static_cast<uint8_t>(10 + i)}));
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> b, clients[i]->RegionRead(0, 0, 1));
    EXPECT_EQ(b[0], 10 + i);
  }
}

// RuntimeOptions::dma_limits reach every client's DMA map table: a client
// past its bytes of mappings is refused with ENOSPC and keeps its session.
TEST_F(ServerTest, DmaLimitsComeFromRuntimeOptions) {
  ServerOptions options;
  constexpr uint64_t kMap = 4 << 20;
  options.runtime.dma_limits.max_total_bytes = 2 * kMap;
  StartServer(options);
  std::unique_ptr<Client> client = Connect();
  ASSERT_NE(client, nullptr);
  auto memfd = [] {
    UniqueFd fd(::memfd_create("dma-limit", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(fd.get(), kMap), 0);
    return fd;
  };
  constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
  ASSERT_OK(client->DmaMap(0, kMap, kReadWrite, memfd()));
  ASSERT_OK(client->DmaMap(kMap, kMap, kReadWrite, memfd()));
  absl::Status third = client->DmaMap(2 * kMap, kMap, kReadWrite, memfd());
  EXPECT_EQ(wire::ReplyErrno(third), ENOSPC) << third;
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, client->RegionRead(0, 0, 1));
  EXPECT_EQ(bytes.size(), 1u);
}

// A client that floods commands and never reads its replies does not stall
// another client; it is disconnected once its replies have not drained for
// max_write_stall.
TEST_F(ServerTest, FloodingClientDoesNotHurtOthers) {
  ServerOptions options;
  options.runtime.max_write_stall = absl::Milliseconds(500);
  options.runtime.outbound_high_water = 256 * 1024;
  options.runtime.outbound_low_water = 64 * 1024;
  StartServer(options, 2);

  // The flooder: raw socket, VERSION, then 64 KiB reads until the socket is
  // full. It never reads.
  ASSERT_OK_AND_ASSIGN(UniqueFd flood, ConnectUnix(Path(0)));
  {
    std::vector<uint8_t> m = wire::StartMessage();
    wire::EncodeVersionWithJson(0, 0, "{}", m);
    wire::FinishMessage(wire::CommandHeader(1, wire::Command::kVersion), m);
    ASSERT_EQ(::send(flood.get(), m.data(), m.size(), MSG_NOSIGNAL), (ssize_t)m.size());
  }
  std::vector<uint8_t> read_cmd = wire::StartMessage();
  wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = 65536}, read_cmd);
  wire::FinishMessage(wire::CommandHeader(2, wire::Command::kRegionRead), read_cmd);
  size_t sent_commands = 0;
  while (true) {
    ssize_t n = ::send(flood.get(), read_cmd.data(), read_cmd.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) break;
    ASSERT_EQ(n, (ssize_t)read_cmd.size());
    ++sent_commands;
  }
  EXPECT_GT(sent_commands, 100u);

  // Meanwhile another client is served normally.
  std::unique_ptr<Client> other = Connect(1);
  ASSERT_NE(other, nullptr);
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(other->RegionWrite(0, 0, std::vector<uint8_t>{static_cast<uint8_t>(i)}));
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> b, other->RegionRead(0, 0, 1));
    ASSERT_EQ(b[0], static_cast<uint8_t>(i));
  }

  // The flooder is dropped: its socket reports hang-up.
  struct pollfd p = {flood.get(), POLLRDHUP, 0};
  bool hung_up = false;
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!hung_up && absl::Now() < deadline) {
    ASSERT_GE(::poll(&p, 1, 100), 0);
    hung_up = (p.revents & (POLLRDHUP | POLLHUP)) != 0;
  }
  EXPECT_TRUE(hung_up);
}

// Heap bytes in use, or -1 where a sanitizer's allocator replaces malloc
// (its quarantine makes the figure meaningless).
int64_t HeapInUse() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return -1;
#else
  return static_cast<int64_t>(::mallinfo2().uordblks);
#endif
}

// 1000 connect/negotiate/disconnect cycles leave no fd and no heap behind.
TEST_F(ServerTest, ConnectCyclesLeakNothing) {
  StartServer();
  auto cycle = [&] {
    // The previous client may still be detaching: this one waits for it.
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(Path(0), PatientClient());
    ASSERT_THAT(c, IsOk());
    EXPECT_THAT((*c)->GetDeviceInfo(), IsOk());
  };
  for (int i = 0; i < 20; ++i) cycle();
  const int fds_before = CountOpenFds();
  const int64_t heap_before = HeapInUse();
  for (int i = 0; i < 1000; ++i) cycle();
  // Let the last detach finish: the next client is served only after it.
  cycle();
  EXPECT_LE(CountOpenFds(), fds_before + 2);  // the last client's sockets may linger
  if (heap_before >= 0) {
    // A leak of even 1 KiB per cycle would show as 1 MiB.
    EXPECT_LT(HeapInUse() - heap_before, 512 * 1024);
  }
  EXPECT_EQ(devices_[0]->attaches(), 1021);
}

}  // namespace
}  // namespace vfu
