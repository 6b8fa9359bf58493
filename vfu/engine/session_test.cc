#include "vfu/engine/session.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "testing/local_dma_context.h"
#include "testing/memory_device.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/engine/session_test_util.h"
#include "vfu/base/log.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/version.h"

#include <linux/vfio.h>

namespace vfu {
namespace {

using testing::MakeCommand;
using testing::ReplyErrno;
using testing::ReplyPayload;
using testing::VersionPayload;
using wire::Command;

std::vector<uint8_t> RegionReadPayload(uint32_t region, uint64_t offset, uint32_t count) {
  std::vector<uint8_t> p;
  wire::EncodeRegionReadRequest({.offset = offset, .region = region, .count = count}, p);
  return p;
}

std::vector<uint8_t> RegionWritePayload(uint32_t region, uint64_t offset,
                                        std::vector<uint8_t> data) {
  std::vector<uint8_t> p;
  wire::EncodeRegionWriteRequest({.offset = offset, .region = region, .data = data}, p);
  return p;
}

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : session_(device_, context_, context_.table(), SessionOptions{}, "test") {}

  void Negotiate() {
    Session::Result r = session_.Handle(
        MakeCommand(1, Command::kVersion, VersionPayload(R"({"capabilities":{}})")));
    ASSERT_EQ(ReplyErrno(r), 0);
    ASSERT_TRUE(r.negotiated.has_value());
    session_.Attach();
  }

  testing::MemoryDevice device_;
  testing::LocalDmaContext context_;
  Session session_;
};

// Section 10 row 9: anything before VERSION fails and closes the connection.
TEST_F(SessionTest, FirstCommandMustBeVersion) {
  std::vector<uint8_t> p;
  wire::EncodeDeviceGetInfoRequest({}, p);
  Session::Result r = session_.Handle(MakeCommand(3, Command::kDeviceGetInfo, p));
  EXPECT_EQ(ReplyErrno(r), EINVAL);
  EXPECT_TRUE(r.close_connection);
}

// A good VERSION gets a reply with plain-number capabilities and attaches
// the device once the runtime calls Attach().
TEST_F(SessionTest, VersionNegotiates) {
  Session::Result r = session_.Handle(MakeCommand(
      9, Command::kVersion, VersionPayload(R"({"capabilities":{"max_msg_fds":16}})")));
  ASSERT_EQ(ReplyErrno(r), 0);
  EXPECT_FALSE(r.close_connection);
  ASSERT_TRUE(r.negotiated.has_value());
  EXPECT_EQ(r.negotiated->limits.max_fds_to_client, 16u);
  ASSERT_OK_AND_ASSIGN(wire::Version reply, wire::DecodeVersionReply(ReplyPayload(r), 0));
  EXPECT_EQ(reply.major, 0);
  EXPECT_LE(reply.minor, 2);
  EXPECT_EQ(wire::DecodeHeader(r.reply->bytes).msg_id, 9);
  EXPECT_EQ(device_.attaches(), 0);
  session_.Attach();
  EXPECT_EQ(device_.attaches(), 1);
}

// Section 10 row 9: an unknown or oversized first message also closes.
TEST_F(SessionTest, BadFirstMessageCloses) {
  InboundMessage unknown = MakeCommand(1, Command::kVersion, {});
  unknown.header.command = 14;
  Session::Result r = session_.Handle(std::move(unknown));
  EXPECT_EQ(ReplyErrno(r), EINVAL);
  EXPECT_TRUE(r.close_connection);
  InboundMessage big;
  big.header = wire::CommandHeader(2, Command::kVersion);
  big.header.msg_size = 1 << 30;
  big.oversized = true;
  Session::Result r2 = session_.Handle(std::move(big));
  EXPECT_EQ(ReplyErrno(r2), EINVAL);
  EXPECT_TRUE(r2.close_connection);
}

// Section 10 row 10: malformed VERSION JSON fails and closes.
TEST_F(SessionTest, BadVersionClosesConnection) {
  Session::Result r = session_.Handle(MakeCommand(
      1, Command::kVersion, VersionPayload(R"({"capabilities":{"max_msg_fds":"8"}})")));
  EXPECT_EQ(ReplyErrno(r), EINVAL);
  EXPECT_TRUE(r.close_connection);
  EXPECT_FALSE(session_.negotiated());
}

// Section 10 row 14: a second VERSION is refused but the connection stays.
TEST_F(SessionTest, SecondVersionIsEinval) {
  Negotiate();
  Session::Result r = session_.Handle(MakeCommand(2, Command::kVersion, VersionPayload("{}")));
  EXPECT_EQ(ReplyErrno(r), EINVAL);
  EXPECT_FALSE(r.close_connection);
}

// DEVICE_GET_INFO reports the PCI layout the device declares.
TEST_F(SessionTest, GetInfo) {
  Negotiate();
  std::vector<uint8_t> p;
  wire::EncodeDeviceGetInfoRequest({}, p);
  Session::Result r = session_.Handle(MakeCommand(2, Command::kDeviceGetInfo, p));
  ASSERT_EQ(ReplyErrno(r), 0);
  ASSERT_OK_AND_ASSIGN(wire::DeviceInfo info, wire::DecodeDeviceGetInfoReply(ReplyPayload(r), 0));
  EXPECT_EQ(info.num_regions, 9u);
  EXPECT_EQ(info.num_irqs, 5u);
  EXPECT_NE(info.flags & VFIO_DEVICE_FLAGS_PCI, 0u);
}

// GET_REGION_INFO reports size and permissions; index past the end is EINVAL.
TEST_F(SessionTest, GetRegionInfo) {
  Negotiate();
  std::vector<uint8_t> p;
  wire::EncodeRegionInfoRequest({.argsz = 32, .index = 0}, p);
  Session::Result r = session_.Handle(MakeCommand(2, Command::kDeviceGetRegionInfo, p));
  ASSERT_EQ(ReplyErrno(r), 0);
  ASSERT_OK_AND_ASSIGN(wire::RegionInfoReply info,
                       wire::DecodeRegionInfoReply(ReplyPayload(r), 0));
  EXPECT_EQ(info.size, 4096u);
  EXPECT_EQ(info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);

  p.clear();
  wire::EncodeRegionInfoRequest({.argsz = 32, .index = 9}, p);
  EXPECT_EQ(ReplyErrno(session_.Handle(MakeCommand(3, Command::kDeviceGetRegionInfo, p))),
            EINVAL);
}

// Writes land in the device and reads return them.
TEST_F(SessionTest, RegionWriteThenRead) {
  Negotiate();
  Session::Result w = session_.Handle(
      MakeCommand(2, Command::kRegionWrite, RegionWritePayload(0, 100, {1, 2, 3, 4})));
  ASSERT_EQ(ReplyErrno(w), 0);
  Session::Result r =
      session_.Handle(MakeCommand(3, Command::kRegionRead, RegionReadPayload(0, 99, 6)));
  ASSERT_EQ(ReplyErrno(r), 0);
  ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data,
                       wire::DecodeRegionReadReply(ReplyPayload(r), 0));
  EXPECT_EQ(std::vector<uint8_t>(data.data.begin(), data.data.end()),
            (std::vector<uint8_t>{0, 1, 2, 3, 4, 0}));
}

