#include "vfu/transport/message_assembler.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/log.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

// A command message with `payload_size` bytes of a recognisable pattern.
std::vector<uint8_t> MakeMessage(uint16_t id, size_t payload_size) {
  std::vector<uint8_t> m = wire::StartMessage(payload_size);
  for (size_t i = 0; i < payload_size; ++i) m.push_back(static_cast<uint8_t>(id + i));
  wire::FinishMessage(wire::CommandHeader(id, wire::Command::kRegionWrite), m);
  return m;
}

std::vector<UniqueFd> MakeFds(int n) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < n; ++i) fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  return fds;
}

std::vector<uint8_t> Concat(const std::vector<std::vector<uint8_t>>& parts) {
  std::vector<uint8_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// Splitting a two-message stream at every offset still yields both
// messages byte for byte.
TEST(MessageAssemblerTest, EverySplitOffsetOfTwoMessages) {
  std::vector<uint8_t> a = MakeMessage(1, 20), b = MakeMessage(2, 7);
  std::vector<uint8_t> stream = Concat({a, b});
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    MessageAssembler assembler(4096);
    std::vector<InboundMessage> out;
    assembler.Append(absl::MakeConstSpan(stream).subspan(0, cut));
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    assembler.Append(absl::MakeConstSpan(stream).subspan(cut));
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    ASSERT_EQ(out.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(out[0].bytes, a);
    EXPECT_EQ(out[1].bytes, b);
    EXPECT_EQ(assembler.buffered_bytes(), 0u);
  }
}

// One byte at a time: each message appears exactly when its last byte does.
TEST(MessageAssemblerTest, OneByteAtATime) {
  std::vector<uint8_t> a = MakeMessage(1, 3), b = MakeMessage(2, 0);
  std::vector<uint8_t> stream = Concat({a, b});
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  for (size_t i = 0; i < stream.size(); ++i) {
    assembler.Append(absl::MakeConstSpan(stream).subspan(i, 1));
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    size_t expected = (i + 1 >= a.size()) + (i + 1 >= stream.size());
    ASSERT_EQ(out.size(), expected) << "after byte " << i;
  }
  EXPECT_EQ(out[1].header.msg_id, 2);
}

// fds arriving with the piece that holds a message's first byte belong to
// that message, even when the piece also holds the previous message's tail.
TEST(MessageAssemblerTest, FdsBelongToMessageStartingInTheirPiece) {
  std::vector<uint8_t> a = MakeMessage(1, 10), b = MakeMessage(2, 10);
  std::vector<uint8_t> stream = Concat({a, b});
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  // Piece 1: most of a. Piece 2 (with fds): a's last 3 bytes + b's first 5.
  assembler.Append(absl::MakeConstSpan(stream).subspan(0, a.size() - 3));
  assembler.Append(absl::MakeConstSpan(stream).subspan(a.size() - 3, 8), MakeFds(2));
  assembler.Append(absl::MakeConstSpan(stream).subspan(a.size() + 5));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].fds.empty());
  EXPECT_EQ(out[1].fds.size(), 2u);
}

// fds in a piece that starts no message (the peer attached them mid-message)
// are closed with a warning and given to nobody.
TEST(MessageAssemblerTest, FdsWithoutMessageStartAreDropped) {
  std::vector<uint8_t> a = MakeMessage(1, 40), b = MakeMessage(2, 0);
  std::vector<uint8_t> stream = Concat({a, b});
  std::vector<UniqueFd> fds = MakeFds(1);
  int raw = fds[0].get();
  int warnings = 0;
  ScopedLogCapture capture([&](LogLevel level, std::string_view) {
    warnings += level == LogLevel::kWarning;
  });
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  assembler.Append(absl::MakeConstSpan(stream).subspan(0, 20));
  assembler.Append(absl::MakeConstSpan(stream).subspan(20, 10), std::move(fds));
  assembler.Append(absl::MakeConstSpan(stream).subspan(30));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].fds.empty());
  EXPECT_TRUE(out[1].fds.empty());
  EXPECT_EQ(warnings, 1);
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1) << "dropped fd must be closed";
}

// A truncated control message marks the owning message.
TEST(MessageAssemblerTest, TruncatedFdsMarkTheMessage) {
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  assembler.Append(MakeMessage(5, 4), MakeFds(1), /*fds_truncated=*/true);
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].fds_truncated);
  EXPECT_EQ(out[0].fds.size(), 1u);
}

