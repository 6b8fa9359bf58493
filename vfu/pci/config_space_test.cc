#include "vfu/pci/config_space.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu::pci {
namespace {

using ::vfu::testing::StatusIs;

constexpr std::array<BarLayout, kNumBars> kNoBars = {};

Identity TestIdentity() {
  return Identity{.vendor_id = 0x1af4,
                  .device_id = 0x10f0,
                  .subsystem_vendor_id = 0x1b36,
                  .subsystem_id = 0x0042,
                  .class_code = 0x018002,
                  .revision = 0x03,
                  .interrupt_pin = 1};
}

uint32_t Read(const ConfigSpace& config, uint32_t offset, uint32_t width) {
  uint8_t bytes[4] = {};
  config.Read(offset, absl::MakeSpan(bytes, width));
  return uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 |
         uint32_t{bytes[3]} << 24;
}

void Write(ConfigSpace& config, uint32_t offset, uint32_t width, uint32_t value) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  config.Write(offset, absl::MakeConstSpan(bytes, width));
}

uint32_t WriteRead32(ConfigSpace& config, uint32_t offset, uint32_t value) {
  Write(config, offset, 4, value);
  return Read(config, offset, 4);
}

std::vector<uint8_t> Image(const ConfigSpace& config) {
  std::vector<uint8_t> image(config.size());
  config.Read(0, absl::MakeSpan(image));
  return image;
}

// A capability of `size` bytes with no writable bits, for placement tests.
Capability PlainCapability(uint8_t id, size_t size) {
  return Capability{.id = id,
                    .bytes = std::vector<uint8_t>(size, 0x5a),
                    .writable = std::vector<uint8_t>(size, 0),
                    .rw1c = std::vector<uint8_t>(size, 0)};
}

ExtendedCapability PlainExtended(uint16_t id, uint8_t version, size_t size) {
  return ExtendedCapability{.id = id,
                            .version = version,
                            .bytes = std::vector<uint8_t>(size, 0x5a),
                            .writable = std::vector<uint8_t>(size, 0),
                            .rw1c = std::vector<uint8_t>(size, 0)};
}

// The identity lands at its documented offsets, read-only, in a type-0 header.
TEST(ConfigSpaceTest, HeaderCarriesIdentity) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_EQ(config.size(), 256u);
  EXPECT_EQ(Read(config, PCI_VENDOR_ID, 2), 0x1af4u);
  EXPECT_EQ(Read(config, PCI_DEVICE_ID, 2), 0x10f0u);
  EXPECT_EQ(Read(config, PCI_CLASS_REVISION, 4), 0x01800203u);
  EXPECT_EQ(Read(config, PCI_HEADER_TYPE, 1), 0u);
  EXPECT_EQ(Read(config, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1b36u);
  EXPECT_EQ(Read(config, PCI_SUBSYSTEM_ID, 2), 0x0042u);
  EXPECT_EQ(Read(config, PCI_INTERRUPT_PIN, 1), 1u);
  EXPECT_EQ(Read(config, PCI_CAPABILITY_LIST, 1), 0u);
  EXPECT_EQ(config.status() & PCI_STATUS_CAP_LIST, 0);
}

// Express selects the 4096-byte space.
TEST(ConfigSpaceTest, ExpressIs4096Bytes) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  EXPECT_EQ(config.size(), 4096u);
  EXPECT_TRUE(config.express());
}

struct BadLayout {
  std::string name;
  Identity identity;
  std::array<BarLayout, kNumBars> bars;
  uint64_t rom_size;
};

