// Receiving a large reply's data straight into a waiting caller's memory
// (ReplySink + MessageAssembler).
#include "vfu/transport/reply_sink.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/transport/message_assembler.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;

constexpr uint16_t kReplyId = 7;
constexpr size_t kThreshold = 64;

// A DMA_READ reply with message ID `id`: `head` bytes of fields after the
// header, `data`, then `tail` bytes (as in the QEMU layout).
std::vector<uint8_t> MakeReply(uint16_t id, size_t head, const std::vector<uint8_t>& data,
                               size_t tail) {
  std::vector<uint8_t> m = wire::StartMessage(head + data.size() + tail);
  for (size_t i = 0; i < head; ++i) m.push_back(static_cast<uint8_t>(0xa0 + i));
  m.insert(m.end(), data.begin(), data.end());
  for (size_t i = 0; i < tail; ++i) m.push_back(static_cast<uint8_t>(0xe0 + i));
  wire::Header request = wire::CommandHeader(id, wire::Command::kDmaRead);
  wire::FinishMessage(wire::ReplyHeader(request), m);
  return m;
}

std::vector<uint8_t> MakeCommand(uint16_t id, size_t payload) {
  std::vector<uint8_t> m = wire::StartMessage(payload);
  for (size_t i = 0; i < payload; ++i) m.push_back(static_cast<uint8_t>(id * 3 + i));
  wire::FinishMessage(wire::CommandHeader(id, wire::Command::kRegionWrite), m);
  return m;
}

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + 1);
  return v;
}

// Looks up `sink` for replies with kReplyId.
MessageAssembler::ReplySinkLookup LookupFor(std::shared_ptr<ReplySink> sink) {
  return [sink](const wire::Header& h) -> std::shared_ptr<ReplySink> {
    return h.is_reply() && h.msg_id == kReplyId ? sink : nullptr;
  };
}

// Feeds `stream` in three pieces cut at i and j, as a socket reader would.
std::vector<InboundMessage> Feed(MessageAssembler& assembler, absl::Span<const uint8_t> stream,
                                 size_t i, size_t j) {
  std::vector<InboundMessage> out;
  for (auto [from, to] : {std::pair{size_t{0}, i}, {i, j}, {j, stream.size()}}) {
    const MessageAssembler::Space space = assembler.ReceiveSpace();
    EXPECT_GE(space.size(), to - from);
    space.Scatter(stream.subspan(from, to - from));
    assembler.Commit(to - from, {}, false);
    EXPECT_THAT(assembler.TakeMessages(out), IsOk());
  }
  return out;
}

// The data lands in the caller's memory at every pair of cut points, in
// both layouts; the message keeps the rest, and what follows is intact.
TEST(ReplySinkTest, DataLandsInTheSinkWhereverTheStreamIsCut) {
  const std::vector<uint8_t> data = Pattern(300);
  for (size_t tail : {size_t{0}, size_t{4}}) {
    const size_t head = 16 - tail;
    const std::vector<uint8_t> reply = MakeReply(kReplyId, head, data, tail);
    const std::vector<uint8_t> next = MakeCommand(9, 5);
    std::vector<uint8_t> stream = reply;
    stream.insert(stream.end(), next.begin(), next.end());
    std::vector<uint8_t> expected_rest(reply.begin(), reply.begin() + 16 + head);
    expected_rest.insert(expected_rest.end(), reply.end() - tail, reply.end());

    for (size_t i = 0; i <= stream.size(); i += 7) {
      for (size_t j = i; j <= stream.size(); j += 11) {
        SCOPED_TRACE(::testing::Message() << "tail " << tail << " cuts " << i << ", " << j);
        std::vector<uint8_t> dest(data.size(), 0);
        auto sink = std::make_shared<ReplySink>(reply.size(), 16 + head, absl::MakeSpan(dest));
        MessageAssembler assembler(1 << 20, kThreshold);
        assembler.set_reply_sink_lookup(LookupFor(sink));
        std::vector<InboundMessage> out = Feed(assembler, stream, i, j);
        ASSERT_EQ(out.size(), 2u);
        EXPECT_EQ(out[0].header.msg_size, reply.size());
        // In place (and so into the sink) once a piece ends after the
        // header but before the reply's end; a reply arriving whole with
        // its header is an ordinary message.
        const size_t r = reply.size();
        if ((i >= 16 && i < r) || (j >= 16 && j < r)) {
          EXPECT_EQ(out[0].sunk_bytes, data.size());
          EXPECT_EQ(out[0].bytes, expected_rest);
          EXPECT_EQ(dest, data);
        } else {
          EXPECT_EQ(out[0].sunk_bytes, 0u);
          EXPECT_EQ(out[0].bytes, reply);
          EXPECT_EQ(dest, std::vector<uint8_t>(data.size(), 0));
        }
        EXPECT_EQ(out[1].bytes, next);
        EXPECT_EQ(out[1].sunk_bytes, 0u);
        EXPECT_FALSE(assembler.receiving_in_place());
      }
    }
  }
}

