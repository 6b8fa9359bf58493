#include "vfu/engine/message_dma.h"

#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using wire::DmaTransferLayout;

// Answers DMA commands from a byte array at IOVA 0x1000, like a client.
// `tamper` may rewrite each reply before it is returned.
class FakeChannel : public ClientChannel {
 public:
  explicit FakeChannel(DmaTransferLayout layout) : layout_(layout), memory_(512 * 1024) {
    for (size_t i = 0; i < memory_.size(); ++i) memory_[i] = static_cast<uint8_t>(i * 13);
  }

  absl::StatusOr<InboundMessage> Call(std::vector<uint8_t> command, absl::Time,
                                      std::shared_ptr<ReplySink> sink) override {
    ++calls_;
    wire::Header h = wire::DecodeHeader(command);
    auto payload = absl::MakeConstSpan(command).subspan(wire::kHeaderSize);
    std::vector<uint8_t> reply = wire::StartMessage();
    if (h.command == static_cast<uint16_t>(wire::Command::kDmaRead)) {
      auto req = wire::DecodeDmaReadRequest(payload, 0, layout_, 1 << 30);
      EXPECT_TRUE(req.ok());
      max_seen_ = std::max<uint64_t>(max_seen_, req->count);
      wire::DmaReadReply r{.address = req->address,
                           .data = absl::MakeConstSpan(memory_).subspan(req->address - kBase,
                                                                        req->count)};
      wire::EncodeDmaReadReply(r, layout_, reply);
    } else {
      auto req = wire::DecodeDmaWriteRequest(payload, 0, layout_, 1 << 30);
      EXPECT_TRUE(req.ok());
      max_seen_ = std::max<uint64_t>(max_seen_, req->count());
      std::memcpy(memory_.data() + (req->address - kBase), req->data.data(), req->count());
      wire::EncodeDmaWriteReply({.address = req->address, .count = req->count()}, layout_, reply);
    }
    wire::FinishMessage(wire::ReplyHeader(h), reply);
    if (tamper_) tamper_(reply);
    InboundMessage m;
    m.header = wire::DecodeHeader(reply);
    if (sink != nullptr) ++sinks_offered_;
    // As the transport does: a reply of exactly the sink's size leaves its
    // data in the sink's memory and the rest in the message.
    if (sink != nullptr && use_sinks_ && reply.size() == sink->message_size() &&
        sink->BeginWrite()) {
      const size_t begin = sink->data_offset(), n = sink->data().size();
      std::memcpy(sink->data().data(), reply.data() + begin, n);
      sink->EndWrite();
      reply.erase(reply.begin() + begin, reply.begin() + begin + n);
      m.sunk_bytes = n;
    }
    m.bytes = std::move(reply);
    return m;
  }

  static constexpr uint64_t kBase = 0x1000;
  DmaTransferLayout layout_;
  std::vector<uint8_t> memory_;
  int calls_ = 0;
  int sinks_offered_ = 0;
  bool use_sinks_ = true;
  uint64_t max_seen_ = 0;
  std::function<void(std::vector<uint8_t>&)> tamper_;
};

class MessageDmaTest : public ::testing::TestWithParam<DmaTransferLayout> {};

// A read larger than max_transfer is split, and every byte arrives.
TEST_P(MessageDmaTest, ReadIsSplitAtMaxTransfer) {
  FakeChannel channel(GetParam());
  MessageDmaConfig config{.max_transfer = 4096, .layout = GetParam()};
  std::vector<uint8_t> out(10000);
  ASSERT_THAT(DmaReadViaMessages(channel, config, FakeChannel::kBase + 5, absl::MakeSpan(out)),
              IsOk());
  EXPECT_EQ(channel.calls_, 3);
  EXPECT_EQ(channel.max_seen_, 4096u);
  EXPECT_EQ(0, std::memcmp(out.data(), channel.memory_.data() + 5, out.size()));
}

// A write is split the same way and lands in client memory.
TEST_P(MessageDmaTest, WriteIsSplitAtMaxTransfer) {
  FakeChannel channel(GetParam());
  MessageDmaConfig config{.max_transfer = 1000, .layout = GetParam()};
  std::vector<uint8_t> data(2500, 0xab);
  ASSERT_THAT(DmaWriteViaMessages(channel, config, FakeChannel::kBase + 100, data), IsOk());
  EXPECT_EQ(channel.calls_, 3);
  EXPECT_EQ(channel.memory_[100], 0xab);
  EXPECT_EQ(channel.memory_[2599], 0xab);
  EXPECT_NE(channel.memory_[2600], 0xab);
}