// Every invalid identity or layout is refused with InvalidArgument.
TEST(ConfigSpaceTest, CreateRejectsBadLayouts) {
  auto with_bar = [](int index, BarLayout bar) {
    std::array<BarLayout, kNumBars> bars = {};
    bars[index] = bar;
    return bars;
  };
  Identity no_device = TestIdentity();
  no_device.vendor_id = 0xffff;
  Identity wide_class = TestIdentity();
  wide_class.class_code = 0x1000000;
  Identity bad_pin = TestIdentity();
  bad_pin.interrupt_pin = 5;
  std::array<BarLayout, kNumBars> upper_described = {};
  upper_described[2] = {.size = 4096, .kind = BarKind::kMemory64};
  upper_described[3] = {.size = 4096, .kind = BarKind::kMemory32};

  const std::vector<BadLayout> cases = {
      {"vendor 0xffff", no_device, kNoBars, 0},
      {"class code over 24 bits", wide_class, kNoBars, 0},
      {"interrupt pin 5", bad_pin, kNoBars, 0},
      {"not a power of two", TestIdentity(), with_bar(0, {.size = 0x3000}), 0},
      {"memory32 below 16", TestIdentity(), with_bar(0, {.size = 8}), 0},
      {"memory32 of 4 GiB", TestIdentity(), with_bar(0, {.size = uint64_t{1} << 32}), 0},
      {"memory64 below 16", TestIdentity(),
       with_bar(0, {.size = 8, .kind = BarKind::kMemory64}), 0},
      {"memory64 in slot 5", TestIdentity(),
       with_bar(5, {.size = 4096, .kind = BarKind::kMemory64}), 0},
      {"upper half described", TestIdentity(), upper_described, 0},
      {"I/O below 4", TestIdentity(), with_bar(1, {.size = 2, .kind = BarKind::kIo}), 0},
      {"I/O over 64 KiB", TestIdentity(),
       with_bar(1, {.size = 128 * 1024, .kind = BarKind::kIo}), 0},
      {"prefetchable I/O", TestIdentity(),
       with_bar(1, {.size = 16, .kind = BarKind::kIo, .prefetchable = true}), 0},
      {"ROM below 2 KiB", TestIdentity(), kNoBars, 1024},
      {"ROM not a power of two", TestIdentity(), kNoBars, 3 * 1024},
      {"ROM over 16 MiB", TestIdentity(), kNoBars, 32 * 1024 * 1024},
  };
  for (const BadLayout& c : cases) {
    EXPECT_THAT(ConfigSpace::Create(c.identity, c.bars, c.rom_size, false),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << c.name;
  }
}

// The largest and smallest valid sizes of each kind are accepted.
TEST(ConfigSpaceTest, CreateAcceptsBoundarySizes) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = uint64_t{1} << 31, .kind = BarKind::kMemory32};
  bars[1] = {.size = 16, .kind = BarKind::kMemory32};
  bars[2] = {.size = 4, .kind = BarKind::kIo};
  bars[3] = {.size = 64 * 1024, .kind = BarKind::kIo};
  bars[4] = {.size = uint64_t{1} << 63, .kind = BarKind::kMemory64};
  EXPECT_OK(ConfigSpace::Create(TestIdentity(), bars, 2048, false));
  EXPECT_OK(ConfigSpace::Create(TestIdentity(), kNoBars, 16 * 1024 * 1024, false));
}

// A 32-bit memory BAR sizes as ~(size - 1) with its prefetch flag, and keeps
// the address a guest programs.
TEST(ConfigSpaceTest, Memory32BarSizing) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 4096, .kind = BarKind::kMemory32, .prefetchable = true};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 0, false));
  EXPECT_EQ(Read(config, PCI_BASE_ADDRESS_0, 4), uint32_t{PCI_BASE_ADDRESS_MEM_PREFETCH});
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_0, 0xffffffff), 0xfffff008u);
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_0, 0xfeb01234), 0xfeb01008u);
  EXPECT_EQ(config.BarAddress(0), 0xfeb01000u);
}

