// MessageWriter against a scripted sendmsg: gather writes of messages made
// of owned bytes and borrowed spans resume at the exact byte after short
// writes and EAGAIN, and OwnBorrowedBytes() keeps what is sent unchanged.
#include "vfu/transport/message_writer.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/syscalls.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;

// Takes at most the next scripted number of bytes per sendmsg (0: EAGAIN),
// everything once the script is done, and records what it took.
class ScriptedSends : public Syscalls {
 public:
  explicit ScriptedSends(std::deque<size_t> script) : script_(std::move(script)) {}

  SyscallResult RecvMsg(int, struct msghdr*, int) override { return {-1, ENOSYS}; }

  SyscallResult SendMsg(int, const struct msghdr* msg, int) override {
    size_t limit = SIZE_MAX;
    if (!script_.empty()) {
      limit = script_.front();
      script_.pop_front();
    }
    if (limit == 0) return {-1, EAGAIN};
    ++sends_;
    iovecs_ = std::max(iovecs_, static_cast<size_t>(msg->msg_iovlen));
    if (msg->msg_controllen > 0) fd_send_offsets_.push_back(wire_.size());
    size_t taken = 0;
    for (size_t i = 0; i < msg->msg_iovlen && taken < limit; ++i) {
      const auto* base = static_cast<const uint8_t*>(msg->msg_iov[i].iov_base);
      const size_t n = std::min(msg->msg_iov[i].iov_len, limit - taken);
      wire_.insert(wire_.end(), base, base + n);
      taken += n;
    }
    return {static_cast<ssize_t>(taken), 0};
  }

  const std::vector<uint8_t>& wire() const { return wire_; }
  size_t sends() const { return sends_; }
  size_t max_iovecs() const { return iovecs_; }
  const std::vector<size_t>& fd_send_offsets() const { return fd_send_offsets_; }

 private:
  std::deque<size_t> script_;
  std::vector<uint8_t> wire_;
  size_t sends_ = 0;
  size_t iovecs_ = 0;
  std::vector<size_t> fd_send_offsets_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13);
  return v;
}

// Three messages, two of them with borrowed spans, go out byte for byte
// whatever the cut points: inside `bytes`, exactly at a segment boundary,
// inside a borrowed span, and with EAGAIN in between.
TEST(MessageWriterTest, GatherWriteResumesAtTheExactByte) {
  const std::vector<uint8_t> head1 = Pattern(32, 1), data1 = Pattern(5000, 2),
                             tail1 = Pattern(4, 3), head2 = Pattern(16, 4),
                             head3 = Pattern(32, 5), data3 = Pattern(3000, 6);
  std::vector<uint8_t> expected;
  for (const auto* part : {&head1, &data1, &tail1, &head2, &head3, &data3}) {
    expected.insert(expected.end(), part->begin(), part->end());
  }
  // Cut points: 10 bytes into head1, the end of head1, 1 byte, EAGAIN, the
  // rest of data1 but one, that byte, then the rest in odd pieces.
  ScriptedSends sends({10, 22, 1, 0, 4998, 1, 7, 0, 1000, 2999});
  MessageWriter writer;
  writer.Enqueue({head1, {}, {data1, tail1}});
  writer.Enqueue({head2, {}});
  writer.Enqueue({head3, {}, {data3}});
  EXPECT_EQ(writer.queued_bytes(), expected.size());
  EXPECT_EQ(writer.borrowing_messages(), 2u);
  while (!writer.empty()) {
    ASSERT_THAT(writer.Flush(-1, sends), IsOk());
    EXPECT_EQ(writer.queued_bytes(), expected.size() - sends.wire().size());
  }
  EXPECT_EQ(sends.wire(), expected);
  EXPECT_EQ(writer.borrowing_messages(), 0u);
  EXPECT_EQ(sends.max_iovecs(), 6u) << "all segments should leave in one sendmsg";
}

// A message with a still_wanted() predicate is asked just before its first
// byte leaves, not when it is queued: one given up while the socket was full
// is dropped, one still wanted goes out, and one already started is finished
// whatever its predicate says later (the stream must stay framed).
TEST(MessageWriterTest, MessageNoLongerWantedIsDroppedBeforeItsFirstByte) {
  const std::vector<uint8_t> reply = Pattern(40, 1), request1 = Pattern(24, 2),
                             request2 = Pattern(24, 3), request3 = Pattern(24, 4);
  bool want1 = true, want2 = true, want3 = true;
  int asked3 = 0;
  // The reply's first 10 bytes, EAGAIN, then 20 bytes (the rest of the reply
  // and nothing else: requests are not gathered behind it), then all.
  ScriptedSends sends({10, 0, 30, 0, 5, 0});
  MessageWriter writer;
  writer.Enqueue({reply, {}});
  OutboundMessage m1{request1, {}};
  m1.still_wanted = [&] { return want1; };
  writer.Enqueue(std::move(m1));
  OutboundMessage m2{request2, {}};
  m2.still_wanted = [&] { return want2; };
  writer.Enqueue(std::move(m2));
  OutboundMessage m3{request3, {}};
  m3.still_wanted = [&] { return ++asked3, want3; };
  writer.Enqueue(std::move(m3));

  ASSERT_THAT(writer.Flush(-1, sends), IsOk());  // 10 bytes, then EAGAIN
  want1 = false;  // its caller gives up while it waits behind the reply
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());  // the reply's rest, then EAGAIN
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());  // 5 bytes of request2, EAGAIN
  want2 = false;  // too late: its first bytes are on the wire
  while (!writer.empty()) ASSERT_THAT(writer.Flush(-1, sends), IsOk());

  std::vector<uint8_t> expected = reply;
  expected.insert(expected.end(), request2.begin(), request2.end());
  expected.insert(expected.end(), request3.begin(), request3.end());
  EXPECT_EQ(sends.wire(), expected);
  EXPECT_EQ(writer.dropped_messages(), 1u);
  EXPECT_EQ(writer.queued_bytes(), 0u);
  EXPECT_GE(asked3, 1);
}

