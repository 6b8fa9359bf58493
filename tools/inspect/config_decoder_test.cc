#include "tools/inspect/config_decoder.h"

#include <linux/pci_regs.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "tools/inspect/config_image.h"

namespace vfu::inspect {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::vfu::inspect::testing::Concat;
using ::vfu::inspect::testing::ConfigImage;
using ::vfu::inspect::testing::Le16;
using ::vfu::inspect::testing::Le32;
using ::vfu::testing::StatusIs;

ConfigSpaceInfo Decode(const ConfigImage& image) {
  absl::StatusOr<ConfigSpaceInfo> info = DecodeConfigSpace(image.bytes());
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *std::move(info) : ConfigSpaceInfo{};
}

// True when some warning contains `text`.
bool Warned(const ConfigSpaceInfo& info, const std::string& text) {
  for (const std::string& w : info.warnings) {
    if (w.find(text) != std::string::npos) return true;
  }
  return false;
}

// Less than the 64-byte header cannot be decoded at all.
TEST(ConfigDecoderTest, ShorterThanHeaderIsInvalidArgument) {
  std::vector<uint8_t> bytes(63, 0);
  EXPECT_THAT(DecodeConfigSpace(bytes), StatusIs(absl::StatusCode::kInvalidArgument));
}

// The type-0 header registers land in their fields.
TEST(ConfigDecoderTest, HeaderFields) {
  ConfigImage image;
  image.Identity(0x1af4, 0x1041, 0x010802, 0x07)
      .Set16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)
      .Set16(PCI_STATUS, PCI_STATUS_INTERRUPT)
      .Set8(PCI_HEADER_TYPE, 0x80)
      .Set8(PCI_CACHE_LINE_SIZE, 16)
      .Set8(PCI_LATENCY_TIMER, 32)
      .Set16(PCI_SUBSYSTEM_VENDOR_ID, 0x8086)
      .Set16(PCI_SUBSYSTEM_ID, 0x1234)
      .Set8(PCI_INTERRUPT_LINE, 11)
      .Set8(PCI_INTERRUPT_PIN, 1);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_EQ(info.size, 256u);
  EXPECT_EQ(info.vendor_id, 0x1af4);
  EXPECT_EQ(info.device_id, 0x1041);
  EXPECT_EQ(info.class_code, 0x010802u);
  EXPECT_EQ(info.revision, 0x07);
  EXPECT_EQ(info.command, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_EQ(info.status, PCI_STATUS_INTERRUPT);
  EXPECT_EQ(info.header_type, 0);
  EXPECT_TRUE(info.multifunction);
  EXPECT_EQ(info.cache_line_size, 16);
  EXPECT_EQ(info.latency_timer, 32);
  EXPECT_EQ(info.subsystem_vendor_id, 0x8086);
  EXPECT_EQ(info.subsystem_id, 0x1234);
  EXPECT_EQ(info.interrupt_line, 11);
  EXPECT_EQ(info.interrupt_pin, 1);
  EXPECT_THAT(info.bars, SizeIs(6));
  EXPECT_THAT(info.capabilities, IsEmpty());
  EXPECT_THAT(info.warnings, IsEmpty());
}

// Every BAR encoding: I/O, 32-bit, 64-bit (two slots combined), below 1M.
TEST(ConfigDecoderTest, BarKinds) {
  ConfigImage image;
  image.Identity(0x1234, 0x0001, 0, 0)
      .Set32(PCI_BASE_ADDRESS_0, 0xc001)
      .Set32(PCI_BASE_ADDRESS_1, 0xfe000000)
      .Set32(PCI_BASE_ADDRESS_2, 0x80000000 | PCI_BASE_ADDRESS_MEM_TYPE_64 |
                                     PCI_BASE_ADDRESS_MEM_PREFETCH)
      .Set32(PCI_BASE_ADDRESS_3, 0x00000012)
      .Set32(PCI_BASE_ADDRESS_4, 0x000c0000 | PCI_BASE_ADDRESS_MEM_TYPE_1M);
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.bars, SizeIs(6));
  EXPECT_EQ(info.bars[0].kind, ConfigBar::Kind::kIo);
  EXPECT_EQ(info.bars[0].address, 0xc000u);
  EXPECT_EQ(info.bars[1].kind, ConfigBar::Kind::kMemory32);
  EXPECT_FALSE(info.bars[1].prefetchable);
  EXPECT_EQ(info.bars[1].address, 0xfe000000u);
  EXPECT_EQ(info.bars[2].kind, ConfigBar::Kind::kMemory64);
  EXPECT_TRUE(info.bars[2].prefetchable);
  EXPECT_EQ(info.bars[2].address, 0x0000001280000000u);
  EXPECT_EQ(info.bars[3].kind, ConfigBar::Kind::kUpperHalf);
  EXPECT_EQ(info.bars[4].kind, ConfigBar::Kind::kMemoryBelow1M);
  EXPECT_EQ(info.bars[5].kind, ConfigBar::Kind::kMemory32);
  EXPECT_EQ(info.bars[5].raw, 0u);
}

