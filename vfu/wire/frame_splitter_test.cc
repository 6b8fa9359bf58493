#include "vfu/wire/frame_splitter.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "vfu/wire/byte_io.h"

namespace vfu::wire {
namespace {

constexpr size_t kLimit = 1024;

// A message whose header says `msg_size` and which carries `payload_size`
// bytes after the header (which differ only in the malformed cases).
std::vector<uint8_t> Message(uint16_t id, uint32_t msg_size, size_t payload_size,
                             uint32_t flags = 0) {
  std::vector<uint8_t> out;
  ByteWriter(out).U16(id).U16(9).U32(msg_size).U32(flags).U32(0);
  for (size_t i = 0; i < payload_size; ++i) out.push_back(static_cast<uint8_t>(id + i));
  return out;
}

std::vector<uint8_t> Message(uint16_t id, size_t payload_size) {
  return Message(id, static_cast<uint32_t>(16 + payload_size), payload_size);
}

absl::Span<const uint8_t> Prefix(const std::vector<uint8_t>& bytes, size_t size) {
  return absl::MakeConstSpan(bytes.data(), size);
}

// Feeds `stream` to a reassembler in chunks ending at `cuts`, the way the IO
// thread does, and returns the messages it splits off. Each kNeedMore must
// ask for exactly the bytes that are missing, never more than a message.
std::vector<std::vector<uint8_t>> Reassemble(const std::vector<uint8_t>& stream,
                                             std::vector<size_t> cuts) {
  cuts.push_back(stream.size());
  std::vector<std::vector<uint8_t>> messages;
  std::vector<uint8_t> buffer;
  size_t fed = 0;
  for (size_t cut : cuts) {
    buffer.insert(buffer.end(), stream.begin() + fed, stream.begin() + cut);
    fed = cut;
    while (true) {
      FrameSplit split = SplitFrame(buffer, kLimit);
      if (split.status != FrameStatus::kComplete) {
        EXPECT_EQ(split.status, FrameStatus::kNeedMore);
        EXPECT_GT(split.size, 0u);
        EXPECT_TRUE(split.reason.empty());
        // Never asks for bytes past the end of the message being read.
        EXPECT_LE(split.size, stream.size() - fed + (fed == stream.size() ? 16 : 0));
        break;
      }
      messages.emplace_back(buffer.begin(), buffer.begin() + split.size);
      buffer.erase(buffer.begin(), buffer.begin() + split.size);
    }
  }
  EXPECT_TRUE(buffer.empty());
  return messages;
}

// Two messages arriving in two chunks split at every possible offset come
// out whole and in order.
TEST(FrameSplitterTest, EverySplitOffsetOfTwoMessages) {
  const std::vector<uint8_t> a = Message(1, 5);
  const std::vector<uint8_t> b = Message(2, 11);
  std::vector<uint8_t> stream = a;
  stream.insert(stream.end(), b.begin(), b.end());
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    EXPECT_EQ(Reassemble(stream, {cut}), (std::vector<std::vector<uint8_t>>{a, b}))
        << "cut at " << cut;
  }
}

// The same with three chunks: every pair of split offsets.
TEST(FrameSplitterTest, EveryPairOfSplitOffsets) {
  const std::vector<uint8_t> a = Message(3, 0);  // header only
  const std::vector<uint8_t> b = Message(4, 20);
  std::vector<uint8_t> stream = a;
  stream.insert(stream.end(), b.begin(), b.end());
  for (size_t first = 0; first <= stream.size(); ++first) {
    for (size_t second = first; second <= stream.size(); ++second) {
      EXPECT_EQ(Reassemble(stream, {first, second}),
                (std::vector<std::vector<uint8_t>>{a, b}))
          << "cuts at " << first << ", " << second;
    }
  }
}

// kNeedMore counts exactly: 16 - have inside the header, msg_size - have
// after it; kComplete exactly at msg_size, ignoring bytes beyond.
TEST(FrameSplitterTest, ExactSizes) {
  std::vector<uint8_t> m = Message(5, 8);  // 24 bytes
  for (size_t have = 0; have < 16; ++have) {
    EXPECT_EQ(SplitFrame(Prefix(m, have), kLimit),
              (FrameSplit{.status = FrameStatus::kNeedMore, .size = 16 - have}))
        << have;
  }
  for (size_t have = 16; have < 24; ++have) {
    EXPECT_EQ(SplitFrame(Prefix(m, have), kLimit),
              (FrameSplit{.status = FrameStatus::kNeedMore, .size = 24 - have}))
        << have;
  }
  EXPECT_EQ(SplitFrame(m, kLimit), (FrameSplit{.status = FrameStatus::kComplete, .size = 24}));
  m.push_back(0xaa);  // the next message's first byte
  EXPECT_EQ(SplitFrame(m, kLimit), (FrameSplit{.status = FrameStatus::kComplete, .size = 24}));
}

// A message exactly at the limit is accepted; one byte over is kOversized as
// soon as the header is in, reporting msg_size so the caller can skip it.
TEST(FrameSplitterTest, Oversized) {
  EXPECT_EQ(SplitFrame(Message(6, kLimit - 16), kLimit).status, FrameStatus::kComplete);
  std::vector<uint8_t> big = Message(7, kLimit + 1, 0);
  FrameSplit split = SplitFrame(big, kLimit);
  EXPECT_EQ(split.status, FrameStatus::kOversized);
  EXPECT_EQ(split.size, kLimit + 1);
  EXPECT_FALSE(split.reason.empty());
  // Only 15 header bytes: nothing can be said yet.
  EXPECT_EQ(SplitFrame(Prefix(big, 15), kLimit).status, FrameStatus::kNeedMore);

  FrameSplit huge = SplitFrame(Message(8, 0xffffffff, 0), kLimit);
  EXPECT_EQ(huge.status, FrameStatus::kOversized);
  EXPECT_EQ(huge.size, 0xffffffffu);
}

// Row 1: msg_size below 16 means framing is lost.
TEST(FrameSplitterTest, Corrupt) {
  for (uint32_t msg_size : {0u, 1u, 15u}) {
    FrameSplit split = SplitFrame(Message(9, msg_size, 4), kLimit);
    EXPECT_EQ(split.status, FrameStatus::kCorrupt) << msg_size;
    EXPECT_EQ(split.size, msg_size);
    EXPECT_NE(split.reason.find("msg_size"), std::string::npos) << split.reason;
  }
}

// Only msg_size matters: invalid type bits and flags still frame normally.
TEST(FrameSplitterTest, TypeBitsAreNotJudged) {
  std::vector<uint8_t> m = Message(10, 16, 0, /*flags=*/0xffffffff);
  EXPECT_EQ(SplitFrame(m, kLimit), (FrameSplit{.status = FrameStatus::kComplete, .size = 16}));
}

// A limit below the header size makes every well-formed message oversized.
TEST(FrameSplitterTest, LimitBelowHeaderSize) {
  EXPECT_EQ(SplitFrame(Message(11, 0), 0).status, FrameStatus::kOversized);
  EXPECT_EQ(SplitFrame(Message(11, 0), 15).status, FrameStatus::kOversized);
}

}  // namespace
}  // namespace vfu::wire