// With spare buffers, a reply is built in a spare (a used one: it must not
// leak old bytes into the reply) and the command's bytes go back after it
// ran; the reply is the same as without.
TEST_F(SessionTest, SpareBuffersCarryRepliesAndTakeBackCommands) {
  Negotiate();
  ASSERT_EQ(ReplyErrno(session_.Handle(MakeCommand(2, Command::kRegionWrite,
                                                   RegionWritePayload(0, 100, {1, 2, 3, 4})))),
            0);
  SpareBuffers spares;
  std::vector<uint8_t> used(SpareBuffers::kMinCapacity, 0xee);
  const uint8_t* used_storage = used.data();
  spares.Give(std::move(used));
  session_.set_spare_buffers(&spares);
  InboundMessage command = MakeCommand(3, Command::kRegionRead, RegionReadPayload(0, 99, 6));
  command.bytes.reserve(SpareBuffers::kMinCapacity);
  const uint8_t* command_storage = command.bytes.data();
  Session::Result r = session_.Handle(std::move(command));
  session_.set_spare_buffers(nullptr);
  ASSERT_EQ(ReplyErrno(r), 0);
  EXPECT_EQ(r.reply->bytes.data(), used_storage);
  ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data,
                       wire::DecodeRegionReadReply(ReplyPayload(r), 0));
  EXPECT_EQ(std::vector<uint8_t>(data.data.begin(), data.data.end()),
            (std::vector<uint8_t>{0, 1, 2, 3, 4, 0}));
  ASSERT_EQ(spares.size(), 1u);
  EXPECT_EQ(spares.Take().data(), command_storage);
}