// A 64-bit BAR in slot 5 has nowhere to put its upper half.
TEST(ConfigDecoderTest, SixtyFourBitBarInLastSlotWarns) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).Set32(PCI_BASE_ADDRESS_5, PCI_BASE_ADDRESS_MEM_TYPE_64);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_EQ(info.bars[5].kind, ConfigBar::Kind::kMemory64);
  EXPECT_TRUE(Warned(info, "BAR 5: 64-bit BAR in the last slot"));
}

// Memory type 3 is undefined by PCI: decoded as such, with a warning.
TEST(ConfigDecoderTest, ReservedMemoryTypeWarns) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).Set32(PCI_BASE_ADDRESS_1, 0x6);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_EQ(info.bars[1].kind, ConfigBar::Kind::kMemoryReserved);
  EXPECT_TRUE(Warned(info, "BAR 1: reserved memory type"));
}

TEST(ConfigDecoderTest, ExpansionRom) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).Set32(PCI_ROM_ADDRESS, 0xfff80000 | PCI_ROM_ADDRESS_ENABLE);
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_TRUE(info.rom.has_value());
  EXPECT_EQ(info.rom->address, 0xfff80000u);
  EXPECT_TRUE(info.rom->enabled);
}

// A bridge header has two BARs and no subsystem IDs; the decoder says it
// only decodes part of it.
TEST(ConfigDecoderTest, BridgeHeaderDecodesTwoBars) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0x060400, 0).Set8(PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.bars, SizeIs(2));
  EXPECT_TRUE(Warned(info, "header type 1"));
}

TEST(ConfigDecoderTest, PowerManagement) {
  ConfigImage image;
  const uint16_t pmc = 3 | PCI_PM_CAP_DSI | (2 << 6) | PCI_PM_CAP_D1 | PCI_PM_CAP_PME_D0 |
                       PCI_PM_CAP_PME_D3cold;
  const uint16_t pmcsr = 3 | PCI_PM_CTRL_NO_SOFT_RESET | PCI_PM_CTRL_PME_ENABLE | (5 << 9) |
                         (2 << 13) | PCI_PM_CTRL_PME_STATUS;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x40, PCI_CAP_ID_PM, Concat({Le16(pmc), Le16(pmcsr), {0, 0}}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.capabilities, SizeIs(1));
  EXPECT_EQ(info.capabilities[0].offset, 0x40);
  EXPECT_EQ(info.capabilities[0].id, PCI_CAP_ID_PM);
  const auto* pm = std::get_if<PowerManagementCapability>(&info.capabilities[0].body);
  ASSERT_NE(pm, nullptr);
  EXPECT_EQ(pm->version, 3);
  EXPECT_FALSE(pm->pme_clock);
  EXPECT_TRUE(pm->device_specific_init);
  EXPECT_EQ(pm->aux_current, 2);
  EXPECT_TRUE(pm->d1);
  EXPECT_FALSE(pm->d2);
  EXPECT_EQ(pm->pme_support, 0x11);
  EXPECT_EQ(pm->power_state, 3);
  EXPECT_TRUE(pm->no_soft_reset);
  EXPECT_TRUE(pm->pme_enable);
  EXPECT_EQ(pm->data_select, 5);
  EXPECT_EQ(pm->data_scale, 2);
  EXPECT_TRUE(pm->pme_status);
  EXPECT_THAT(info.warnings, IsEmpty());
}

