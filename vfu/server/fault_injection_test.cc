// The server under hostile transport conditions: every message from the
// client (and every reply) arrives split at every offset, one byte at a
// time, or in random chunks with random pauses, fds included; and replies
// leave through a tiny socket buffer. Each scenario runs pipelined region
// traffic plus server-initiated DMA and checks every byte.
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/fault/fragmenting_proxy.h"
#include "testing/memory_device.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/base/log.h"
#include "vfu/client/client.h"
#include "vfu/server/server.h"
#include "vfu/server/unix_listener.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

using ::vfu::testing::FragmentingProxy;
using ::vfu::testing::FragmentPolicy;
using ::vfu::testing::MemoryDevice;
using ::vfu::testing::ScopedTempDir;

// Pipelined writes and reads of distinct patterns, a DMA read and write
// done by a device thread, and a command carrying fds it does not take.
void RunTraffic(Client& client, MemoryDevice& device) {
  constexpr int kWrites = 60;
  std::vector<uint16_t> ids;
  for (int i = 0; i < kWrites; ++i) {
    std::vector<uint8_t> data(1 + (i * 37) % 700, static_cast<uint8_t>(i + 1));
    std::vector<uint8_t> p;
    wire::EncodeRegionWriteRequest({.offset = static_cast<uint64_t>(i) * 1024, .region = 0, .data = data}, p);
    ASSERT_OK_AND_ASSIGN(uint16_t id, client.Send(wire::Command::kRegionWrite, p));
    ids.push_back(id);
  }
  for (int i = 0; i < kWrites; ++i) {
    std::vector<uint8_t> p;
    wire::EncodeRegionReadRequest({.offset = static_cast<uint64_t>(i) * 1024, .region = 0,
                                   .count = static_cast<uint32_t>(1 + (i * 37) % 700)}, p);
    ASSERT_OK_AND_ASSIGN(uint16_t id, client.Send(wire::Command::kRegionRead, p));
    ids.push_back(id);
  }
  for (int i = 0; i < 2 * kWrites; ++i) {
    ASSERT_OK_AND_ASSIGN(Reply reply, client.Await(ids[i]));
    if (i < kWrites) continue;
    ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data,
                         wire::DecodeRegionReadReply(reply.payload(), 0));
    const int w = i - kWrites;
    ASSERT_EQ(data.data.size(), static_cast<size_t>(1 + (w * 37) % 700));
    for (uint8_t b : data.data) ASSERT_EQ(b, static_cast<uint8_t>(w + 1));
  }

  // Server-initiated DMA, answered by the client while it polls.
  std::vector<uint8_t> guest(16384);
  for (size_t i = 0; i < guest.size(); ++i) guest[i] = static_cast<uint8_t>(i * 11);
  ASSERT_OK(client.DmaMapMemory(0x40000, absl::MakeSpan(guest)));
  absl::Status read_status, write_status;
  absl::Notification device_done;
  std::vector<uint8_t> out(10000);
  std::thread device_thread([&] {
    read_status = device.context()->DmaRead(0x40000 + 100, absl::MakeSpan(out));
    write_status = device.context()->DmaWrite(0x40000 + 12000, std::vector<uint8_t>(300, 0xee));
    device_done.Notify();
  });
  // The client answers the device's DMA only while it polls.
  // A broken connection fails the DMA too, so the loop always ends.
  absl::Status poll_status;
  while (!device_done.HasBeenNotified() && poll_status.ok()) {
    poll_status = client.Poll(absl::Milliseconds(20));
  }
  device_thread.join();
  ASSERT_OK(poll_status);
  ASSERT_OK(read_status);
  ASSERT_OK(write_status);
  EXPECT_EQ(0, std::memcmp(out.data(), guest.data() + 100, out.size()));
  EXPECT_EQ(guest[12000], 0xee);

  // fds on a command that takes none: closed by the server, which says how
  // many it got (so they were tied to this message, not a neighbour).
  std::vector<uint8_t> p;
  wire::EncodeDeviceGetInfoRequest({}, p);
  std::vector<UniqueFd> fds;
  fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  ASSERT_THAT(client.Call(wire::Command::kDeviceGetInfo, p, std::move(fds)),
              ::vfu::testing::IsOk());
}

