#include "vfu/transport/message_assembler.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cstdint>
#include <string>
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

}  // namespace
}  // namespace vfu