// 32-bit MSI without masking: data follows the 32-bit address.
TEST(ConfigDecoderTest, Msi32WithoutMasking) {
  ConfigImage image;
  const uint16_t control = PCI_MSI_FLAGS_ENABLE | (2 << 1) | (1 << 4);
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x50, PCI_CAP_ID_MSI,
                     Concat({Le16(control), Le32(0xfee00000), Le16(0x4021)}));
  const ConfigSpaceInfo info = Decode(image);
  const MsiCapability* msi = info.Find<MsiCapability>();
  ASSERT_NE(msi, nullptr);
  EXPECT_TRUE(msi->enabled);
  EXPECT_EQ(msi->vectors_capable, 4u);
  EXPECT_EQ(msi->vectors_enabled, 2u);
  EXPECT_FALSE(msi->address64);
  EXPECT_FALSE(msi->per_vector_mask);
  EXPECT_EQ(msi->address, 0xfee00000u);
  EXPECT_EQ(msi->data, 0x4021);
}

// 64-bit MSI with per-vector masking: upper address, data, mask, pending.
TEST(ConfigDecoderTest, Msi64WithMasking) {
  ConfigImage image;
  const uint16_t control = (5 << 1) | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x60, PCI_CAP_ID_MSI,
                     Concat({Le16(control), Le32(0xfee01000), Le32(0x1), Le16(0x55), {0, 0},
                             Le32(0xf0f0f0f0), Le32(0x3)}));
  const ConfigSpaceInfo info = Decode(image);
  const MsiCapability* msi = info.Find<MsiCapability>();
  ASSERT_NE(msi, nullptr);
  EXPECT_FALSE(msi->enabled);
  EXPECT_EQ(msi->vectors_capable, 32u);
  EXPECT_EQ(msi->vectors_enabled, 1u);
  EXPECT_TRUE(msi->address64);
  EXPECT_TRUE(msi->per_vector_mask);
  EXPECT_EQ(msi->address, 0x1fee01000u);
  EXPECT_EQ(msi->data, 0x55);
  EXPECT_EQ(msi->mask, 0xf0f0f0f0u);
  EXPECT_EQ(msi->pending, 0x3u);
}

// Multiple Message Capable 6 and 7 are reserved encodings.
TEST(ConfigDecoderTest, MsiReservedVectorCountWarns) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_MSI,
                                                Concat({Le16(7 << 1), Le32(0), Le16(0)}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_NE(info.Find<MsiCapability>(), nullptr);
  EXPECT_EQ(info.Find<MsiCapability>()->vectors_capable, 32u);
  EXPECT_TRUE(Warned(info, "reserved Multiple Message Capable 7"));
}

TEST(ConfigDecoderTest, Msix) {
  ConfigImage image;
  const uint16_t control = PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | (64 - 1);
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x70, PCI_CAP_ID_MSIX,
                     Concat({Le16(control), Le32(0x2000 | 4), Le32(0x3000 | 2)}));
  const ConfigSpaceInfo info = Decode(image);
  const MsixCapability* msix = info.Find<MsixCapability>();
  ASSERT_NE(msix, nullptr);
  EXPECT_EQ(msix->table_size, 64u);
  EXPECT_TRUE(msix->enabled);
  EXPECT_TRUE(msix->function_masked);
  EXPECT_EQ(msix->table_bar, 4);
  EXPECT_EQ(msix->table_offset, 0x2000u);
  EXPECT_EQ(msix->pba_bar, 2);
  EXPECT_EQ(msix->pba_offset, 0x3000u);
}

