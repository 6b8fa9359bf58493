// FragmentingProxy between a test client and an echo server: every policy
// delivers random traffic intact, in order, each message with exactly its
// own fds, while really fragmenting it; disconnects propagate both ways.
#include "testing/fault/fragmenting_proxy.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/base/syscalls.h"
#include "vfu/base/unique_fd.h"
#include "vfu/reactor/wakeup_fd.h"
#include "vfu/server/unix_listener.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/wire/header.h"

namespace vfu::testing {
namespace {

constexpr size_t kMaxMessageSize = 1 << 20;
constexpr size_t kMaxFds = 8;
// Failure guard for every wait: a broken proxy fails the test instead of
// hanging it. Never reached when things work.
constexpr int kPollTimeoutMs = 60000;

// Waits until `fd` reports one of `events`; false on timeout.
bool WaitFor(int fd, short events) {
  struct pollfd p = {fd, events, 0};
  return ::poll(&p, 1, kPollTimeoutMs) == 1;
}

// Accepts one pending connection on `listen_fd`, waiting for it.
UniqueFd AcceptOne(int listen_fd) {
  if (!WaitFor(listen_fd, POLLIN)) return UniqueFd();
  return UniqueFd(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

// Listens at a path; its thread serves one connection at a time, echoing
// each message back with the fds it came with, until that peer disconnects,
// then accepts the next. The destructor stops and joins the thread.
class EchoServer {
 public:
  absl::Status Start(const std::string& path) {
    absl::StatusOr<WakeupFd> stop = WakeupFd::Create();
    if (!stop.ok()) return stop.status();
    absl::StatusOr<UniqueFd> listen_fd = ListenUnix(path);
    if (!listen_fd.ok()) return listen_fd.status();
    stop_ = std::make_unique<WakeupFd>(*std::move(stop));
    listen_fd_ = *std::move(listen_fd);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  ~EchoServer() {
    if (!thread_.joinable()) return;
    EXPECT_OK(stop_->Wake());
    thread_.join();
  }

 private:
  void Run() {
    PosixSyscalls& sys = PosixSyscalls::Instance();
    UniqueFd conn;
    std::optional<MessageReader> reader;
    MessageWriter writer;
    while (true) {
      struct pollfd p[3] = {
          {stop_->fd(), POLLIN, 0},
          {conn ? -1 : listen_fd_.get(), POLLIN, 0},
          {conn ? conn.get() : -1, static_cast<short>(POLLIN | (writer.empty() ? 0 : POLLOUT)),
           0},
      };
      if (::poll(p, 3, -1) < 0) continue;  // EINTR
      if (p[0].revents != 0) return;
      if (p[1].revents != 0) {
        conn.reset(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        reader.emplace(kMaxMessageSize, kMaxFds);
        writer.Clear();
      }
      if (!conn || p[2].revents == 0) continue;
      std::vector<InboundMessage> messages;
      absl::Status read = reader->ReadAvailable(conn.get(), sys, messages);
      for (InboundMessage& m : messages) {
        writer.Enqueue(OutboundMessage{std::move(m.bytes), std::move(m.fds)});
      }
      absl::Status flush = writer.Flush(conn.get(), sys);
      if (!read.ok() || !flush.ok()) conn.reset();  // the peer left
    }
  }

  UniqueFd listen_fd_;
  std::unique_ptr<WakeupFd> stop_;
  std::thread thread_;
};

// A message the test sent, and the values written into its eventfds.
struct SentMessage {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> fd_values;
};

// Builds `count` messages of random payload sizes in [0, 70000], about a
// quarter of them with 1-3 eventfds, each eventfd holding a distinct value
// (taken from `next_fd_value`). Sizes are log-uniform: every order of
// magnitude is as likely, so headers and small messages get cut as often as
// bodies above the assembler's 64 KiB receive size, and kOneByte stays
// affordable (a uniform draw would cost it 10 million sendmsg calls).
std::vector<OutboundMessage> MakeTraffic(uint32_t seed, int count, uint64_t& next_fd_value,
                                         std::vector<SentMessage>& sent) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> log_size(0.0, std::log(70001.0));
  std::vector<OutboundMessage> out;
  for (int i = 0; i < count; ++i) {
    const size_t payload_size =
        std::min<size_t>(70000, static_cast<size_t>(std::exp(log_size(rng)) - 1.0));
    OutboundMessage m;
    m.bytes = wire::StartMessage(payload_size);
    for (size_t b = 0; b < payload_size; ++b) m.bytes.push_back(static_cast<uint8_t>(rng()));
    wire::FinishMessage(wire::CommandHeader(static_cast<uint16_t>(i), wire::Command::kDmaMap),
                        m.bytes);
    SentMessage record{m.bytes, {}};
    if (rng() % 4 == 0) {
      const int num_fds = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < num_fds; ++f) {
        UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
        EXPECT_TRUE(fd.valid());
        const uint64_t value = next_fd_value++;
        EXPECT_EQ(::write(fd.get(), &value, sizeof value), static_cast<ssize_t>(sizeof value));
        m.fds.push_back(std::move(fd));
        record.fd_values.push_back(value);
      }
    }
    sent.push_back(std::move(record));
    out.push_back(std::move(m));
  }
  return out;
}

// Sends `messages` on `fd` while reading replies, until `expected` replies
// have arrived. Sending and receiving interleave, as back-pressure through
// the proxy requires.
std::vector<InboundMessage> Exchange(int fd, std::vector<OutboundMessage> messages,
                                     size_t expected) {
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageWriter writer;
  for (OutboundMessage& m : messages) writer.Enqueue(std::move(m));
  MessageReader reader(kMaxMessageSize, kMaxFds);
  std::vector<InboundMessage> received;
  while (received.size() < expected) {
    absl::Status flush = writer.Flush(fd, sys);
    EXPECT_OK(flush);
    if (!flush.ok()) break;
    if (!WaitFor(fd, static_cast<short>(POLLIN | (writer.empty() ? 0 : POLLOUT)))) {
      ADD_FAILURE() << "no progress after " << received.size() << " replies";
      break;
    }
    absl::Status read = reader.ReadAvailable(fd, sys, received);
    EXPECT_OK(read);
    if (!read.ok()) break;
  }
  return received;
}

// Checks that `received` is `sent`, message by message, each with its own
// fds in order (read back through the eventfd values).
void ExpectIntact(const std::vector<SentMessage>& sent, std::vector<InboundMessage>& received) {
  ASSERT_EQ(received.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    ASSERT_EQ(received[i].bytes, sent[i].bytes) << "message " << i;
    EXPECT_FALSE(received[i].fds_truncated) << "message " << i;
    ASSERT_EQ(received[i].fds.size(), sent[i].fd_values.size()) << "message " << i;
    for (size_t f = 0; f < received[i].fds.size(); ++f) {
      uint64_t value = 0;
      ASSERT_EQ(::read(received[i].fds[f].get(), &value, sizeof value),
                static_cast<ssize_t>(sizeof value));
      EXPECT_EQ(value, sent[i].fd_values[f]) << "message " << i << " fd " << f;
    }
  }
}

uint64_t TotalBytes(const std::vector<SentMessage>& sent) {
  uint64_t total = 0;
  for (const SentMessage& m : sent) total += m.bytes.size();
  return total;
}

uint64_t TotalFds(const std::vector<SentMessage>& sent) {
  uint64_t total = 0;
  for (const SentMessage& m : sent) total += m.fd_values.size();
  return total;
}

FragmentingProxy::Options ProxyOptions(const ScopedTempDir& dir, const std::string& upstream,
                                       FragmentPolicy to_upstream = FragmentPolicy::Whole(),
                                       FragmentPolicy to_client = FragmentPolicy::Whole()) {
  FragmentingProxy::Options options;
  options.listen_path = dir.File("proxy");
  options.upstream_path = dir.File(upstream);
  options.to_upstream = to_upstream;
  options.to_client = to_client;
  return options;
}

struct PolicyCase {
  std::string name;
  FragmentPolicy policy;
};

class FragmentingProxyPolicyTest : public ::testing::TestWithParam<PolicyCase> {};

// 300 random messages echo through the proxy cut by the policy both ways:
// all arrive intact, in order, with their own fds, and the counters show the
// policy's fragmentation.
TEST_P(FragmentingProxyPolicyTest, EchoesRandomTrafficIntact) {
  constexpr int kMessages = 300;
  ScopedTempDir dir;
  EchoServer server;
  ASSERT_OK(server.Start(dir.File("echo")));
  FragmentingProxy proxy(ProxyOptions(dir, "echo", GetParam().policy, GetParam().policy));
  ASSERT_OK(proxy.Start());

  uint64_t next_fd_value = 1000;
  std::vector<SentMessage> sent;
  std::vector<OutboundMessage> traffic = MakeTraffic(/*seed=*/17, kMessages, next_fd_value, sent);
  // The draw covers headers alone and bodies beyond one 64 KiB receive.
  size_t smallest = SIZE_MAX, largest = 0;
  for (const SentMessage& m : sent) {
    smallest = std::min(smallest, m.bytes.size());
    largest = std::max(largest, m.bytes.size());
  }
  EXPECT_EQ(smallest, wire::kHeaderSize);
  EXPECT_GT(largest, 65536u);

  ASSERT_OK_AND_ASSIGN(UniqueFd client, ConnectUnix(dir.File("proxy")));
  std::vector<InboundMessage> received = Exchange(client.get(), std::move(traffic), kMessages);
  ExpectIntact(sent, received);

  client.reset();
  proxy.Stop();  // joins: the counters are final
  const FragmentingProxy::Stats stats = proxy.stats();
  const uint64_t bytes = TotalBytes(sent);
  EXPECT_EQ(stats.connections_accepted, 1u);
  for (const FragmentingProxy::DirectionStats& d : {stats.to_upstream, stats.to_client}) {
    EXPECT_EQ(d.messages, static_cast<uint64_t>(kMessages));
    EXPECT_EQ(d.bytes, bytes);
    EXPECT_EQ(d.fds, TotalFds(sent));
    EXPECT_GE(d.sendmsg_calls, d.fragments);
    switch (GetParam().policy.mode) {
      case FragmentPolicy::Mode::kWhole:
        EXPECT_EQ(d.fragments, d.messages);
        break;
      case FragmentPolicy::Mode::kOneByte:
        // A one-byte send is never short: one sendmsg per byte exactly.
        EXPECT_EQ(d.fragments, bytes);
        EXPECT_EQ(d.sendmsg_calls, bytes);
        break;
      case FragmentPolicy::Mode::kSplitAt:
        EXPECT_EQ(d.fragments, 2 * d.messages);
        break;
      case FragmentPolicy::Mode::kRandomChunks:
        EXPECT_GE(d.fragments, bytes / GetParam().policy.max_chunk);
        break;
    }
  }
  if (GetParam().policy.mode == FragmentPolicy::Mode::kRandomChunks) {
    // The client queues everything at once, so the proxy sees messages
    // back to back and coalesces some of them.
    EXPECT_GT(stats.to_upstream.coalesced_fragments + stats.to_client.coalesced_fragments, 0u);
  } else {
    EXPECT_EQ(stats.to_upstream.coalesced_fragments, 0u);
    EXPECT_EQ(stats.to_client.coalesced_fragments, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllPolicies, FragmentingProxyPolicyTest,
    ::testing::Values(PolicyCase{"Whole", FragmentPolicy::Whole()},
                      PolicyCase{"OneByte", FragmentPolicy::OneByte()},
                      PolicyCase{"SplitAt", FragmentPolicy::SplitAt()},
                      PolicyCase{"RandomChunks", FragmentPolicy::RandomChunks(/*seed=*/5)}),
    [](const ::testing::TestParamInfo<PolicyCase>& info) { return info.param.name; });

// kSplitAt cuts every message in two and the halves arrive intact. With 46
// equal 24-byte messages the split point ((i mod 23) + 1) walks every offset
// of that size twice, from inside the header to the last byte.
TEST(FragmentingProxyTest, SplitAtCutsEveryMessageInTwo) {
  ScopedTempDir dir;
  EchoServer server;
  ASSERT_OK(server.Start(dir.File("echo")));
  FragmentingProxy proxy(ProxyOptions(dir, "echo", FragmentPolicy::SplitAt()));
  ASSERT_OK(proxy.Start());

  // 24-byte messages: 23 split points, walked through twice.
  std::vector<SentMessage> sent;
  std::vector<OutboundMessage> traffic;
  for (int i = 0; i < 46; ++i) {
    OutboundMessage m;
    m.bytes = wire::StartMessage(8);
    for (int b = 0; b < 8; ++b) m.bytes.push_back(static_cast<uint8_t>(i + b));
    wire::FinishMessage(wire::CommandHeader(static_cast<uint16_t>(i), wire::Command::kDmaMap),
                        m.bytes);
    sent.push_back({m.bytes, {}});
    traffic.push_back(std::move(m));
  }
  ASSERT_OK_AND_ASSIGN(UniqueFd client, ConnectUnix(dir.File("proxy")));
  std::vector<InboundMessage> received = Exchange(client.get(), std::move(traffic), sent.size());
  ExpectIntact(sent, received);
  proxy.Stop();
  EXPECT_EQ(proxy.stats().to_upstream.fragments, 2 * sent.size());
  EXPECT_EQ(proxy.stats().to_client.fragments, sent.size());
}

// The upstream hanging up closes the client's connection: the client reads
// end-of-stream.
TEST(FragmentingProxyTest, UpstreamCloseReachesClient) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(UniqueFd upstream_listener, ListenUnix(dir.File("up")));
  FragmentingProxy proxy(ProxyOptions(dir, "up"));
  ASSERT_OK(proxy.Start());

  ASSERT_OK_AND_ASSIGN(UniqueFd client, ConnectUnix(dir.File("proxy")));
  UniqueFd upstream = AcceptOne(upstream_listener.get());
  ASSERT_TRUE(upstream.valid());
  upstream.reset();

  ASSERT_TRUE(WaitFor(client.get(), POLLIN));
  MessageReader reader(kMaxMessageSize, kMaxFds);
  std::vector<InboundMessage> received;
  EXPECT_THAT(reader.ReadAvailable(client.get(), PosixSyscalls::Instance(), received),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(received.empty());
  proxy.Stop();
  EXPECT_EQ(proxy.stats().connections_closed, 1u);
}

// A client that sends and hangs up at once still has its messages (and
// fds) delivered, one byte per send, before the upstream sees the close.
TEST(FragmentingProxyTest, ClientCloseReachesUpstreamAfterItsMessages) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(UniqueFd upstream_listener, ListenUnix(dir.File("up")));
  FragmentingProxy proxy(ProxyOptions(dir, "up", FragmentPolicy::OneByte()));
  ASSERT_OK(proxy.Start());

  uint64_t next_fd_value = 1000;
  std::vector<SentMessage> sent;
  std::vector<OutboundMessage> traffic = MakeTraffic(/*seed=*/3, 20, next_fd_value, sent);
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd client, ConnectUnix(dir.File("proxy")));
    MessageWriter writer;
    for (OutboundMessage& m : traffic) writer.Enqueue(std::move(m));
    while (!writer.empty()) {
      ASSERT_OK(writer.Flush(client.get(), PosixSyscalls::Instance()));
      if (!writer.empty()) {
        ASSERT_TRUE(WaitFor(client.get(), POLLOUT));
      }
    }
  }  // the client hangs up with its messages possibly still in the proxy

  UniqueFd upstream = AcceptOne(upstream_listener.get());
  ASSERT_TRUE(upstream.valid());
  MessageReader reader(kMaxMessageSize, kMaxFds);
  std::vector<InboundMessage> received;
  absl::Status status;
  while (status.ok()) {
    ASSERT_TRUE(WaitFor(upstream.get(), POLLIN));
    status = reader.ReadAvailable(upstream.get(), PosixSyscalls::Instance(), received);
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable));
  ExpectIntact(sent, received);
}

// Clients come and go one after another; each gets its own upstream
// connection and a clean stream.
TEST(FragmentingProxyTest, ServesClientsOneAfterAnother) {
  ScopedTempDir dir;
  EchoServer server;
  ASSERT_OK(server.Start(dir.File("echo")));
  FragmentingProxy proxy(ProxyOptions(dir, "echo", FragmentPolicy::RandomChunks(/*seed=*/1, 512),
                                      FragmentPolicy::SplitAt()));
  ASSERT_OK(proxy.Start());
  uint64_t next_fd_value = 1000;
  for (uint32_t round = 0; round < 3; ++round) {
    std::vector<SentMessage> sent;
    std::vector<OutboundMessage> traffic = MakeTraffic(round, 20, next_fd_value, sent);
    ASSERT_OK_AND_ASSIGN(UniqueFd client, ConnectUnix(dir.File("proxy")));
    std::vector<InboundMessage> received = Exchange(client.get(), std::move(traffic), 20);
    ExpectIntact(sent, received);
  }
  proxy.Stop();
  EXPECT_EQ(proxy.stats().connections_accepted, 3u);
}

// Stop() removes the socket file, and the path can be listened on again.
TEST(FragmentingProxyTest, StopUnlinksTheSocket) {
  ScopedTempDir dir;
  FragmentingProxy proxy(ProxyOptions(dir, "up"));
  ASSERT_OK(proxy.Start());
  struct stat st;
  EXPECT_EQ(::lstat(dir.File("proxy").c_str(), &st), 0);
  proxy.Stop();
  EXPECT_NE(::lstat(dir.File("proxy").c_str(), &st), 0);
  EXPECT_THAT(proxy.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace vfu::testing