// A 64-bit BAR sizes through both halves: the low half keeps the type bits,
// the upper half reads back the upper mask, and the address combines them.
TEST(ConfigSpaceTest, Memory64BarSizing) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 64 * 1024, .kind = BarKind::kMemory64};
  bars[2] = {.size = uint64_t{8} << 30, .kind = BarKind::kMemory64, .prefetchable = true};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 0, false));

  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_0, 0xffffffff), 0xffff0004u);
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_1, 0xffffffff), 0xffffffffu);
  // 8 GiB: no address bits in the low half, bit 0 of the upper half fixed.
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_2, 0xffffffff), 0x0000000cu);
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_3, 0xffffffff), 0xfffffffeu);

  Write(config, PCI_BASE_ADDRESS_0, 4, 0xe0010000);
  Write(config, PCI_BASE_ADDRESS_1, 4, 0x00000001);
  EXPECT_EQ(config.BarAddress(0), 0x1e0010000u);
  Write(config, PCI_BASE_ADDRESS_2, 4, 0);
  Write(config, PCI_BASE_ADDRESS_3, 4, 0x00000004);
  EXPECT_EQ(config.BarAddress(2), uint64_t{0x4} << 32);
  // The upper slot is not a BAR of its own.
  EXPECT_EQ(config.BarAddress(1), 0u);
  EXPECT_EQ(config.bar(3).size, 0u);
}

// An I/O BAR keeps bit 0 set and sizes with bits 1:0 fixed.
TEST(ConfigSpaceTest, IoBarSizing) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[1] = {.size = 32, .kind = BarKind::kIo};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 0, false));
  EXPECT_EQ(Read(config, PCI_BASE_ADDRESS_1, 4), 1u);
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_1, 0xffffffff), 0xffffffe1u);
  EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_1, 0x0000c04f), 0x0000c041u);
  EXPECT_EQ(config.BarAddress(1), 0xc040u);
}

// Unimplemented BARs read as zero whatever is written.
TEST(ConfigSpaceTest, UnimplementedBarsReadZero) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  for (int i = 0; i < kNumBars; ++i) {
    EXPECT_EQ(WriteRead32(config, PCI_BASE_ADDRESS_0 + 4 * i, 0xffffffff), 0u) << i;
    EXPECT_EQ(config.BarAddress(i), 0u);
  }
}

// The ROM BAR sizes from bit 11 up and has a writable enable bit.
TEST(ConfigSpaceTest, RomBarSizing) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config,
                       ConfigSpace::Create(TestIdentity(), kNoBars, 64 * 1024, false));
  EXPECT_EQ(WriteRead32(config, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_MASK), 0xffff0000u);
  EXPECT_FALSE(config.RomEnabled());
  EXPECT_EQ(WriteRead32(config, PCI_ROM_ADDRESS, 0xffffffff), 0xffff0001u);
  EXPECT_EQ(WriteRead32(config, PCI_ROM_ADDRESS, 0xc0000001), 0xc0000001u);
  EXPECT_EQ(config.RomAddress(), 0xc0000000u);
  EXPECT_TRUE(config.RomEnabled());
  EXPECT_EQ(config.rom_size(), 64u * 1024);
}

// Without a ROM the ROM BAR is hardwired to zero.
TEST(ConfigSpaceTest, NoRomReadsZero) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_EQ(WriteRead32(config, PCI_ROM_ADDRESS, 0xffffffff), 0u);
  EXPECT_FALSE(config.RomEnabled());
}

// Only I/O, memory, bus master, parity, SERR# and interrupt disable stick.
TEST(ConfigSpaceTest, CommandWritableBits) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  Write(config, PCI_COMMAND, 2, 0xffff);
  EXPECT_EQ(config.command(), PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                  PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                  PCI_COMMAND_INTX_DISABLE);
  Write(config, PCI_COMMAND, 2, 0);
  EXPECT_EQ(config.command(), 0);
}

// Status error bits clear when written with 1 and ignore 0; the guest can
// set none of them.
TEST(ConfigSpaceTest, StatusErrorBitsAreRw1c) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  Write(config, PCI_STATUS, 2, 0xffff);
  EXPECT_EQ(config.status(), 0);

  const uint16_t errors = PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
                          PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT |
                          PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY;
  config.Set16(PCI_STATUS, errors);
  Write(config, PCI_STATUS, 2, 0);
  EXPECT_EQ(config.status(), errors);
  Write(config, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
  EXPECT_EQ(config.status(), errors & ~PCI_STATUS_REC_MASTER_ABORT);
  // The high byte alone, as a byte write.
  Write(config, PCI_STATUS + 1, 1, 0xff);
  EXPECT_EQ(config.status(), 0);
}