// An endpoint's PCI Express capability, link registers included.
TEST(ConfigDecoderTest, ExpressEndpointWithLink) {
  ConfigImage image(4096);
  const uint16_t flags = 2 | (PCI_EXP_TYPE_ENDPOINT << 4) | (3 << 9);
  const uint32_t devcap = 2 | PCI_EXP_DEVCAP_EXT_TAG | PCI_EXP_DEVCAP_FLR;
  const uint16_t devctl = PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD_256B |
                          PCI_EXP_DEVCTL_READRQ_512B | PCI_EXP_DEVCTL_URRE;
  const uint32_t lnkcap = PCI_EXP_LNKCAP_SLS_8_0GB | (4 << 4) | (7u << 24);
  const uint16_t lnksta = PCI_EXP_LNKSTA_CLS_8_0GB | PCI_EXP_LNKSTA_NLW_X4;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x80, PCI_CAP_ID_EXP,
                     Concat({Le16(flags), Le32(devcap), Le16(devctl), Le16(PCI_EXP_DEVSTA_CED),
                             Le32(lnkcap), Le16(PCI_EXP_LNKCTL_ASPM_L1), Le16(lnksta)}));
  const ConfigSpaceInfo info = Decode(image);
  const ExpressCapability* exp = info.Find<ExpressCapability>();
  ASSERT_NE(exp, nullptr);
  EXPECT_EQ(exp->version, 2);
  EXPECT_EQ(exp->type, PCI_EXP_TYPE_ENDPOINT);
  EXPECT_EQ(exp->interrupt_message, 3);
  EXPECT_EQ(MaxPayloadSupportedBytes(*exp), 512u);
  EXPECT_EQ(MaxPayloadBytes(*exp), 256u);
  EXPECT_EQ(MaxReadRequestBytes(*exp), 512u);
  EXPECT_EQ(exp->device_status, PCI_EXP_DEVSTA_CED);
  ASSERT_TRUE(exp->has_link);
  EXPECT_EQ(exp->link_capabilities, lnkcap);
  EXPECT_EQ(exp->link_control, PCI_EXP_LNKCTL_ASPM_L1);
  EXPECT_EQ(exp->link_status, lnksta);
}

// A root-complex integrated endpoint has no link: none is decoded.
TEST(ConfigDecoderTest, ExpressIntegratedEndpointHasNoLink) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x40, PCI_CAP_ID_EXP,
                     Concat({Le16(2 | PCI_EXP_TYPE_RC_END << 4), Le32(0), Le16(0), Le16(0)}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_NE(info.Find<ExpressCapability>(), nullptr);
  EXPECT_FALSE(info.Find<ExpressCapability>()->has_link);
  EXPECT_THAT(info.warnings, IsEmpty());
}

// Link registers that would run past 0x100 are not read.
TEST(ConfigDecoderTest, ExpressLinkRegistersPastTheAreaWarn) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0).AddCapability(0xf0, PCI_CAP_ID_EXP,
                                                Concat({Le16(2), Le32(0), Le16(0), Le16(0)}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_NE(info.Find<ExpressCapability>(), nullptr);
  EXPECT_FALSE(info.Find<ExpressCapability>()->has_link);
  EXPECT_TRUE(Warned(info, "link registers run past 0x100"));
}

TEST(ConfigDecoderTest, VendorSpecific) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {7, 0xaa, 0xbb, 0xcc, 0xdd});
  const ConfigSpaceInfo info = Decode(image);
  const VendorCapability* vendor = info.Find<VendorCapability>();
  ASSERT_NE(vendor, nullptr);
  EXPECT_EQ(vendor->length, 7);
  EXPECT_THAT(vendor->payload, ElementsAre(0xaa, 0xbb, 0xcc, 0xdd));
  EXPECT_THAT(info.warnings, IsEmpty());
}

// A length below the 3-byte header: empty payload, a warning.
TEST(ConfigDecoderTest, VendorLengthBelowHeaderWarns) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {2});
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_NE(info.Find<VendorCapability>(), nullptr);
  EXPECT_THAT(info.Find<VendorCapability>()->payload, IsEmpty());
  EXPECT_TRUE(Warned(info, "length 2 is below its header"));
}

