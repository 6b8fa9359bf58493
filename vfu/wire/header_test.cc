#include "vfu/wire/header.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;
using ::vfu::testing::IsOk;

// Golden header from PROTOCOL.md 2.2: msg_id 0x1234, cmd 9 (REGION_READ),
// msg_size 32, flags NO_REPLY|command, error 0.
const char kGoldenHeader[] = "3412 | 0900 | 20000000 | 10000000 | 00000000";

// The fields sit at their documented offsets.
TEST(HeaderTest, DecodesGoldenBytes) {
  Header h = DecodeHeader(HexBytes(kGoldenHeader));
  EXPECT_EQ(h.msg_id, 0x1234);
  EXPECT_EQ(h.command, 9);
  EXPECT_EQ(h.msg_size, 32u);
  EXPECT_TRUE(h.is_command());
  EXPECT_TRUE(h.no_reply());
  EXPECT_FALSE(h.is_error());
}

// Encoding writes the same bytes back.
TEST(HeaderTest, EncodesGoldenBytes) {
  Header h{.msg_id = 0x1234, .command = 9, .msg_size = 32, .flags = kFlagNoReply, .error = 0};
  std::vector<uint8_t> out(16);
  EncodeHeader(h, absl::MakeSpan(out));
  EXPECT_EQ(out, HexBytes(kGoldenHeader));
}

// Section 10 row 1: msg_size below 16 is invalid.
TEST(HeaderTest, TooSmallMsgSizeIsEinval) {
  Header h{.msg_id = 1, .command = 1, .msg_size = 15};
  EXPECT_THAT(ValidateHeader(h), FailsWithErrno(EINVAL));
}

// Section 10 row 7: type bits other than command (0) or reply (1).
TEST(HeaderTest, UnknownTypeIsEinval) {
  for (uint32_t type = 2; type <= 0xf; ++type) {
    Header h{.msg_id = 1, .command = 1, .msg_size = 16, .flags = type};
    EXPECT_THAT(ValidateHeader(h), FailsWithErrno(EINVAL)) << type;
  }
  Header ok{.msg_id = 1, .command = 1, .msg_size = 16, .flags = kTypeReply};
  EXPECT_THAT(ValidateHeader(ok), IsOk());
}

// A reply echoes id and command; an error reply is the header alone.
TEST(HeaderTest, ErrorReplyIsHeaderOnly) {
  Header request = CommandHeader(77, Command::kDmaUnmap);
  std::vector<uint8_t> reply = ErrorReply(request, ENOENT);
  ASSERT_EQ(reply.size(), kHeaderSize);
  Header h = DecodeHeader(reply);
  EXPECT_EQ(h.msg_id, 77);
  EXPECT_EQ(h.command, static_cast<uint16_t>(Command::kDmaUnmap));
  EXPECT_EQ(h.msg_size, 16u);
  EXPECT_TRUE(h.is_reply());
  EXPECT_TRUE(h.is_error());
  EXPECT_EQ(h.error, static_cast<uint32_t>(ENOENT));
}

// FinishMessage sets msg_size to the assembled length.
TEST(HeaderTest, FinishMessageSetsSize) {
  std::vector<uint8_t> msg = StartMessage();
  msg.insert(msg.end(), {1, 2, 3, 4, 5});
  FinishMessage(CommandHeader(3, Command::kVersion), msg);
  EXPECT_EQ(DecodeHeader(msg).msg_size, 21u);
  EXPECT_EQ(msg[16], 1);
}

// Command names follow the protocol; unknown numbers are flagged.
TEST(HeaderTest, CommandNames) {
  EXPECT_EQ(CommandName(Command::kDeviceGetRegionIoFds), "DEVICE_GET_REGION_IO_FDS");
  EXPECT_TRUE(IsKnownCommand(18));
  EXPECT_FALSE(IsKnownCommand(0));
  EXPECT_FALSE(IsKnownCommand(14));
  EXPECT_FALSE(IsKnownCommand(19));
}

}  // namespace
}  // namespace vfu::wire