// Interrupt status is the framework's to set; guest writes do not touch it.
TEST(ConfigSpaceTest, InterruptStatusIsReadOnly) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  config.SetInterruptStatus(true);
  EXPECT_EQ(Read(config, PCI_STATUS, 2), uint32_t{PCI_STATUS_INTERRUPT});
  Write(config, PCI_STATUS, 2, 0xffff);
  Write(config, PCI_STATUS, 2, 0);
  EXPECT_EQ(Read(config, PCI_STATUS, 2), uint32_t{PCI_STATUS_INTERRUPT});
  config.SetInterruptStatus(false);
  EXPECT_EQ(config.status(), 0);
}

// The interrupt line is the guest's scratch byte; the pin is fixed.
TEST(ConfigSpaceTest, InterruptLineWritablePinReadOnly) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  Write(config, PCI_INTERRUPT_LINE, 2, 0xff0b);
  EXPECT_EQ(Read(config, PCI_INTERRUPT_LINE, 1), 0x0bu);
  EXPECT_EQ(Read(config, PCI_INTERRUPT_PIN, 1), 1u);
}

// Cache line size is writable; the latency timer only on conventional PCI.
TEST(ConfigSpaceTest, CacheLineAndLatencyTimer) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace pci, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  Write(pci, PCI_CACHE_LINE_SIZE, 2, 0x4010);
  EXPECT_EQ(Read(pci, PCI_CACHE_LINE_SIZE, 2), 0x4010u);

  ASSERT_OK_AND_ASSIGN(ConfigSpace pcie, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  Write(pcie, PCI_CACHE_LINE_SIZE, 2, 0x4010);
  EXPECT_EQ(Read(pcie, PCI_CACHE_LINE_SIZE, 2), 0x0010u);
}

// Identity, header type, BIST and the capability pointer ignore writes.
TEST(ConfigSpaceTest, ReadOnlyRegistersIgnoreWrites) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  ASSERT_OK(config.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 4)));
  const std::vector<uint8_t> before = Image(config);
  for (uint32_t offset : {PCI_VENDOR_ID, PCI_CLASS_REVISION, PCI_CACHE_LINE_SIZE + 2,
                          PCI_SUBSYSTEM_VENDOR_ID, PCI_CAPABILITY_LIST, 0x38}) {
    Write(config, offset, 4, 0xffffffff);
    Write(config, offset, 4, 0);
  }
  const std::vector<uint8_t> after = Image(config);
  for (uint32_t offset : {PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_CLASS_REVISION, PCI_HEADER_TYPE,
                          PCI_BIST, PCI_SUBSYSTEM_VENDOR_ID, PCI_SUBSYSTEM_ID,
                          PCI_CAPABILITY_LIST, 0x38}) {
    EXPECT_EQ(after[offset], before[offset]) << "offset 0x" << std::hex << offset;
  }
}

// Reads of 1, 2, 3 and 4 bytes at unaligned offsets see the same bytes.
TEST(ConfigSpaceTest, ReadsOfAnySizeAndAlignment) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_EQ(Read(config, 0x01, 1), 0x1au);
  EXPECT_EQ(Read(config, 0x01, 2), 0xf01au);
  EXPECT_EQ(Read(config, 0x01, 3), 0x10f01au);
  EXPECT_EQ(Read(config, 0x03, 4), 0x00000010u);
  EXPECT_EQ(Read(config, 0x09, 3), 0x018002u);
}

// A write straddling read-only and writable registers changes only the
// writable bits, and byte-wise BAR sizing equals a dword write.
TEST(ConfigSpaceTest, WritesOfAnySizeAndAlignment) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 256, .kind = BarKind::kMemory32};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 0, false));
  // Device ID high byte (read-only) and command low byte (writable).
  Write(config, 0x03, 2, 0x07ab);
  EXPECT_EQ(Read(config, PCI_DEVICE_ID, 2), 0x10f0u);
  EXPECT_EQ(config.command(), 0x0007);
  // Command high byte alone.
  Write(config, PCI_COMMAND + 1, 1, 0x04);
  EXPECT_EQ(config.command(), 0x0407);
  // Three bytes over the interrupt line, pin and MIN_GNT.
  Write(config, PCI_INTERRUPT_LINE, 3, 0xffffff);
  EXPECT_EQ(Read(config, PCI_INTERRUPT_LINE, 4), 0x000001ffu);
  for (uint32_t i = 0; i < 4; ++i) Write(config, PCI_BASE_ADDRESS_0 + i, 1, 0xff);
  EXPECT_EQ(Read(config, PCI_BASE_ADDRESS_0, 4), 0xffffff00u);
  Write(config, PCI_BASE_ADDRESS_0 + 2, 2, 0xfeb0);
  EXPECT_EQ(config.BarAddress(0), 0xfeb0ff00u);
}

