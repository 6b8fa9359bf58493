// ConfigSpace: how client accesses to config space are served (header
// fields, BAR sizing, capabilities and their flags, the callback).
#include "vfu/capi/config_space.h"

#include <linux/pci_regs.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "libvfio-user.h"
#include "vfu/wire/errno_status.h"

namespace vfu::capi {
namespace {

uint32_t Read32(ConfigSpace& config, uint64_t offset) {
  uint32_t value = 0;
  EXPECT_TRUE(config.Access(offset, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), 4), false,
                            nullptr, false, nullptr)
                  .ok());
  return value;
}

absl::Status Write32(ConfigSpace& config, uint64_t offset, uint32_t value,
                     const ConfigSpace::Callback& callback = nullptr) {
  return config.Access(offset, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), 4), true,
                       callback, false, nullptr);
}

TEST(ConfigSpaceTest, BarSizingReturnsTheSizeMaskAndKeepsTypeBits) {
  ConfigSpace config(PCI_CFG_SPACE_SIZE);
  config.set_bar_size(0, 0x1000);
  config.set_bar_size(1, 0x100);
  // BAR1 is IO: its low bit says so.
  config.data()[PCI_BASE_ADDRESS_1] = PCI_BASE_ADDRESS_SPACE_IO;
  ASSERT_TRUE(Write32(config, PCI_BASE_ADDRESS_0, 0xffffffff).ok());
  EXPECT_EQ(Read32(config, PCI_BASE_ADDRESS_0), 0xfffff000u);
  ASSERT_TRUE(Write32(config, PCI_BASE_ADDRESS_1, 0xffffffff).ok());
  EXPECT_EQ(Read32(config, PCI_BASE_ADDRESS_1), 0xffffff01u);
  ASSERT_TRUE(Write32(config, PCI_BASE_ADDRESS_2, 0xffffffff).ok());
  EXPECT_EQ(Read32(config, PCI_BASE_ADDRESS_2), 0u);  // no BAR 2
  ASSERT_TRUE(Write32(config, PCI_BASE_ADDRESS_0, 0xfebc1234).ok());
  EXPECT_EQ(Read32(config, PCI_BASE_ADDRESS_0), 0xfebc1000u);
}

TEST(ConfigSpaceTest, HeaderKeepsOnlyWritableFields) {
  ConfigSpace config(PCI_CFG_SPACE_SIZE);
  config.data()[PCI_VENDOR_ID] = 0x34;
  ASSERT_TRUE(Write32(config, PCI_VENDOR_ID, 0xffffffff).ok());
  EXPECT_EQ(config.data()[PCI_VENDOR_ID], 0x34);  // read-only: ignored
  ASSERT_TRUE(Write32(config, PCI_COMMAND, 0x0006).ok());
  EXPECT_EQ(config.data()[PCI_COMMAND], 0x06);
  ASSERT_TRUE(Write32(config, PCI_INTERRUPT_LINE, 0x0000000b).ok());
  EXPECT_EQ(config.data()[PCI_INTERRUPT_LINE], 0x0b);
}

TEST(ConfigSpaceTest, CapabilitiesAreLinkedFoundAndGuarded) {
  ConfigSpace config(PCI_CFG_SPACE_EXP_SIZE);
  struct pmcap pm = {};
  pm.hdr.id = PCI_CAP_ID_PM;
  struct msixcap msix = {};
  msix.hdr.id = PCI_CAP_ID_MSIX;
  struct dsncap dsn = {};
  dsn.hdr.id = PCI_EXT_CAP_ID_DSN;
  dsn.hdr.version = 1;
  ASSERT_EQ(*config.AddCapability(0, 0, reinterpret_cast<uint8_t*>(&pm)), 0x40u);
  ASSERT_EQ(*config.AddCapability(0, VFU_CAP_FLAG_READONLY, reinterpret_cast<uint8_t*>(&msix)),
            0x48u);
  ASSERT_EQ(*config.AddCapability(0, VFU_CAP_FLAG_EXTENDED, reinterpret_cast<uint8_t*>(&dsn)),
            0x100u);
  EXPECT_EQ(config.data()[PCI_CAPABILITY_LIST], 0x40);
  EXPECT_TRUE(config.data()[PCI_STATUS] & PCI_STATUS_CAP_LIST);
  EXPECT_EQ(config.data()[0x40 + PCI_CAP_LIST_NEXT], 0x48);
  EXPECT_EQ(config.data()[0x48 + PCI_CAP_LIST_NEXT], 0);
  EXPECT_EQ(config.FindCapability(false, PCI_CAP_ID_MSIX), 0x48u);
  EXPECT_EQ(config.FindCapability(true, PCI_EXT_CAP_ID_DSN), 0x100u);
  EXPECT_EQ(config.FindCapability(false, PCI_CAP_ID_EXP), 0u);
  // Overlap and misplacement are refused.
  EXPECT_EQ(wire::ReplyErrno(config.AddCapability(0x44, 0, reinterpret_cast<uint8_t*>(&pm))
                                 .status()),
            EINVAL);
  // Writes: past the header of a writable capability land; a read-only
  // capability and any capability header refuse them.
  ASSERT_TRUE(Write32(config, 0x44, 0x00000003).ok());
  EXPECT_EQ(config.data()[0x44], 0x03);
  EXPECT_EQ(wire::ReplyErrno(Write32(config, 0x4c, 0)), EPERM);
  EXPECT_EQ(wire::ReplyErrno(Write32(config, 0x40, 0)), EPERM);
}

TEST(ConfigSpaceTest, OtherBytesGoToTheCallbackOrAreRefused) {
  ConfigSpace config(PCI_CFG_SPACE_SIZE);
  EXPECT_EQ(wire::ReplyErrno(Write32(config, 0x80, 1)), EINVAL);
  std::vector<uint64_t> offsets;
  ConfigSpace::Callback callback = [&](uint8_t* buf, size_t count, uint64_t offset, bool write) {
    offsets.push_back(offset);
    if (!write) std::memset(buf, 0x5a, count);
    return static_cast<ssize_t>(count);
  };
  ASSERT_TRUE(Write32(config, 0x80, 1, callback).ok());
  uint32_t value = 0;
  ASSERT_TRUE(config
                  .Access(0x90, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), 4), false,
                          callback, false, nullptr)
                  .ok());
  EXPECT_EQ(value, 0x5a5a5a5au);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0x80, 0x90}));
  // ALWAYS_CB: the header too.
  ASSERT_TRUE(config
                  .Access(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), 4), false,
                          callback, true, nullptr)
                  .ok());
  EXPECT_EQ(offsets.back(), 0u);
  // A failing callback's errno reaches the client.
  ConfigSpace::Callback failing = [](uint8_t*, size_t, uint64_t, bool) -> ssize_t {
    errno = EIO;
    return -1;
  };
  EXPECT_EQ(wire::ReplyErrno(Write32(config, 0x80, 1, failing)), EIO);
  // Out of range.
  EXPECT_EQ(wire::ReplyErrno(Write32(config, 0xfe, 1)), EINVAL);
}

}  // namespace
}  // namespace vfu::capi