// A length past 0x100: the payload stops at 0x100.
TEST(ConfigDecoderTest, VendorLengthPastTheAreaIsCut) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0xf8, PCI_CAP_ID_VNDR, {40});
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_NE(info.Find<VendorCapability>(), nullptr);
  EXPECT_THAT(info.Find<VendorCapability>()->payload, SizeIs(0x100 - 0xf8 - 3));
  EXPECT_TRUE(Warned(info, "length 40 runs past 0x100"));
}

// An unknown ID keeps its raw bytes, up to the next capability above it.
TEST(ConfigDecoderTest, UnknownCapabilityKeepsRawBytes) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x40, 0x42, {1, 2, 3, 4, 5, 6})
      .AddCapability(0x48, PCI_CAP_ID_VNDR, {3});
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.capabilities, SizeIs(2));
  const Capability& unknown = info.capabilities[0];
  EXPECT_EQ(unknown.id, 0x42);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(unknown.body));
  EXPECT_THAT(unknown.raw, ElementsAre(0x42, 0x48, 1, 2, 3, 4, 5, 6));
}

// MSI-X at 0xf8 would need 12 bytes: listed, undecoded, with a warning.
TEST(ConfigDecoderTest, CapabilityRegistersPastTheAreaWarn) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0xf8, PCI_CAP_ID_MSIX, {0, 0});
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.capabilities, SizeIs(1));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(info.capabilities[0].body));
  EXPECT_TRUE(Warned(info, "run past 0x100"));
}

// A capability pointing to itself ends the walk after one entry.
TEST(ConfigDecoderTest, SelfLoopStops) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set8(0x41, 0x40);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(1));
  EXPECT_TRUE(Warned(info, "loops back"));
}

// A longer loop (A -> B -> C -> A) lists each capability once.
TEST(ConfigDecoderTest, LongLoopStops) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x40, PCI_CAP_ID_VNDR, {3})
      .AddCapability(0x60, PCI_CAP_ID_VNDR, {3})
      .AddCapability(0x80, PCI_CAP_ID_VNDR, {3});
  image.Set8(0x81, 0x40);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(3));
  EXPECT_TRUE(Warned(info, "capability pointer 0x40 at 0x81 loops back"));
}

// The first pointer into the 64-byte header: nothing is walked.
TEST(ConfigDecoderTest, FirstPointerIntoHeaderStops) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set8(PCI_CAPABILITY_LIST, 0x10);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, IsEmpty());
  EXPECT_TRUE(Warned(info, "capability pointer 0x10 at 0x34 points into the header"));
}

// A next pointer into the header ends the chain after the good entries.
TEST(ConfigDecoderTest, NextPointerIntoHeaderStops) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0)
      .AddCapability(0x40, PCI_CAP_ID_VNDR, {3})
      .AddCapability(0x50, PCI_CAP_ID_VNDR, {3});
  image.Set8(0x51, 0x04);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(2));
  EXPECT_TRUE(Warned(info, "points into the header"));
}

// A config space cut at 0x80: a pointer to 0xc0 lies past its end.
TEST(ConfigDecoderTest, PointerPastTheEndStops) {
  ConfigImage image(0x80);
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set8(0x41, 0xc0);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(1));
  EXPECT_TRUE(Warned(info, "points past 0x80"));
  EXPECT_TRUE(Warned(info, "config space is 128 bytes"));
}

// An image whose size is not a dword multiple: a capability whose header
// would be cut by the end is not read.
TEST(ConfigDecoderTest, HeaderCutByTheEndStops) {
  ConfigImage image(0x7d);
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set8(0x41, 0x7c);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(1));
  EXPECT_TRUE(Warned(info, "capability pointer 0x7c at 0x41 points past 0x7d"));
}

// Reserved low pointer bits are masked off, as drivers do.
TEST(ConfigDecoderTest, UnalignedPointerIsMasked) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set8(PCI_CAPABILITY_LIST, 0x43);
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.capabilities, SizeIs(1));
  EXPECT_EQ(info.capabilities[0].offset, 0x40);
  EXPECT_TRUE(Warned(info, "0x43 at 0x34 is not dword aligned"));
}