// Capabilities are placed dword-aligned from 0x40 and chained in order.
TEST(ConfigSpaceTest, CapabilitiesArePlacedAndChained) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_FALSE(config.FindCapability(PCI_CAP_ID_PM).has_value());
  ASSERT_OK_AND_ASSIGN(uint16_t first, config.AddCapability(PlainCapability(PCI_CAP_ID_PM, 8)));
  ASSERT_OK_AND_ASSIGN(uint16_t second, config.AddCapability(PlainCapability(PCI_CAP_ID_MSI, 5)));
  ASSERT_OK_AND_ASSIGN(uint16_t third, config.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 3)));
  EXPECT_EQ(first, 0x40);
  EXPECT_EQ(second, 0x48);
  EXPECT_EQ(third, 0x50);  // 0x48 + 5 rounded up.

  EXPECT_NE(config.status() & PCI_STATUS_CAP_LIST, 0);
  EXPECT_EQ(Read(config, PCI_CAPABILITY_LIST, 1), 0x40u);
  EXPECT_EQ(Read(config, 0x40, 2), uint32_t{PCI_CAP_ID_PM} | 0x48u << 8);
  EXPECT_EQ(Read(config, 0x48, 2), uint32_t{PCI_CAP_ID_MSI} | 0x50u << 8);
  EXPECT_EQ(Read(config, 0x50, 2), uint32_t{PCI_CAP_ID_VNDR});
  EXPECT_EQ(Read(config, 0x42, 1), 0x5au);  // The body is copied.

  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_PM), 0x40);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_MSI), 0x48);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_VNDR), 0x50);
  EXPECT_FALSE(config.FindCapability(PCI_CAP_ID_MSIX).has_value());
}

// A capability's writable and RW1C masks apply; its header stays read-only
// whatever masks the builder gave it.
TEST(ConfigSpaceTest, CapabilityMasksApply) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  Capability cap = PlainCapability(PCI_CAP_ID_VNDR, 4);
  cap.writable = {0xff, 0xff, 0x0f, 0x00};
  cap.rw1c = {0x00, 0x00, 0x00, 0x80};
  cap.bytes = {0, 0, 0x00, 0x81};
  ASSERT_OK_AND_ASSIGN(uint16_t at, config.AddCapability(cap));
  Write(config, at, 4, 0xffffffff);
  EXPECT_EQ(Read(config, at, 4), 0x010f0000u | PCI_CAP_ID_VNDR);
}

// Capabilities that do not fit below 0x100 are refused and the chain stays
// as it was; the last dword up to 0xff is usable.
TEST(ConfigSpaceTest, CapabilityOverflowRejected) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  for (uint16_t expected : {0x40, 0x80, 0xc0}) {
    ASSERT_OK_AND_ASSIGN(uint16_t at, config.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 64)));
    EXPECT_EQ(at, expected);
  }
  EXPECT_THAT(config.AddCapability(PlainCapability(PCI_CAP_ID_PM, 2)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(Read(config, 0xc1, 1), 0u);
  EXPECT_FALSE(config.FindCapability(PCI_CAP_ID_PM).has_value());

  ASSERT_OK_AND_ASSIGN(ConfigSpace fresh, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_THAT(fresh.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 0xc1)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_OK(fresh.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 0xc0)));
}