// A reply of another size (an error reply, or a malformed one) is an
// ordinary message: the sink's memory is not touched.
TEST(ReplySinkTest, ReplyOfAnotherSizeIsOrdinary) {
  const std::vector<uint8_t> reply = MakeReply(kReplyId, 16, Pattern(200), 0);
  std::vector<uint8_t> dest(300, 0);
  auto sink = std::make_shared<ReplySink>(16 + 16 + 300, 32, absl::MakeSpan(dest));
  MessageAssembler assembler(1 << 20, kThreshold);
  assembler.set_reply_sink_lookup(LookupFor(sink));
  std::vector<InboundMessage> out = Feed(assembler, reply, 40, 100);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(assembler.receiving_into_sink());
  EXPECT_EQ(out[0].sunk_bytes, 0u);
  EXPECT_EQ(out[0].bytes, reply);
  EXPECT_EQ(dest, std::vector<uint8_t>(300, 0));
}

// A sink revoked before its reply starts is not used.
TEST(ReplySinkTest, RevokedSinkBeforeTheReplyIsNotUsed) {
  const std::vector<uint8_t> data = Pattern(300);
  const std::vector<uint8_t> reply = MakeReply(kReplyId, 16, data, 0);
  std::vector<uint8_t> dest(data.size(), 0);
  auto sink = std::make_shared<ReplySink>(reply.size(), 32, absl::MakeSpan(dest));
  sink->Revoke();
  MessageAssembler assembler(1 << 20, kThreshold);
  assembler.set_reply_sink_lookup(LookupFor(sink));
  std::vector<InboundMessage> out = Feed(assembler, reply, 20, 200);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sunk_bytes, 0u);
  EXPECT_EQ(out[0].bytes, reply);
  EXPECT_EQ(dest, std::vector<uint8_t>(data.size(), 0));
}

// Revoked halfway (the caller timed out): nothing more is written into the
// caller's memory, the rest of the reply is skipped, and the next message
// still arrives whole.
TEST(ReplySinkTest, RevokedHalfwaySkipsTheRestOfTheReply) {
  const std::vector<uint8_t> data = Pattern(1000);
  const std::vector<uint8_t> reply = MakeReply(kReplyId, 16, data, 0);
  const std::vector<uint8_t> next = MakeCommand(9, 5);
  std::vector<uint8_t> stream = reply;
  stream.insert(stream.end(), next.begin(), next.end());
  std::vector<uint8_t> dest(data.size(), 0);
  auto sink = std::make_shared<ReplySink>(reply.size(), 32, absl::MakeSpan(dest));
  MessageAssembler assembler(1 << 20, kThreshold);
  assembler.set_reply_sink_lookup(LookupFor(sink));

  std::vector<InboundMessage> out;
  const absl::Span<const uint8_t> all(stream);
  assembler.Append(all.first(532));  // header, fields, 500 data bytes
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_TRUE(assembler.receiving_into_sink());
  sink->Revoke();
  assembler.Append(all.subspan(532, 300));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  EXPECT_FALSE(assembler.receiving_into_sink());
  assembler.Append(all.subspan(832));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());

  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes, next);
  EXPECT_TRUE(std::equal(dest.begin(), dest.begin() + 500, data.begin()));
  EXPECT_EQ(std::vector<uint8_t>(dest.begin() + 500, dest.end()),
            std::vector<uint8_t>(500, 0));
  EXPECT_EQ(assembler.buffered_bytes(), 0u);
}

// Revoke() waits while a receive into the sink is under way, and returns as
// soon as it is committed.
TEST(ReplySinkTest, RevokeWaitsForAReceiveInProgress) {
  const std::vector<uint8_t> data = Pattern(1000);
  const std::vector<uint8_t> reply = MakeReply(kReplyId, 16, data, 0);
  std::vector<uint8_t> dest(data.size(), 0);
  auto sink = std::make_shared<ReplySink>(reply.size(), 32, absl::MakeSpan(dest));
  MessageAssembler assembler(1 << 20, kThreshold);
  assembler.set_reply_sink_lookup(LookupFor(sink));
  std::vector<InboundMessage> out;
  assembler.Append(absl::MakeConstSpan(reply).first(100));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_TRUE(assembler.receiving_into_sink());

  const MessageAssembler::Space space = assembler.ReceiveSpace();  // locks the sink
  absl::Notification revoked;
  std::thread caller([&] {
    sink->Revoke();
    revoked.Notify();
  });
  // A Revoke() that did not wait would return within microseconds; this
  // bound only gives it the chance to show that.
  EXPECT_FALSE(revoked.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  space.Scatter(absl::MakeConstSpan(reply).subspan(100, 50));
  assembler.Commit(50, {}, false);
  revoked.WaitForNotification();
  caller.join();
  EXPECT_TRUE(std::equal(dest.begin(), dest.begin() + 118, data.begin()));
}

// ReleaseReceiveSpace() unlocks the sink when nothing was received.
TEST(ReplySinkTest, ReleasedReceiveSpaceUnlocksTheSink) {
  const std::vector<uint8_t> reply = MakeReply(kReplyId, 16, Pattern(1000), 0);
  std::vector<uint8_t> dest(1000, 0);
  auto sink = std::make_shared<ReplySink>(reply.size(), 32, absl::MakeSpan(dest));
  MessageAssembler assembler(1 << 20, kThreshold);
  assembler.set_reply_sink_lookup(LookupFor(sink));
  std::vector<InboundMessage> out;
  assembler.Append(absl::MakeConstSpan(reply).first(100));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  assembler.ReceiveSpace();
  assembler.ReleaseReceiveSpace();
  sink->Revoke();  // would deadlock if the sink were still locked
  EXPECT_FALSE(sink->BeginWrite());
}

}  // namespace
}  // namespace vfu