// Without status bit 4 the pointer means nothing: not walked, but said.
TEST(ConfigDecoderTest, PointerWithoutStatusBitIsNotWalked) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0).AddCapability(0x40, PCI_CAP_ID_VNDR, {3});
  image.Set16(PCI_STATUS, 0);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, IsEmpty());
  EXPECT_TRUE(Warned(info, "status bit 4"));
}

// The densest possible valid chain (every dword from 0x40) is walked to
// its end: the loop guard does not cut legitimate chains.
TEST(ConfigDecoderTest, DensestChainIsWalkedCompletely) {
  ConfigImage image;
  image.Identity(0x1234, 1, 0, 0);
  for (uint32_t at = 0x40; at < 0x100; at += 4) {
    image.AddCapability(static_cast<uint8_t>(at), 0x42, {});
  }
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.capabilities, SizeIs(48));
  EXPECT_THAT(info.warnings, IsEmpty());
}

TEST(ConfigDecoderTest, DeviceSerialNumber) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0)
      .AddExtended(0x100, PCI_EXT_CAP_ID_DSN, 1, Concat({Le32(0x89abcdef), Le32(0x01234567)}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.extended_capabilities, SizeIs(1));
  EXPECT_EQ(info.extended_capabilities[0].version, 1);
  const SerialNumberCapability* dsn = info.Find<SerialNumberCapability>();
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(dsn->serial, 0x0123456789abcdefu);
}

TEST(ConfigDecoderTest, VendorSpecificExtended) {
  ConfigImage image(4096);
  const uint32_t vsec_header = 0x1ab | (3 << 16) | (12u << 20);
  image.Identity(0x1234, 1, 0, 0)
      .AddExtended(0x100, PCI_EXT_CAP_ID_DSN, 1, Concat({Le32(1), Le32(0)}))
      .AddExtended(0x140, PCI_EXT_CAP_ID_VNDR, 1, Concat({Le32(vsec_header), {9, 8, 7, 6}}));
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.extended_capabilities, SizeIs(2));
  EXPECT_EQ(info.extended_capabilities[0].next, 0x140);
  const VendorExtendedCapability* vsec = info.Find<VendorExtendedCapability>();
  ASSERT_NE(vsec, nullptr);
  EXPECT_EQ(vsec->vsec_id, 0x1ab);
  EXPECT_EQ(vsec->vsec_rev, 3);
  EXPECT_EQ(vsec->vsec_length, 12);
  EXPECT_THAT(vsec->payload, ElementsAre(9, 8, 7, 6));
  EXPECT_THAT(info.warnings, IsEmpty());
}

// VSEC lengths below the 8-byte header or past 0x1000 are reported.
TEST(ConfigDecoderTest, VendorExtendedBadLengthsWarn) {
  ConfigImage small(4096);
  small.Identity(0x1234, 1, 0, 0).AddExtended(0x100, PCI_EXT_CAP_ID_VNDR, 1, Le32(4u << 20));
  EXPECT_TRUE(Warned(Decode(small), "length 4 is below its header"));

  ConfigImage large(4096);
  large.Identity(0x1234, 1, 0, 0).AddExtended(0xff0, PCI_EXT_CAP_ID_VNDR, 1, Le32(64u << 20));
  large.Set32(0x100, PCI_EXT_CAP_ID_VNDR | 0xff0u << 20).Set32(0x104, 8u << 20);
  const ConfigSpaceInfo info = Decode(large);
  ASSERT_THAT(info.extended_capabilities, SizeIs(2));
  EXPECT_THAT(std::get<VendorExtendedCapability>(info.extended_capabilities[1].body).payload,
              SizeIs(8));
  EXPECT_TRUE(Warned(info, "length 64 runs past 0x1000"));
}

TEST(ConfigDecoderTest, UnknownExtendedKeepsRawBytes) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0).AddExtended(0x100, 0x77, 2, {0xde, 0xad});
  const ConfigSpaceInfo info = Decode(image);
  ASSERT_THAT(info.extended_capabilities, SizeIs(1));
  EXPECT_EQ(info.extended_capabilities[0].id, 0x77);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(info.extended_capabilities[0].body));
  EXPECT_THAT(info.extended_capabilities[0].raw, SizeIs(kMaxRawCapabilityBytes));
  EXPECT_EQ(info.extended_capabilities[0].raw[4], 0xde);
}