// Malformed capabilities are refused with InvalidArgument.
TEST(ConfigSpaceTest, MalformedCapabilityRejected) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  EXPECT_THAT(config.AddCapability(PlainCapability(0, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(config.AddCapability(PlainCapability(PCI_CAP_ID_VNDR, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Capability short_mask = PlainCapability(PCI_CAP_ID_VNDR, 4);
  short_mask.writable.pop_back();
  EXPECT_THAT(config.AddCapability(short_mask), StatusIs(absl::StatusCode::kInvalidArgument));
  Capability both = PlainCapability(PCI_CAP_ID_VNDR, 4);
  both.writable[3] = 0x81;
  both.rw1c[3] = 0x01;
  EXPECT_THAT(config.AddCapability(both), StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(0, 1, 8)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_VNDR, 16, 8)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_VNDR, 1, 3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(config.FindCapability(PCI_CAP_ID_VNDR).has_value());
  EXPECT_EQ(Read(config, 0x100, 4), 0u);
}

// Extended capabilities start at 0x100 and chain through 12-bit pointers
// in their headers, with the version in bits 19:16.
TEST(ConfigSpaceTest, ExtendedCapabilitiesArePlacedAndChained) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  EXPECT_FALSE(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN).has_value());
  ASSERT_OK_AND_ASSIGN(uint16_t first,
                       config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 12)));
  ASSERT_OK_AND_ASSIGN(uint16_t second,
                       config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_VNDR, 2, 9)));
  ASSERT_OK_AND_ASSIGN(uint16_t third,
                       config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_LTR, 1, 8)));
  EXPECT_EQ(first, 0x100);
  EXPECT_EQ(second, 0x10c);
  EXPECT_EQ(third, 0x118);  // 0x10c + 9 rounded up.
  EXPECT_EQ(Read(config, 0x100, 4), 0x10c00000u | 1u << 16 | PCI_EXT_CAP_ID_DSN);
  EXPECT_EQ(Read(config, 0x10c, 4), 0x11800000u | 2u << 16 | PCI_EXT_CAP_ID_VNDR);
  EXPECT_EQ(Read(config, 0x118, 4), 1u << 16 | PCI_EXT_CAP_ID_LTR);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), 0x100);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_VNDR), 0x10c);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_LTR), 0x118);
  EXPECT_FALSE(config.FindExtendedCapability(PCI_EXT_CAP_ID_ERR).has_value());
  // Standard capabilities are a separate chain.
  EXPECT_EQ(config.status() & PCI_STATUS_CAP_LIST, 0);
}

// A conventional space has no room for extended capabilities.
TEST(ConfigSpaceTest, ExtendedCapabilityNeedsExpress) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 12)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN).has_value());
}

// Extended capabilities past 0x1000 are refused; one ending exactly there fits.
TEST(ConfigSpaceTest, ExtendedCapabilityOverflowRejected) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_VNDR, 1, 0xf01)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_OK(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_VNDR, 1, 0xefc)));
  ASSERT_OK(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 4)));
  EXPECT_THAT(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_LTR, 1, 4)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), 0xffc);
  EXPECT_FALSE(config.FindExtendedCapability(PCI_EXT_CAP_ID_LTR).has_value());
}

// A chain corrupted into a loop ends the walk instead of spinning.
TEST(ConfigSpaceTest, FindStopsOnLoopingChains) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, true));
  ASSERT_OK(config.AddCapability(PlainCapability(PCI_CAP_ID_PM, 8)));
  ASSERT_OK(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 12)));
  config.Set8(0x41, 0x40);
  config.Set32(0x100, 0x10010000u | PCI_EXT_CAP_ID_DSN);
  EXPECT_FALSE(config.FindCapability(PCI_CAP_ID_MSI).has_value());
  EXPECT_FALSE(config.FindExtendedCapability(PCI_EXT_CAP_ID_VNDR).has_value());
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_PM), 0x40);
}