// One byte per sendmsg through a proxy is slow, more so on a loaded
// machine under a sanitizer: the server waits for a DMA reply, and the
// client for each reply, as long as the test may run (the defaults, 5 s,
// would assume a speed).
constexpr absl::Duration kPatience = absl::Minutes(2);

class FaultInjectionTest : public ::testing::TestWithParam<std::pair<const char*, FragmentPolicy>> {};

TEST_P(FaultInjectionTest, TrafficSurvivesFragmentation) {
  ScopedTempDir dir;
  MemoryDevice device(64 * 1024);
  ServerOptions options;
  options.runtime.dma_timeout = kPatience;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Server> server, Server::Create(std::move(options)));
  ASSERT_OK(server->AddDevice(dir.File("dev.sock"), device));
  ASSERT_OK(server->Start());
  FragmentingProxy proxy({.listen_path = dir.File("proxy.sock"),
                          .upstream_path = dir.File("dev.sock"),
                          .to_upstream = GetParam().second,
                          .to_client = GetParam().second});
  ASSERT_OK(proxy.Start());

  int fd_warnings = 0;
  ScopedLogCapture capture([&](LogLevel level, std::string_view text) {
    if (level == LogLevel::kWarning && text.find("closing 2 unexpected fds") != text.npos) {
      ++fd_warnings;
    }
  });
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                         Client::Connect(dir.File("proxy.sock"), {.timeout = kPatience}));
    RunTraffic(*client, device);
  }
  EXPECT_EQ(fd_warnings, 1);
  FragmentingProxy::Stats stats = proxy.stats();
  EXPECT_GT(stats.to_upstream.messages, 120u);
  // The stream was re-cut: messages split, or several joined in one send.
  EXPECT_TRUE(stats.to_upstream.fragments > stats.to_upstream.messages ||
              stats.to_upstream.coalesced_fragments > 0)
      << stats.to_upstream.fragments << " fragments for " << stats.to_upstream.messages
      << " messages";
  EXPECT_EQ(stats.to_upstream.fds, 2u);
  proxy.Stop();
  server->Stop();
}

INSTANTIATE_TEST_SUITE_P(
    Policies, FaultInjectionTest,
    ::testing::Values(std::make_pair("split_at_every_offset", FragmentPolicy::SplitAt()),
                      std::make_pair("one_byte", FragmentPolicy::OneByte()),
                      std::make_pair("random_chunks", FragmentPolicy::RandomChunks(7, 300)),
                      std::make_pair("random_chunks_2", FragmentPolicy::RandomChunks(99, 5000))),
    [](const auto& info) { return std::string(info.param.first); });

// Large replies through a 4 KiB receive buffer: the server's writes are
// short and resume at the exact byte.
TEST(TinyBufferTest, LargeRepliesThroughTinyBuffer) {
  ScopedTempDir dir;
  MemoryDevice device(256 * 1024);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Server> server, Server::Create());
  ASSERT_OK(server->AddDevice(dir.File("dev.sock"), device));
  ASSERT_OK(server->Start());
  ASSERT_OK_AND_ASSIGN(UniqueFd socket, ConnectUnix(dir.File("dev.sock")));
  int size = 4096;
  ASSERT_EQ(::setsockopt(socket.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(std::move(socket)));
  std::vector<uint8_t> pattern(256 * 1024);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 13 + i / 256);
  for (size_t off = 0; off < pattern.size(); off += 65536) {
    ASSERT_OK(client->RegionWrite(0, off, absl::MakeConstSpan(pattern).subspan(off, 65536)));
  }
  std::vector<uint16_t> ids;
  for (int round = 0; round < 8; ++round) {
    for (size_t off = 0; off < pattern.size(); off += 65536) {
      std::vector<uint8_t> p;
      wire::EncodeRegionReadRequest({.offset = off, .region = 0, .count = 65536}, p);
      ASSERT_OK_AND_ASSIGN(uint16_t id, client->Send(wire::Command::kRegionRead, p));
      ids.push_back(id);
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(Reply reply, client->Await(ids[i]));
    ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data, wire::DecodeRegionReadReply(reply.payload(), 0));
    const size_t off = (i % 4) * 65536;
    ASSERT_EQ(0, std::memcmp(data.data.data(), pattern.data() + off, 65536)) << i;
  }
  client.reset();
  server->Stop();
}

}  // namespace
}  // namespace vfu
