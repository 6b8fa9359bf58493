// DEVICE_GET_REGION_IO_FDS through the engine, with a PciDevice that
// declares doorbells: the reply layout, the argsz-too-small case, every
// validation row, the client's fd limit, and trapped writes to doorbells.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "testing/local_dma_context.h"
#include "vfu/device/pci_device.h"
#include "vfu/engine/session.h"
#include "vfu/engine/session_test_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu {
namespace {

using testing::MakeCommand;
using testing::ReplyErrno;
using testing::ReplyPayload;
using testing::VersionPayload;
using wire::Command;

// BAR0: two doorbells, one with a datamatch; BAR2: one doorbell; BAR1 none.
PciDeviceSpec DoorbellSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x0002, .class_code = 0xff0000};
  spec.bars[0] = {.size = 0x1000};
  spec.bars[1] = {.size = 0x1000};
  spec.bars[2] = {.size = 0x1000};
  spec.ioeventfds = {{.region = 0, .offset = 0x100, .size = 4},
                     {.region = 0, .offset = 0x108, .size = 2, .datamatch = 0xbeef},
                     {.region = 2, .offset = 0x0, .size = 8}};
  return spec;
}

class DoorbellDevice : public PciDevice {
 public:
  DoorbellDevice() : PciDevice(DoorbellSpec()) {}
  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override {
    ++trapped_writes;
    return absl::OkStatus();
  }
  int trapped_writes = 0;
};

bool Readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN};
  return ::poll(&p, 1, 0) == 1;
}

class SessionRegionIoFdsTest : public ::testing::Test {
 protected:
  void Connect(const char* json) {
    session_.emplace(device_, context_, context_.table(), SessionOptions{}, "t");
    ASSERT_EQ(ReplyErrno(session_->Handle(MakeCommand(1, Command::kVersion, VersionPayload(json)))),
              0);
    session_->Attach();
  }
  void SetUp() override { Connect(R"({"capabilities":{"max_msg_fds":8}})"); }

  Session::Result IoFds(const wire::RegionIoFdsRequest& request) {
    std::vector<uint8_t> p;
    wire::EncodeRegionIoFdsRequest(request, p);
    return session_->Handle(MakeCommand(next_id_++, Command::kDeviceGetRegionIoFds, p));
  }
  Session::Result Raw(std::vector<uint8_t> payload) {
    return session_->Handle(MakeCommand(next_id_++, Command::kDeviceGetRegionIoFds, payload));
  }
  int Write(uint32_t region, uint64_t offset, std::vector<uint8_t> data) {
    std::vector<uint8_t> p;
    wire::EncodeRegionWriteRequest({.offset = offset, .region = region, .data = data}, p);
    return ReplyErrno(session_->Handle(MakeCommand(next_id_++, Command::kRegionWrite, p)));
  }

  DoorbellDevice device_;
  testing::LocalDmaContext context_;
  std::optional<Session> session_;
  uint16_t next_id_ = 2;
};