// No extended capabilities: all zeros or all ones at 0x100, or a 256-byte
// space, are not errors.
TEST(ConfigDecoderTest, NoExtendedCapabilities) {
  ConfigImage zeros(4096);
  zeros.Identity(0x1234, 1, 0, 0);
  EXPECT_THAT(Decode(zeros).extended_capabilities, IsEmpty());
  EXPECT_THAT(Decode(zeros).warnings, IsEmpty());

  ConfigImage ones(4096);
  ones.Identity(0x1234, 1, 0, 0).Set32(0x100, 0xffffffff);
  EXPECT_THAT(Decode(ones).extended_capabilities, IsEmpty());

  ConfigImage conventional(256);
  conventional.Identity(0x1234, 1, 0, 0);
  EXPECT_FALSE(Decode(conventional).has_extended_space());
}

TEST(ConfigDecoderTest, ExtendedLoopStops) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0)
      .AddExtended(0x100, PCI_EXT_CAP_ID_DSN, 1, Concat({Le32(1), Le32(0)}))
      .AddExtended(0x200, 0x55, 1, {});
  image.Set32(0x200, 0x55 | 1 << 16 | 0x100u << 20);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.extended_capabilities, SizeIs(2));
  EXPECT_TRUE(Warned(info, "extended capability pointer 0x100 at 0x200 loops back"));
}

TEST(ConfigDecoderTest, ExtendedPointerBelowAreaStops) {
  ConfigImage image(4096);
  image.Identity(0x1234, 1, 0, 0).AddExtended(0x100, 0x55, 1, {});
  image.Set32(0x100, 0x55 | 0x40u << 20);
  const ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.extended_capabilities, SizeIs(1));
  EXPECT_TRUE(Warned(info, "points below 0x100"));
}

// An image cut at 0x200 (a foreign device's odd region size): a pointer to
// 0x300 lies past it, and a serial number at 0x1f8 does not fit.
TEST(ConfigDecoderTest, ExtendedPointerPastTheEndStops) {
  ConfigImage image(0x200);
  image.Identity(0x1234, 1, 0, 0).AddExtended(0x100, 0x55, 1, {});
  image.Set32(0x100, 0x55 | 0x300u << 20);
  ConfigSpaceInfo info = Decode(image);
  EXPECT_THAT(info.extended_capabilities, SizeIs(1));
  EXPECT_TRUE(Warned(info, "extended capability pointer 0x300 at 0x100 points past 0x200"));

  image.Set32(0x100, 0x55 | 0x1f8u << 20).Set32(0x1f8, PCI_EXT_CAP_ID_DSN);
  info = Decode(image);
  ASSERT_THAT(info.extended_capabilities, SizeIs(2));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(info.extended_capabilities[1].body));
  EXPECT_TRUE(Warned(info, "device serial number at 0x1f8 runs past 0x200"));
}

// Bytes past 4 KiB are not config space.
TEST(ConfigDecoderTest, BytesPast4KiBAreIgnored) {
  std::vector<uint8_t> bytes(5000, 0);
  bytes[0] = 0x34;
  bytes[1] = 0x12;
  absl::StatusOr<ConfigSpaceInfo> info = DecodeConfigSpace(bytes);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 4096u);
  EXPECT_EQ(info->vendor_id, 0x1234);
}

// An all-ones image (a missing function) decodes without crashing and says
// no function answers.
TEST(ConfigDecoderTest, AllOnesImage) {
  std::vector<uint8_t> bytes(4096, 0xff);
  absl::StatusOr<ConfigSpaceInfo> info = DecodeConfigSpace(bytes);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->vendor_id, 0xffff);
  EXPECT_TRUE(Warned(*info, "no function answers"));
  EXPECT_THAT(info->extended_capabilities, IsEmpty());
}

}  // namespace
}  // namespace vfu::inspect
