// MessageWriter -> real socketpair -> MessageReader: byte-exact delivery and
// fd attribution through the kernel, with a tiny send buffer forcing short
// writes and EAGAIN.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/syscalls.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

struct SocketPair {
  UniqueFd a, b;
};

SocketPair MakeSocketPair(int sndbuf) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  if (sndbuf > 0) {
    ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  }
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

OutboundMessage MakeMessage(uint16_t id, size_t payload_size, int num_fds) {
  OutboundMessage m;
  m.bytes = wire::StartMessage(payload_size);
  for (size_t i = 0; i < payload_size; ++i) m.bytes.push_back(static_cast<uint8_t>(id * 7 + i));
  wire::FinishMessage(wire::CommandHeader(id, wire::Command::kDmaMap), m.bytes);
  for (int i = 0; i < num_fds; ++i) m.fds.emplace_back(::eventfd(id, EFD_CLOEXEC));
  return m;
}

// Reads an eventfd's counter, which MakeMessage set to the message id.
uint64_t EventfdValue(int fd) {
  uint64_t v = 0;
  EXPECT_EQ(::read(fd, &v, sizeof v), static_cast<ssize_t>(sizeof v));
  return v;
}

// 500 messages of random sizes, some with fds, cross a socket whose buffers
// are tiny: every message arrives intact, in order, with exactly its own fds.
TEST(SocketTransportTest, RandomTrafficSurvivesShortWrites) {
  SocketPair pair = MakeSocketPair(4096);
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageWriter writer;
  MessageReader reader(1 << 20, 4);
  std::mt19937 rng(42);
  std::vector<OutboundMessage> expected;
  for (uint16_t id = 1; id <= 500; ++id) {
    size_t size = std::uniform_int_distribution<size_t>(0, 20000)(rng);
    int nfds = std::uniform_int_distribution<int>(0, 5)(rng) == 0 ? 1 + id % 3 : 0;
    OutboundMessage m = MakeMessage(id, size, nfds);
    OutboundMessage copy{m.bytes, {}};
    for (int i = 0; i < nfds; ++i) copy.fds.emplace_back(-1);  // count only
    expected.push_back(std::move(copy));
    writer.Enqueue(std::move(m));
  }
  std::vector<InboundMessage> received;
  int rounds = 0;
  while (received.size() < expected.size()) {
    ASSERT_THAT(writer.Flush(pair.a.get(), sys), IsOk());
    ASSERT_THAT(reader.ReadAvailable(pair.b.get(), sys, received), IsOk());
    ASSERT_LT(++rounds, 1000000) << "no progress";
  }
  EXPECT_TRUE(writer.empty());
  EXPECT_GT(rounds, 10) << "the small buffer should have forced many rounds";
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(received[i].bytes, expected[i].bytes) << i;
    ASSERT_EQ(received[i].fds.size(), expected[i].fds.size()) << i;
    EXPECT_FALSE(received[i].fds_truncated);
    for (UniqueFd& fd : received[i].fds) {
      EXPECT_EQ(EventfdValue(fd.get()), received[i].header.msg_id);
    }
  }
}