// Borrowed memory may change once OwnBorrowedBytes() has run, even in the
// middle of a message: what goes out is what was borrowed.
TEST(MessageWriterTest, OwnBorrowedBytesKeepsWhatIsSent) {
  std::vector<uint8_t> memory = Pattern(10000, 9);
  const std::vector<uint8_t> original = memory;
  const std::vector<uint8_t> head = Pattern(32, 7);
  ScriptedSends sends({40, 0});
  MessageWriter writer;
  writer.Enqueue({head, {}, {absl::MakeConstSpan(memory).subspan(100, 6000)}});
  writer.Enqueue({head, {}, {absl::MakeConstSpan(memory).subspan(0, 50)}});
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  ASSERT_EQ(sends.wire().size(), 40u);
  writer.OwnBorrowedBytes();
  EXPECT_EQ(writer.borrowing_messages(), 0u);
  std::fill(memory.begin(), memory.end(), 0xee);
  while (!writer.empty()) ASSERT_THAT(writer.Flush(-1, sends), IsOk());

  std::vector<uint8_t> expected = head;
  expected.insert(expected.end(), original.begin() + 100, original.begin() + 6100);
  expected.insert(expected.end(), head.begin(), head.end());
  expected.insert(expected.end(), original.begin(), original.begin() + 50);
  EXPECT_EQ(sends.wire(), expected);
}

// More segments than one sendmsg gathers go out over several, in order.
TEST(MessageWriterTest, ManySegmentsSpanSeveralSends) {
  std::vector<std::vector<uint8_t>> parts;
  std::vector<uint8_t> expected;
  MessageWriter writer;
  for (int i = 0; i < 50; ++i) {
    parts.push_back(Pattern(3 + i, static_cast<uint8_t>(i)));
  }
  for (int i = 0; i < 25; ++i) {
    const std::vector<uint8_t>& head = parts[2 * i];
    const std::vector<uint8_t>& data = parts[2 * i + 1];
    expected.insert(expected.end(), head.begin(), head.end());
    expected.insert(expected.end(), data.begin(), data.end());
    expected.insert(expected.end(), data.begin(), data.end());
    writer.Enqueue({head, {}, {data, data}});
  }
  ScriptedSends sends({});
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  EXPECT_TRUE(writer.empty());
  EXPECT_EQ(sends.wire(), expected);
  EXPECT_EQ(sends.max_iovecs(), MessageWriter::kMaxIovecs);
  EXPECT_EQ(sends.sends(), 2u);
}

// queued_fds() counts the fds still queued: each leaves (and is closed
// here) with its message's first byte, and Clear() closes the rest.
TEST(MessageWriterTest, CountsQueuedFdsUntilTheyLeave) {
  auto with_fds = [](int n) {
    OutboundMessage m{Pattern(20, 1), {}};
    for (int i = 0; i < n; ++i) m.fds.emplace_back(::dup(0));
    return m;
  };
  MessageWriter writer;
  writer.Enqueue(with_fds(2));
  writer.Enqueue({Pattern(20, 2), {}});
  writer.Enqueue(with_fds(3));
  writer.Enqueue(with_fds(1));
  EXPECT_EQ(writer.queued_fds(), 6u);
  // 1 byte of the first message takes its fds; EAGAIN; then the rest of it
  // and the fd-less message; then 1 byte of the third.
  ScriptedSends sends({1, 0, 39, 1, 0});
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  EXPECT_EQ(writer.queued_fds(), 4u);
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  EXPECT_EQ(writer.queued_fds(), 1u);
  writer.Clear();
  EXPECT_EQ(writer.queued_fds(), 0u);
}

}  // namespace
}  // namespace vfu

namespace vfu {
namespace {

// With spare buffers, a message's bytes are given back only once its last
// byte has left (never while a short write leaves part of it queued), with
// their storage intact, and the bytes on the wire are unchanged.
TEST(MessageWriterSpareBuffersTest, SentBytesGoBackOnlyWhenFullySent) {
  SpareBuffers spares;
  std::vector<uint8_t> first = Pattern(300, 7);
  const uint8_t* first_storage = first.data();
  const std::vector<uint8_t> second = Pattern(400, 9);
  std::vector<uint8_t> expected = first;
  expected.insert(expected.end(), second.begin(), second.end());

  ScriptedSends sends({299, 0, 1, 0});
  MessageWriter writer;
  writer.set_spare_buffers(&spares);
  writer.Enqueue({std::move(first), {}});
  writer.Enqueue({second, {}});
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  EXPECT_EQ(spares.size(), 0u) << "one byte of the first message is still queued";
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  ASSERT_EQ(spares.size(), 1u);
  ASSERT_THAT(writer.Flush(-1, sends), IsOk());
  EXPECT_TRUE(writer.empty());
  EXPECT_EQ(sends.wire(), expected);
  EXPECT_EQ(spares.size(), 2u);
  spares.Take();
  EXPECT_EQ(spares.Take().data(), first_storage);
}

}  // namespace
}  // namespace vfu