// A message over the limit is reported header-only, its body skipped as it
// arrives (never buffered whole), and the stream stays in sync.
TEST(MessageAssemblerTest, OversizedMessageIsSkipped) {
  std::vector<uint8_t> big = MakeMessage(7, 100000), next = MakeMessage(8, 4);
  MessageAssembler assembler(1024);
  std::vector<InboundMessage> out;
  size_t pos = 0;
  std::vector<uint8_t> stream = Concat({big, next});
  while (pos < stream.size()) {
    size_t n = std::min<size_t>(3000, stream.size() - pos);
    assembler.Append(absl::MakeConstSpan(stream).subspan(pos, n));
    pos += n;
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    EXPECT_LE(assembler.buffered_bytes(), 3000u);
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].oversized);
  EXPECT_EQ(out[0].header.msg_id, 7);
  EXPECT_TRUE(out[0].bytes.empty());
  EXPECT_FALSE(out[1].oversized);
  EXPECT_EQ(out[1].bytes, next);
}

// msg_size below 16 loses framing: an error, after the good messages.
TEST(MessageAssemblerTest, CorruptSizeIsDataLoss) {
  std::vector<uint8_t> good = MakeMessage(1, 2);
  std::vector<uint8_t> bad = MakeMessage(2, 0);
  bad[4] = 15;  // msg_size = 15
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  assembler.Append(Concat({good, bad}));
  EXPECT_THAT(assembler.TakeMessages(out), StatusIs(absl::StatusCode::kDataLoss));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes, good);
}

// bytes_wanted() tells how much completes the front message.
TEST(MessageAssemblerTest, ReportsBytesWanted) {
  std::vector<uint8_t> m = MakeMessage(1, 100);
  MessageAssembler assembler(4096);
  std::vector<InboundMessage> out;
  assembler.Append(absl::MakeConstSpan(m).subspan(0, 10));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  EXPECT_EQ(assembler.bytes_wanted(), 6u);
  assembler.Append(absl::MakeConstSpan(m).subspan(10, 10));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  EXPECT_EQ(assembler.bytes_wanted(), m.size() - 20);
}

// Receives `bytes` as MessageReader does: scattered into ReceiveSpace()'s
// parts in order. Returns where the first byte went.
uint8_t* Receive(MessageAssembler& assembler, absl::Span<const uint8_t> bytes,
                 std::vector<UniqueFd> fds = {}) {
  const MessageAssembler::Space space = assembler.ReceiveSpace(bytes.size());
  EXPECT_GE(space.size(), bytes.size());
  space.Scatter(bytes);
  assembler.Commit(bytes.size(), std::move(fds), false);
  return space.parts[0].data();
}

// A message above the direct threshold, arriving in fragments, is received
// in place once its header is in: the bytes land in the delivered message's
// own buffer (moved only when that buffer grows), and the piece that ends it
// spills the next message, with its fds, into the reassembly buffer.
TEST(MessageAssemblerTest, LargeMessageInFragmentsIsReceivedInPlace) {
  const std::vector<uint8_t> big = MakeMessage(1, 300000), small = MakeMessage(2, 5);
  const std::vector<uint8_t> stream = Concat({big, small});
  const absl::Span<const uint8_t> all(stream);
  MessageAssembler assembler(1 << 20);
  std::vector<InboundMessage> out;

  Receive(assembler, all.subspan(0, 10), MakeFds(2));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  EXPECT_FALSE(assembler.receiving_in_place());  // The header is not whole yet.
  Receive(assembler, all.subspan(10, 990));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_TRUE(assembler.receiving_in_place());
  EXPECT_EQ(assembler.bytes_wanted(), big.size() - 1000);
  EXPECT_EQ(assembler.buffered_bytes(), 1000u);

  Receive(assembler, all.subspan(1000, 70000));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  size_t pos = 71000;
  for (size_t piece : {1u, 4095u, 100000u}) {
    Receive(assembler, all.subspan(pos, piece));
    pos += piece;
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    EXPECT_TRUE(out.empty());
  }
  // The last piece ends the big message and carries the next one's fd.
  const size_t last_pos = pos;
  uint8_t* const at_last = Receive(assembler, all.subspan(pos), MakeFds(1));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].bytes, big);
  EXPECT_EQ(out[0].bytes.data() + last_pos, at_last) << "the body was copied";
  EXPECT_EQ(out[0].fds.size(), 2u);
  EXPECT_EQ(out[1].bytes, small);
  EXPECT_EQ(out[1].fds.size(), 1u);
  EXPECT_FALSE(assembler.receiving_in_place());
  EXPECT_EQ(assembler.buffered_bytes(), 0u);
  EXPECT_EQ(assembler.bytes_wanted(), 0u);
}