TEST_F(SessionRegionIoFdsTest, CompleteReplyCarriesOneFdPerDoorbell) {
  Session::Result r = IoFds({.argsz = 4096, .index = 0});
  ASSERT_EQ(ReplyErrno(r), 0);
  absl::StatusOr<wire::RegionIoFdsReply> reply =
      wire::DecodeRegionIoFdsReply(ReplyPayload(r), r.reply->fds.size());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->index, 0u);
  ASSERT_EQ(reply->count, 2u);
  EXPECT_EQ(reply->argsz, 16u + 2 * 48);
  ASSERT_EQ(r.reply->fds.size(), 2u);
  EXPECT_EQ(reply->entries[0].offset, 0x100u);
  EXPECT_EQ(reply->entries[0].size, 4u);
  EXPECT_EQ(reply->entries[1].flags, 1u);
  EXPECT_EQ(reply->entries[1].datamatch, 0xbeefu);

  // The client (as KVM) writes the second entry's fd: doorbell 1 rings.
  const uint64_t one = 1;
  const int fd = r.reply->fds[reply->entries[1].fd_index].get();
  ASSERT_EQ(::write(fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_TRUE(Readable(device_.ioeventfd(1)));
  EXPECT_FALSE(Readable(device_.ioeventfd(0)));
  EXPECT_EQ(device_.ConsumeIoeventfd(1), 1u);
}

TEST_F(SessionRegionIoFdsTest, SmallArgszGetsTheHeaderWithTheNeededSizeAndNoFds) {
  Session::Result r = IoFds({.argsz = 16, .index = 0});
  ASSERT_EQ(ReplyErrno(r), 0);
  EXPECT_TRUE(r.reply->fds.empty());
  const absl::Span<const uint8_t> p = ReplyPayload(r);
  ASSERT_EQ(p.size(), 16u);
  EXPECT_EQ(wire::LoadU32(p, 0), 16u + 2 * 48) << "argsz: what a complete reply needs";
  EXPECT_EQ(wire::LoadU32(p, 12), 2u) << "count: every entry";

  Session::Result almost = IoFds({.argsz = 16 + 2 * 48 - 1, .index = 0});
  ASSERT_EQ(ReplyErrno(almost), 0);
  EXPECT_TRUE(almost.reply->fds.empty());
  EXPECT_EQ(ReplyPayload(almost).size(), 16u);
}

TEST_F(SessionRegionIoFdsTest, ValidationRows) {
  EXPECT_EQ(ReplyErrno(Raw({1, 2, 3})), EINVAL) << "row 4: short payload";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 15, .index = 0})), EINVAL) << "row 5";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = (1u << 20) + 1, .index = 0})), EINVAL) << "row 6";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 4096, .index = device_.num_regions()})), EINVAL)
      << "row 20";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 4096, .flags = 1, .index = 0})), EINVAL) << "row 21";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 4096, .index = 0, .count = 1})), EINVAL) << "row 21";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 4096, .index = 1})), EINVAL) << "row 21: no io fds";
  EXPECT_EQ(ReplyErrno(IoFds({.argsz = 4096, .index = kConfigRegion})), EINVAL);
}

TEST_F(SessionRegionIoFdsTest, MoreFdsThanTheClientAcceptsIsRefused) {
  Connect(R"({"capabilities":{}})");  // max_msg_fds defaults to 1
  Session::Result two = IoFds({.argsz = 4096, .index = 0});
  EXPECT_EQ(ReplyErrno(two), E2BIG);
  EXPECT_TRUE(two.reply->fds.empty());
  Session::Result one = IoFds({.argsz = 4096, .index = 2});
  ASSERT_EQ(ReplyErrno(one), 0);
  EXPECT_EQ(one.reply->fds.size(), 1u);
}

// A doorbell write that arrives trapped rings the same doorbell and does
// not reach OnRegionWrite; writes KVM would not match do.
TEST_F(SessionRegionIoFdsTest, TrappedDoorbellWritesRingLikeTheEventfd) {
  ASSERT_EQ(Write(0, 0x100, {1, 0, 0, 0}), 0);
  EXPECT_EQ(device_.ConsumeIoeventfd(0), 1u);
  EXPECT_EQ(device_.trapped_writes, 0);

  ASSERT_EQ(Write(0, 0x108, {0xef, 0xbe}), 0);
  EXPECT_EQ(device_.ConsumeIoeventfd(1), 1u);

  ASSERT_EQ(Write(0, 0x108, {0x00, 0xbe}), 0) << "datamatch differs";
  ASSERT_EQ(Write(0, 0x100, {1, 0}), 0) << "width differs";
  EXPECT_EQ(device_.ConsumeIoeventfd(0) + device_.ConsumeIoeventfd(1), 0u);
  EXPECT_EQ(device_.trapped_writes, 2);
}

// The next client gets fresh eventfds: the previous one's ring nothing.
TEST_F(SessionRegionIoFdsTest, DetachCutsOffTheDepartedClientsEventfds) {
  Session::Result r = IoFds({.argsz = 4096, .index = 2});
  ASSERT_EQ(ReplyErrno(r), 0);
  UniqueFd old_fd = std::move(r.reply->fds[0]);
  session_->Detach();  // the device renews its eventfds (OnDetach)

  const uint64_t one = 1;
  ASSERT_EQ(::write(old_fd.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_FALSE(Readable(device_.ioeventfd(2)));

  Connect(R"({"capabilities":{"max_msg_fds":8}})");
  Session::Result fresh = IoFds({.argsz = 4096, .index = 2});
  ASSERT_EQ(ReplyErrno(fresh), 0);
  ASSERT_EQ(::write(fresh.reply->fds[0].get(), &one, sizeof one),
            static_cast<ssize_t>(sizeof one));
  EXPECT_TRUE(Readable(device_.ioeventfd(2)));
}

}  // namespace
}  // namespace vfu