// Reset restores every register a guest or the framework changed.
TEST(ConfigSpaceTest, ResetRestoresDefaults) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 4096, .kind = BarKind::kMemory64};
  bars[2] = {.size = 16, .kind = BarKind::kIo};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 4096, true));
  Capability cap = PlainCapability(PCI_CAP_ID_VNDR, 4);
  cap.writable[2] = 0xff;
  ASSERT_OK(config.AddCapability(cap));
  ASSERT_OK(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 12)));
  const std::vector<uint8_t> defaults = Image(config);

  Write(config, PCI_COMMAND, 2, 0xffff);
  Write(config, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
  Write(config, PCI_BASE_ADDRESS_1, 4, 0x12345678);
  Write(config, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
  Write(config, PCI_ROM_ADDRESS, 4, 0xffffffff);
  Write(config, PCI_INTERRUPT_LINE, 1, 0x0a);
  Write(config, 0x42, 1, 0x77);
  config.SetInterruptStatus(true);
  config.Set16(PCI_STATUS, config.status() | PCI_STATUS_DETECTED_PARITY);
  ASSERT_NE(Image(config), defaults);

  config.Reset();
  EXPECT_EQ(Image(config), defaults);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_VNDR), 0x40);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), 0x100);
}

// Random writes of random lengths anywhere in the space never change a bit
// that a single-byte probe shows is fixed, nor the capability chains.
TEST(ConfigSpaceTest, RandomWritesKeepReadOnlyBits) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 1 << 20, .kind = BarKind::kMemory64, .prefetchable = true};
  bars[2] = {.size = 4096, .kind = BarKind::kMemory32};
  bars[3] = {.size = 64, .kind = BarKind::kIo};
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), bars, 8192, true));
  Capability cap = PlainCapability(PCI_CAP_ID_VNDR, 12);
  cap.writable[4] = 0xf0;
  cap.rw1c[5] = 0x0f;
  cap.bytes[5] = 0x0f;
  ASSERT_OK(config.AddCapability(cap));
  ASSERT_OK(config.AddCapability(PlainCapability(PCI_CAP_ID_PM, 8)));
  ASSERT_OK(config.AddExtendedCapability(PlainExtended(PCI_EXT_CAP_ID_DSN, 1, 12)));

  // Bits a lone write of ones and then zeros leaves alone are read-only
  // (RW1C bits, clear after the first probe, stay clear).
  ConfigSpace probe = config;
  std::vector<uint8_t> fixed(config.size());
  for (uint32_t o = 0; o < config.size(); ++o) {
    Write(probe, o, 1, 0xff);
    const uint8_t ones = probe.Get8(o);
    Write(probe, o, 1, 0x00);
    fixed[o] = static_cast<uint8_t>(~(ones ^ probe.Get8(o)));
  }
  ASSERT_EQ(fixed[PCI_COMMAND], static_cast<uint8_t>(~0x47));
  config = probe;
  const std::vector<uint8_t> start = Image(config);

  std::mt19937 rng(20240611);
  for (int round = 0; round < 20000; ++round) {
    const uint32_t offset = rng() % config.size();
    const uint32_t length = 1 + rng() % std::min<uint32_t>(64, config.size() - offset);
    std::vector<uint8_t> data(length);
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    config.Write(offset, data);
  }
  const std::vector<uint8_t> end = Image(config);
  for (uint32_t o = 0; o < config.size(); ++o) {
    ASSERT_EQ(end[o] & fixed[o], start[o] & fixed[o]) << "offset 0x" << std::hex << o;
  }
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_PM), 0x4c);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), 0x100);
  EXPECT_EQ(Read(config, PCI_VENDOR_ID, 4), 0x10f01af4u);
}

// An access outside the space is a caller bug and aborts instead of
// touching memory past the array.
TEST(ConfigSpaceDeathTest, OutOfRangeAccessAborts) {
  ASSERT_OK_AND_ASSIGN(ConfigSpace config, ConfigSpace::Create(TestIdentity(), kNoBars, 0, false));
  uint8_t buffer[8] = {};
  EXPECT_DEATH(config.Read(252, absl::MakeSpan(buffer, 8)), "outside the space");
  EXPECT_DEATH(config.Write(0xffffffff, absl::MakeConstSpan(buffer, 2)), "outside the space");
  EXPECT_DEATH(config.Get32(254), "outside the space");
  config.Read(248, absl::MakeSpan(buffer, 8));  // The last 8 bytes are fine.
}

}  // namespace
}  // namespace vfu::pci
