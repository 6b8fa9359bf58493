// vfu_create_ioeventfd() through DEVICE_GET_REGION_IO_FDS: vfu's client asks
// a context for a region's io fds and gets the user's ioeventfds with their
// offsets, sizes, flags and datamatch values; a write to a received fd is
// seen on the fd the user registered.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "libvfio-user.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu::capi {
namespace {

using ::vfu::testing::ScopedTempDir;

constexpr uint32_t kDataMatch = 1;  // KVM_IOEVENTFD_FLAG_DATAMATCH

ssize_t Bar(vfu_ctx_t*, char*, size_t count, loff_t, bool) { return static_cast<ssize_t>(count); }

// Reads an eventfd without blocking: its counter, or 0 when unsignalled.
uint64_t Drain(int fd) {
  uint64_t value = 0;
  if (::read(fd, &value, sizeof(value)) != sizeof(value)) return 0;
  return value;
}

TEST(IoeventfdTest, ClientReceivesTheUsersFds) {
  ScopedTempDir dir("vfu-capi");
  const std::string path = dir.path() + "/s.sock";
  vfu_ctx_t* ctx = vfu_create_ctx(VFU_TRANS_SOCK, path.c_str(), 0, nullptr, VFU_DEV_TYPE_PCI);
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0), 0);
  ASSERT_EQ(vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x1000, Bar, VFU_REGION_FLAG_RW,
                             nullptr, 0, -1, 0),
            0);
  ASSERT_EQ(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, Bar, VFU_REGION_FLAG_RW,
                             nullptr, 0, -1, 0),
            0);
  const int doorbell = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const int matched = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(doorbell, 0);
  ASSERT_GE(matched, 0);
  // The library owns the fds from here on; the test keeps using the numbers
  // until vfu_destroy_ctx().
  ASSERT_EQ(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, doorbell, 0x0, 4, 0, 0, -1), 0);
  ASSERT_EQ(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, matched, 0x8, 8, kDataMatch,
                                 0x1234, -1),
            0);
  ASSERT_EQ(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, doorbell, 0x10, 2, 0, 0, -1),
            0);
  // Outside the region, and shadow ioeventfds: refused.
  const int spare = ::eventfd(0, EFD_CLOEXEC);
  errno = 0;
  EXPECT_EQ(vfu_create_ioeventfd(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, spare, 0xffe, 4, 0, 0, -1), -1);
  EXPECT_EQ(errno, EINVAL);
  ::close(spare);
  ASSERT_EQ(vfu_realize_ctx(ctx), 0);

  int run_result = 0;
  int run_errno = 0;
  std::thread server([&] {
    if (vfu_attach_ctx(ctx) != 0) return;
    run_result = vfu_run_ctx(ctx);
    run_errno = errno;
  });
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(path));
    ASSERT_OK_AND_ASSIGN(RegionIoFds io, client->GetRegionIoFds(VFU_PCI_DEV_BAR2_REGION_IDX));
    ASSERT_EQ(io.reply.count, 3u);
    ASSERT_EQ(io.reply.entries.size(), 3u);
    // One fd per distinct eventfd, shared by the entries that name it.
    ASSERT_EQ(io.fds.size(), 2u);
    const wire::IoFdEntry& first = io.reply.entries[0];
    const wire::IoFdEntry& second = io.reply.entries[1];
    const wire::IoFdEntry& third = io.reply.entries[2];
    EXPECT_EQ(first.offset, 0x0u);
    EXPECT_EQ(first.size, 4u);
    EXPECT_EQ(first.type, wire::IoFdType::kIoeventfd);
    EXPECT_EQ(first.flags, 0u);
    EXPECT_EQ(second.offset, 0x8u);
    EXPECT_EQ(second.size, 8u);
    EXPECT_EQ(second.flags, kDataMatch);
    EXPECT_EQ(second.datamatch, 0x1234u);
    EXPECT_EQ(third.offset, 0x10u);
    EXPECT_EQ(third.size, 2u);
    EXPECT_EQ(third.fd_index, first.fd_index);
    EXPECT_NE(second.fd_index, first.fd_index);
    ASSERT_LT(first.fd_index, io.fds.size());
    ASSERT_LT(second.fd_index, io.fds.size());

    // Ringing the received fds is what the user's fds see.
    const uint64_t three = 3;
    ASSERT_EQ(::write(io.fds[second.fd_index].get(), &three, sizeof(three)), 8);
    EXPECT_EQ(Drain(matched), 3u);
    EXPECT_EQ(Drain(doorbell), 0u);
    const uint64_t one = 1;
    ASSERT_EQ(::write(io.fds[first.fd_index].get(), &one, sizeof(one)), 8);
    EXPECT_EQ(Drain(doorbell), 1u);

    // A region without ioeventfds: EINVAL, as libvfio-user answers.
    absl::StatusOr<RegionIoFds> none = client->GetRegionIoFds(VFU_PCI_DEV_BAR0_REGION_IDX);
    EXPECT_FALSE(none.ok());
  }
  server.join();
  EXPECT_EQ(run_result, -1);
  EXPECT_EQ(run_errno, ENOTCONN);
  vfu_destroy_ctx(ctx);
}

}  // namespace
}  // namespace vfu::capi