// Row 36: an error reply fails the transfer with the client's errno.
TEST_P(MessageDmaTest, ErrorReplyGivesItsErrno) {
  FakeChannel channel(GetParam());
  channel.tamper_ = [](std::vector<uint8_t>& reply) {
    wire::Header h = wire::DecodeHeader(reply);
    reply = wire::ErrorReply(h, EFAULT);
  };
  std::vector<uint8_t> out(8);
  EXPECT_THAT(DmaReadViaMessages(channel, {.layout = GetParam()}, FakeChannel::kBase,
                                 absl::MakeSpan(out)),
              FailsWithErrno(EFAULT));
}

// Row 36: a reply echoing another address fails with EINVAL.
TEST_P(MessageDmaTest, WrongEchoIsEinval) {
  FakeChannel channel(GetParam());
  channel.tamper_ = [](std::vector<uint8_t>& reply) { reply[wire::kHeaderSize] ^= 0x10; };
  std::vector<uint8_t> out(8);
  EXPECT_THAT(DmaReadViaMessages(channel, {.layout = GetParam()}, FakeChannel::kBase,
                                 absl::MakeSpan(out)),
              FailsWithErrno(EINVAL));
}

// A reply cut short is rejected, not read past its end.
TEST_P(MessageDmaTest, ShortReplyIsRejected) {
  FakeChannel channel(GetParam());
  channel.tamper_ = [](std::vector<uint8_t>& reply) {
    reply.resize(reply.size() - 1);
    wire::FinishMessage(wire::DecodeHeader(reply), reply);
  };
  std::vector<uint8_t> out(64);
  EXPECT_FALSE(DmaReadViaMessages(channel, {.layout = GetParam()}, FakeChannel::kBase,
                                  absl::MakeSpan(out))
                   .ok());
}

// Large chunks offer `out` as the reply's sink; whether the channel takes
// it or not, every byte arrives.
TEST_P(MessageDmaTest, LargeChunksOfferTheirPlaceInOut) {
  for (bool use_sinks : {true, false}) {
    SCOPED_TRACE(use_sinks ? "channel takes sinks" : "channel ignores sinks");
    FakeChannel channel(GetParam());
    channel.use_sinks_ = use_sinks;
    MessageDmaConfig config{.max_transfer = 128 * 1024, .layout = GetParam()};
    std::vector<uint8_t> out(300 * 1024);
    ASSERT_THAT(DmaReadViaMessages(channel, config, FakeChannel::kBase + 3, absl::MakeSpan(out)),
                IsOk());
    EXPECT_EQ(channel.calls_, 3);
    EXPECT_EQ(channel.sinks_offered_, 2);  // the 44 KiB tail arrives whole
    EXPECT_EQ(0, std::memcmp(out.data(), channel.memory_.data() + 3, out.size()));
  }
}

// A reply received into the sink is still checked: another address, or a
// count that does not match the data, fails with EINVAL.
TEST_P(MessageDmaTest, SunkReplyIsChecked) {
  const size_t count_offset = wire::kHeaderSize + 8;
  for (size_t offset : {size_t{wire::kHeaderSize}, count_offset}) {
    FakeChannel channel(GetParam());
    channel.tamper_ = [offset](std::vector<uint8_t>& reply) { reply[offset] ^= 0x10; };
    std::vector<uint8_t> out(100 * 1024);
    EXPECT_THAT(DmaReadViaMessages(channel, {.layout = GetParam()}, FakeChannel::kBase,
                                   absl::MakeSpan(out)),
                FailsWithErrno(EINVAL));
    EXPECT_EQ(channel.sinks_offered_, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, MessageDmaTest,
                         ::testing::Values(DmaTransferLayout::kSpec, DmaTransferLayout::kQemu));

// A range wrapping the address space is refused before anything is sent.
TEST(MessageDmaWrapTest, WrapIsEinval) {
  FakeChannel channel(DmaTransferLayout::kSpec);
  std::vector<uint8_t> out(16);
  EXPECT_THAT(DmaReadViaMessages(channel, {}, ~0ull - 4, absl::MakeSpan(out)),
              FailsWithErrno(EINVAL));
  EXPECT_EQ(channel.calls_, 0);
}

}  // namespace
}  // namespace vfu