// Section 10 rows 17-19: bad index, out of bounds, overflow, over the
// transfer limit, no permission, unimplemented region.
TEST_F(SessionTest, BadRegionAccessesAreEinval) {
  Negotiate();
  uint16_t id = 10;
  auto read = [&](uint32_t region, uint64_t offset, uint32_t count) {
    return ReplyErrno(
        session_.Handle(MakeCommand(id++, Command::kRegionRead, RegionReadPayload(region, offset, count))));
  };
  EXPECT_EQ(read(9, 0, 4), EINVAL);            // index >= num_regions
  EXPECT_EQ(read(0, 4094, 4), EINVAL);         // past the end
  EXPECT_EQ(read(0, ~0ull - 1, 4), EINVAL);    // offset + count overflows
  EXPECT_EQ(read(0, 0, (1u << 20) + 1), EINVAL);  // > max_data_xfer_size
  EXPECT_EQ(read(1, 0, 4), EINVAL);            // unimplemented region
  Session::Result w = session_.Handle(
      MakeCommand(id++, Command::kRegionWrite, RegionWritePayload(7, 0, {1})));
  EXPECT_EQ(ReplyErrno(w), EINVAL);            // config space is read-only here
  EXPECT_EQ(device_.writes(), 0);
}

// Section 10 row 37: a failing NO_REPLY command sends nothing at all.
TEST_F(SessionTest, FailedNoReplyCommandIsSilent) {
  Negotiate();
  Session::Result r = session_.Handle(MakeCommand(
      2, Command::kRegionWrite, RegionWritePayload(0, 5000, {1}), /*no_reply=*/true));
  EXPECT_FALSE(r.reply.has_value());
  Session::Result ok = session_.Handle(MakeCommand(
      3, Command::kRegionWrite, RegionWritePayload(0, 0, {1}), /*no_reply=*/true));
  EXPECT_FALSE(ok.reply.has_value());
  EXPECT_EQ(device_.writes(), 1);
}

// Section 10 row 8: unknown command numbers are EINVAL.
TEST_F(SessionTest, UnknownCommandIsEinval) {
  Negotiate();
  for (uint16_t cmd : {0, 14, 19, 0xffff}) {
    InboundMessage m = MakeCommand(2, Command::kVersion, {});
    m.header.command = cmd;
    EXPECT_EQ(ReplyErrno(session_.Handle(std::move(m))), EINVAL) << cmd;
  }
}

// Section 10 row 16: fds on a command that takes none are closed, with a
// warning, and the command still succeeds.
TEST_F(SessionTest, UnexpectedFdsAreClosed) {
  Negotiate();
  std::vector<uint8_t> p;
  wire::EncodeDeviceGetInfoRequest({}, p);
  InboundMessage m = MakeCommand(2, Command::kDeviceGetInfo, p);
  m.fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  int raw = m.fds[0].get();
  int warnings = 0;
  ScopedLogCapture capture([&](LogLevel level, std::string_view) {
    warnings += level == LogLevel::kWarning;
  });
  EXPECT_EQ(ReplyErrno(session_.Handle(std::move(m))), 0);
  EXPECT_EQ(warnings, 1);
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

// Section 10 rows 2 and 15: oversized messages and truncated fds fail.
TEST_F(SessionTest, OversizedAndTruncatedAreEinval) {
  Negotiate();
  InboundMessage big;
  big.header = wire::CommandHeader(5, Command::kRegionWrite);
  big.header.msg_size = 1 << 30;
  big.oversized = true;
  EXPECT_EQ(ReplyErrno(session_.Handle(std::move(big))), EINVAL);
  InboundMessage truncated = MakeCommand(6, Command::kRegionRead, RegionReadPayload(0, 0, 4));
  truncated.fds_truncated = true;
  EXPECT_EQ(ReplyErrno(session_.Handle(std::move(truncated))), EINVAL);
  EXPECT_EQ(device_.reads(), 0);
}

// DEVICE_RESET reaches the device.
TEST_F(SessionTest, ResetCallsDevice) {
  Negotiate();
  EXPECT_EQ(ReplyErrno(session_.Handle(MakeCommand(2, Command::kDeviceReset, {}))), 0);
  EXPECT_EQ(device_.resets(), 1);
}

// Section 10 row 35: REGION_WRITE_MULTI needs write_multiple negotiated.
TEST_F(SessionTest, WriteMultiNeedsNegotiation) {
  Negotiate();
  std::vector<uint8_t> p;
  std::vector<uint8_t> data = {7};
  wire::RegionWriteMultiEntry e{.offset = 0, .region = 0, .data = data};
  wire::EncodeRegionWriteMultiRequest(absl::MakeConstSpan(&e, 1), p);
  EXPECT_EQ(ReplyErrno(session_.Handle(MakeCommand(2, Command::kRegionWriteMulti, p))), EINVAL);
}

// Detach tells the device once, only after an attach.
TEST_F(SessionTest, DetachAfterAttachOnly) {
  session_.Detach();
  EXPECT_EQ(device_.detaches(), 0);
  Negotiate();
  session_.Detach();
  session_.Detach();
  EXPECT_EQ(device_.detaches(), 1);
}

}  // namespace
}  // namespace vfu