// With a low direct threshold every three-piece cut of a stream mixing
// small and in-place messages yields the same messages, byte for byte.
TEST(MessageAssemblerTest, EveryTwoCutsAroundInPlaceMessages) {
  const std::vector<uint8_t> a = MakeMessage(1, 100), b = MakeMessage(2, 7),
                             c = MakeMessage(3, 60);
  const std::vector<uint8_t> stream = Concat({a, b, c});
  const absl::Span<const uint8_t> all(stream);
  for (size_t i = 0; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); ++j) {
      MessageAssembler assembler(4096, /*direct_threshold=*/32);
      std::vector<InboundMessage> out;
      for (auto [begin, end] : {std::pair{size_t{0}, i}, {i, j}, {j, stream.size()}}) {
        Receive(assembler, all.subspan(begin, end - begin));
        ASSERT_THAT(assembler.TakeMessages(out), IsOk());
      }
      ASSERT_EQ(out.size(), 3u) << "cuts at " << i << ", " << j;
      EXPECT_EQ(out[0].bytes, a) << "cuts at " << i << ", " << j;
      EXPECT_EQ(out[1].bytes, b) << "cuts at " << i << ", " << j;
      EXPECT_EQ(out[2].bytes, c) << "cuts at " << i << ", " << j;
      EXPECT_EQ(assembler.buffered_bytes(), 0u);
    }
  }
}

// A message partly received in place when the limit drops below its size
// is refused as oversized, like one that arrived after the change; the rest
// of it is skipped and the next message comes through intact.
TEST(MessageAssemblerTest, InPlaceMessageRefusedWhenLimitDrops) {
  const std::vector<uint8_t> big = MakeMessage(7, 200000), next = MakeMessage(8, 4);
  const std::vector<uint8_t> stream = Concat({big, next});
  const absl::Span<const uint8_t> all(stream);
  MessageAssembler assembler(1 << 20);
  std::vector<InboundMessage> out;
  Receive(assembler, all.subspan(0, 5000));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_TRUE(assembler.receiving_in_place());
  assembler.set_max_message_size(4096);
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].oversized);
  EXPECT_EQ(out[0].header.msg_id, 7);
  EXPECT_TRUE(out[0].bytes.empty());
  EXPECT_FALSE(assembler.receiving_in_place());
  EXPECT_EQ(assembler.discarding_bytes(), big.size() - 5000);
  for (size_t pos = 5000; pos < stream.size(); pos += 60000) {
    Receive(assembler, all.subspan(pos, std::min<size_t>(60000, stream.size() - pos)));
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    EXPECT_LE(assembler.buffered_bytes(), next.size());
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].bytes, next);
  EXPECT_EQ(assembler.buffered_bytes(), 0u);
}

// A peer that sends a large message's header and then its body a byte at a
// time, each byte with an fd, loses the stream once more fds than a message
// may carry are held: never more than max_fds (after TakeMessages()), and
// all of them closed when the stream fails.
TEST(MessageAssemblerTest, FdsTrickledIntoOneMessageFailTheStream) {
  const std::vector<uint8_t> big = MakeMessage(1, 200000);
  const absl::Span<const uint8_t> all(big);
  constexpr size_t kMaxFds = 8;
  MessageAssembler assembler(1 << 20);
  assembler.set_max_fds(kMaxFds);
  std::vector<InboundMessage> out;
  std::vector<int> raw_fds;
  // The header with a legitimate fd of the message's own.
  std::vector<UniqueFd> first = MakeFds(1);
  raw_fds.push_back(first[0].get());
  assembler.Append(all.subspan(0, 16), std::move(first));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  absl::Status status;
  size_t pos = 16;
  for (; pos < 16 + 100 && status.ok(); ++pos) {
    std::vector<UniqueFd> fds = MakeFds(1);
    raw_fds.push_back(fds[0].get());
    assembler.Append(all.subspan(pos, 1), std::move(fds));
    status = assembler.TakeMessages(out);
    EXPECT_LE(assembler.held_fds(), kMaxFds);
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(pos, 16 + kMaxFds) << "failed after the wrong number of fds";
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(assembler.held_fds(), 0u);
  for (int raw : raw_fds) EXPECT_EQ(::fcntl(raw, F_GETFD), -1) << "fd " << raw << " left open";
  // The stream stays failed.
  assembler.Append(all.subspan(pos, 1));
  EXPECT_THAT(assembler.TakeMessages(out), StatusIs(absl::StatusCode::kDataLoss));
}

// The same trickle while no message owns the fds: the body of an oversized
// message being skipped.
TEST(MessageAssemblerTest, FdsTrickledIntoSkippedMessageFailTheStream) {
  const std::vector<uint8_t> big = MakeMessage(1, 20000);
  const absl::Span<const uint8_t> all(big);
  MessageAssembler assembler(4096);
  assembler.set_max_fds(2);
  std::vector<InboundMessage> out;
  assembler.Append(all.subspan(0, 16));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].oversized);
  absl::Status status;
  int sent = 0;
  for (size_t pos = 16; pos < 40 && status.ok(); ++pos, ++sent) {
    assembler.Append(all.subspan(pos, 1), MakeFds(1));
    status = assembler.TakeMessages(out);
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(assembler.held_fds(), 0u);
}