// Large messages (received in place by the reader), sent partly from
// borrowed memory, cross a socket with tiny buffers among small ones, some
// with fds: each arrives byte for byte, with exactly its own fds.
TEST(SocketTransportTest, LargeBorrowedMessagesSurviveShortWrites) {
  SocketPair pair = MakeSocketPair(4096);
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageWriter writer;
  MessageReader reader(2 << 20, 4);
  std::vector<uint8_t> memory(1 << 20);
  for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<uint8_t>(i * 31 + 7);
  std::vector<std::vector<uint8_t>> expected;
  std::vector<size_t> expected_fds;
  for (uint16_t id = 1; id <= 12; ++id) {
    const size_t borrowed = id % 3 == 0 ? 0 : (id * 97 * 1024) % (memory.size() - 70000) + 70000;
    const int nfds = id % 4 == 1 ? 2 : 0;
    OutboundMessage m = MakeMessage(id, 40, nfds);
    m.borrowed.push_back(absl::MakeConstSpan(memory).subspan(0, borrowed));
    // msg_size covers the borrowed bytes too.
    wire::Header h = wire::DecodeHeader(m.bytes);
    h.msg_size = static_cast<uint32_t>(m.size());
    wire::EncodeHeader(h, absl::MakeSpan(m.bytes));
    std::vector<uint8_t> whole = m.bytes;
    whole.insert(whole.end(), memory.begin(), memory.begin() + borrowed);
    expected.push_back(std::move(whole));
    expected_fds.push_back(nfds);
    writer.Enqueue(std::move(m));
  }
  std::vector<InboundMessage> received;
  int rounds = 0;
  while (received.size() < expected.size()) {
    ASSERT_THAT(writer.Flush(pair.a.get(), sys), IsOk());
    ASSERT_THAT(reader.ReadAvailable(pair.b.get(), sys, received), IsOk());
    ASSERT_LT(++rounds, 10000000) << "no progress";
  }
  EXPECT_TRUE(writer.empty());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(received[i].bytes, expected[i]) << i;
    ASSERT_EQ(received[i].fds.size(), expected_fds[i]) << i;
    for (UniqueFd& fd : received[i].fds) {
      EXPECT_EQ(EventfdValue(fd.get()), received[i].header.msg_id);
    }
  }
}

// More fds than the reader allows: the message is marked truncated, and the
// stream continues.
TEST(SocketTransportTest, TooManyFdsAreTruncated) {
  SocketPair pair = MakeSocketPair(0);
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageWriter writer;
  MessageReader reader(1 << 20, 2);
  writer.Enqueue(MakeMessage(1, 8, 5));
  writer.Enqueue(MakeMessage(2, 8, 1));
  ASSERT_THAT(writer.Flush(pair.a.get(), sys), IsOk());
  std::vector<InboundMessage> received;
  while (received.size() < 2) {
    ASSERT_THAT(reader.ReadAvailable(pair.b.get(), sys, received), IsOk());
  }
  EXPECT_TRUE(received[0].fds_truncated);
  EXPECT_LE(received[0].fds.size(), 3u);
  EXPECT_FALSE(received[1].fds_truncated);
  EXPECT_EQ(received[1].fds.size(), 1u);
}

// The peer closing is reported as Unavailable, on both sides.
TEST(SocketTransportTest, PeerCloseIsUnavailable) {
  SocketPair pair = MakeSocketPair(0);
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageReader reader(1 << 20, 1);
  std::vector<InboundMessage> received;
  pair.a.reset();
  EXPECT_THAT(reader.ReadAvailable(pair.b.get(), sys, received),
              StatusIs(absl::StatusCode::kUnavailable));
  MessageWriter writer;
  writer.Enqueue(MakeMessage(1, 8, 0));
  EXPECT_THAT(writer.Flush(pair.b.get(), sys), StatusIs(absl::StatusCode::kUnavailable));
}

// A socket that stops taking bytes leaves the queue with the exact remainder.
TEST(SocketTransportTest, FullSocketKeepsRemainderQueued) {
  SocketPair pair = MakeSocketPair(4096);
  PosixSyscalls& sys = PosixSyscalls::Instance();
  MessageWriter writer;
  for (uint16_t i = 0; i < 100; ++i) writer.Enqueue(MakeMessage(i, 4000, 0));
  const size_t total = writer.queued_bytes();
  ASSERT_THAT(writer.Flush(pair.a.get(), sys), IsOk());
  EXPECT_FALSE(writer.empty());
  EXPECT_LT(writer.queued_bytes(), total);
  // Drain the peer by hand and count bytes: queued + drained == total.
  size_t drained = 0;
  std::vector<uint8_t> buf(1 << 16);
  while (true) {
    ssize_t n = ::read(pair.b.get(), buf.data(), buf.size());
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  EXPECT_EQ(drained + writer.queued_bytes(), total);
}

}  // namespace
}  // namespace vfu