// A message may bring exactly max_fds fds, and one receive with more keeps
// max_fds of them and marks the message truncated (an EINVAL reply, not a
// lost stream).
TEST(MessageAssemblerTest, FdLimitKeepsMessagesWithinIt) {
  MessageAssembler assembler(4096);
  assembler.set_max_fds(2);
  std::vector<InboundMessage> out;
  assembler.Append(MakeMessage(1, 4), MakeFds(2));
  std::vector<UniqueFd> three = MakeFds(3);
  const int dropped = three[2].get();
  assembler.Append(MakeMessage(2, 4), std::move(three));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].fds.size(), 2u);
  EXPECT_FALSE(out[0].fds_truncated);
  EXPECT_EQ(out[1].fds.size(), 2u);
  EXPECT_TRUE(out[1].fds_truncated);
  EXPECT_EQ(::fcntl(dropped, F_GETFD), -1);
  EXPECT_EQ(assembler.held_fds(), 0u);
}

// A 64 MiB message's header alone reserves little memory; the message's
// buffer grows with what arrives (at most about twice it), and the whole
// message still arrives intact.
TEST(MessageAssemblerTest, LargeMessageBufferGrowsWithItsBytes) {
  constexpr size_t kPayload = 64 << 20;
  // Built with bulk fills: byte loops over 64 MiB are slow under sanitizers.
  std::vector<uint8_t> stream = wire::StartMessage(kPayload);
  stream.resize(wire::kHeaderSize + kPayload);
  for (size_t i = 0; i < kPayload; i += 4096) stream[wire::kHeaderSize + i] = uint8_t(i >> 12);
  wire::FinishMessage(wire::CommandHeader(3, wire::Command::kRegionWrite), stream);
  const size_t big_size = stream.size();
  const std::vector<uint8_t> next = MakeMessage(4, 8);
  stream.insert(stream.end(), next.begin(), next.end());
  const absl::Span<const uint8_t> all(stream);
  MessageAssembler assembler(kPayload + 64);
  std::vector<InboundMessage> out;
  Receive(assembler, all.subspan(0, 16));
  ASSERT_THAT(assembler.TakeMessages(out), IsOk());
  ASSERT_TRUE(assembler.receiving_in_place());
  // kInitialBodySize, possibly in a recycled buffer of up to twice that.
  EXPECT_LE(assembler.reserved_bytes(), 5u << 20) << "allocated from the header alone";
  size_t pos = 16;
  while (pos < stream.size()) {
    const MessageAssembler::Space space = assembler.ReceiveSpace();
    const size_t n = std::min(space.size(), stream.size() - pos);
    space.Scatter(all.subspan(pos, n));
    assembler.Commit(n, {}, false);
    pos += n;
    ASSERT_THAT(assembler.TakeMessages(out), IsOk());
    if (out.empty()) {
      ASSERT_LE(assembler.reserved_bytes(), 4 * pos + (5u << 20)) << "after " << pos << " bytes";
    }
  }
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].bytes.size(), big_size);
  EXPECT_EQ(std::memcmp(out[0].bytes.data(), stream.data(), big_size), 0);
  EXPECT_TRUE(out[1].bytes == next);
}

}  // namespace
}  // namespace vfu
