#include "vfu/pci/capabilities.h"

#include <linux/pci_regs.h>

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/pci/config_space.h"

namespace vfu::pci {
namespace {

using ::vfu::testing::StatusIs;

ConfigSpace NewSpace(bool express, std::array<BarLayout, kNumBars> bars = {}) {
  absl::StatusOr<ConfigSpace> config =
      ConfigSpace::Create(Identity{.vendor_id = 0x1af4, .device_id = 0x1000}, bars, 0, express);
  EXPECT_OK(config);
  return *std::move(config);
}

// Adds `cap` and returns its offset (0 on failure, which also fails the test).
uint16_t Add(ConfigSpace& config, const absl::StatusOr<Capability>& cap) {
  EXPECT_OK(cap);
  if (!cap.ok()) return 0;
  absl::StatusOr<uint16_t> offset = config.AddCapability(*cap);
  EXPECT_OK(offset);
  return offset.value_or(0);
}

uint16_t AddExtended(ConfigSpace& config, const absl::StatusOr<ExtendedCapability>& cap) {
  EXPECT_OK(cap);
  if (!cap.ok()) return 0;
  absl::StatusOr<uint16_t> offset = config.AddExtendedCapability(*cap);
  EXPECT_OK(offset);
  return offset.value_or(0);
}

void Write(ConfigSpace& config, uint32_t offset, uint32_t width, uint32_t value) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  config.Write(offset, absl::MakeConstSpan(bytes, width));
}

// Every builder's masks match its bytes in length.
TEST(CapabilitiesTest, MasksMatchBytes) {
  std::vector<Capability> caps = {PowerManagement(), *Msi(8, true, true), *MsiX(4, 0, 0, 0, 64),
                                  *PciExpress(), *VendorSpecific({1, 2, 3})};
  for (const Capability& cap : caps) {
    EXPECT_EQ(cap.writable.size(), cap.bytes.size()) << int{cap.id};
    EXPECT_EQ(cap.rw1c.size(), cap.bytes.size()) << int{cap.id};
    EXPECT_EQ(cap.bytes[0], cap.id);
  }
  for (const ExtendedCapability& cap :
       {DeviceSerialNumber(1), *VendorSpecificExtended(1, 1, {1})}) {
    EXPECT_EQ(cap.writable.size(), cap.bytes.size()) << cap.id;
    EXPECT_EQ(cap.rw1c.size(), cap.bytes.size()) << cap.id;
  }
}

// PMCSR: power state writable, PME status RW1C, the rest fixed.
TEST(CapabilitiesTest, PowerManagementRegisters) {
  ConfigSpace config = NewSpace(false);
  const uint16_t pm = Add(config, PowerManagement());
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_PM), pm);
  EXPECT_EQ(config.Get16(pm + PCI_PM_PMC) & PCI_PM_CAP_VER_MASK, 3);
  EXPECT_EQ(config.Get16(pm + PCI_PM_CTRL), PCI_PM_CTRL_NO_SOFT_RESET);

  Write(config, pm + PCI_PM_CTRL, 2, 0x7fff);
  EXPECT_EQ(config.Get16(pm + PCI_PM_CTRL), PCI_PM_CTRL_NO_SOFT_RESET | 3);
  Write(config, pm + PCI_PM_CTRL, 2, 0);
  EXPECT_EQ(config.Get16(pm + PCI_PM_CTRL), PCI_PM_CTRL_NO_SOFT_RESET);

  config.Set16(pm + PCI_PM_CTRL, PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_NO_SOFT_RESET);
  Write(config, pm + PCI_PM_CTRL, 2, 0);
  EXPECT_NE(config.Get16(pm + PCI_PM_CTRL) & PCI_PM_CTRL_PME_STATUS, 0);
  Write(config, pm + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_STATUS);
  EXPECT_EQ(config.Get16(pm + PCI_PM_CTRL) & PCI_PM_CTRL_PME_STATUS, 0);
}

// MSI vector counts must be powers of two up to 32.
TEST(CapabilitiesTest, MsiRejectsBadVectorCounts) {
  for (uint32_t vectors : {0u, 3u, 6u, 64u}) {
    EXPECT_THAT(Msi(vectors, false, false), StatusIs(absl::StatusCode::kInvalidArgument))
        << vectors;
  }
}

// The four MSI layouts have the sizes and flag bits of the spec.
TEST(CapabilitiesTest, MsiLayouts) {
  ASSERT_OK_AND_ASSIGN(Capability plain, Msi(8, false, false));
  EXPECT_EQ(plain.bytes.size(), 0x0cu);
  EXPECT_EQ(plain.bytes[PCI_MSI_FLAGS], 3 << 1);
  ASSERT_OK_AND_ASSIGN(Capability wide, Msi(1, true, false));
  EXPECT_EQ(wide.bytes.size(), 0x10u);
  EXPECT_EQ(wide.bytes[PCI_MSI_FLAGS], PCI_MSI_FLAGS_64BIT);
  ASSERT_OK_AND_ASSIGN(Capability masked, Msi(32, false, true));
  EXPECT_EQ(masked.bytes.size(), 0x14u);
  EXPECT_EQ(masked.bytes[PCI_MSI_FLAGS], 5 << 1);
  EXPECT_EQ(masked.bytes[PCI_MSI_FLAGS + 1], PCI_MSI_FLAGS_MASKBIT >> 8);
  ASSERT_OK_AND_ASSIGN(Capability both, Msi(2, true, true));
  EXPECT_EQ(both.bytes.size(), 0x18u);
}

// Message control: enable and MME writable, MMC and capability flags fixed.
// Address bits 1:0 and the upper half of the data word are fixed.
TEST(CapabilitiesTest, MsiWritableRegisters) {
  ConfigSpace config = NewSpace(false);
  const uint16_t msi = Add(config, Msi(4, true, true));
  Write(config, msi + PCI_MSI_FLAGS, 2, 0xffff);
  EXPECT_EQ(config.Get16(msi + PCI_MSI_FLAGS),
            PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE | 2 << 1 | PCI_MSI_FLAGS_64BIT |
                PCI_MSI_FLAGS_MASKBIT);
  Write(config, msi + PCI_MSI_ADDRESS_LO, 4, 0xffffffff);
  Write(config, msi + PCI_MSI_ADDRESS_HI, 4, 0xffffffff);
  Write(config, msi + PCI_MSI_DATA_64, 4, 0xffffffff);
  Write(config, msi + PCI_MSI_PENDING_64, 4, 0xffffffff);
  EXPECT_EQ(config.Get32(msi + PCI_MSI_ADDRESS_LO), 0xfffffffcu);
  EXPECT_EQ(config.Get32(msi + PCI_MSI_ADDRESS_HI), 0xffffffffu);
  EXPECT_EQ(config.Get32(msi + PCI_MSI_DATA_64), 0x0000ffffu);
  EXPECT_EQ(config.Get32(msi + PCI_MSI_PENDING_64), 0u);
}

// Mask bits exist only for implemented vectors.
TEST(CapabilitiesTest, MsiMaskBitsOnlyForImplementedVectors) {
  for (uint32_t vectors : {1u, 4u, 16u, 32u}) {
    ConfigSpace config = NewSpace(false);
    const uint16_t msi = Add(config, Msi(vectors, false, true));
    Write(config, msi + PCI_MSI_MASK_32, 4, 0xffffffff);
    const uint32_t expected = vectors == 32 ? 0xffffffffu : (1u << vectors) - 1;
    EXPECT_EQ(config.Get32(msi + PCI_MSI_MASK_32), expected) << vectors;
  }
}

// ReadMsiState decodes enable, MME (clamped to MMC) and the mask bits.
TEST(CapabilitiesTest, ReadMsiState) {
  ConfigSpace config = NewSpace(false);
  EXPECT_FALSE(ReadMsiState(config).has_value());
  const uint16_t msi = Add(config, Msi(8, false, true));
  std::optional<MsiState> state = ReadMsiState(config);
  ASSERT_TRUE(state.has_value());
  EXPECT_FALSE(state->enabled);
  EXPECT_EQ(state->vectors_capable, 8u);
  EXPECT_EQ(state->vectors_enabled, 1u);
  EXPECT_TRUE(state->per_vector_mask);

  Write(config, msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | 2 << 4);
  Write(config, msi + PCI_MSI_MASK_32, 4, 0x5);
  std::optional<MsiState> enabled = ReadMsiState(config);
  ASSERT_TRUE(enabled.has_value());
  EXPECT_TRUE(enabled->enabled);
  EXPECT_EQ(enabled->vectors_enabled, 4u);
  EXPECT_EQ(enabled->mask_bits, 0x5u);

  Write(config, msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
  EXPECT_EQ(ReadMsiState(config)->vectors_enabled, 8u);
}

// Without per-vector masking the mask is always clear, and a 64-bit layout
// reads the mask from its own offset.
TEST(CapabilitiesTest, ReadMsiStateMaskLayouts) {
  ConfigSpace plain = NewSpace(false);
  Add(plain, Msi(2, true, false));
  EXPECT_FALSE(ReadMsiState(plain)->per_vector_mask);
  EXPECT_EQ(ReadMsiState(plain)->mask_bits, 0u);

  ConfigSpace wide = NewSpace(false);
  const uint16_t msi = Add(wide, Msi(2, true, true));
  Write(wide, msi + PCI_MSI_MASK_64, 4, 0x2);
  EXPECT_EQ(ReadMsiState(wide)->mask_bits, 0x2u);
}

// MSI-X arguments are validated.
TEST(CapabilitiesTest, MsixRejectsBadArguments) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(MsiX(0, 0, 0, 1, 0), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(2049, 0, 0, 1, 0), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(8, 6, 0, 1, 0), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(8, 0, 0, 6, 0), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(8, 0, 4, 1, 0), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(8, 0, 0, 1, 0x804), StatusIs(kInvalid));
  // Same BAR: 8 entries take 0x80 bytes, so a PBA at 0x78 overlaps.
  EXPECT_THAT(MsiX(8, 0, 0, 0, 0x78), StatusIs(kInvalid));
  EXPECT_THAT(MsiX(8, 0, 0x100, 0, 0x178), StatusIs(kInvalid));
  EXPECT_OK(MsiX(8, 0, 0, 0, 0x80));
  EXPECT_OK(MsiX(8, 0, 0x100, 0, 0xf8));
  EXPECT_OK(MsiX(8, 0, 0, 1, 0));
  EXPECT_OK(MsiX(2048, 2, 0, 2, 0x8000));
}

// Only enable and function mask are writable; ReadMsixState decodes all.
TEST(CapabilitiesTest, MsixRegistersAndState) {
  ConfigSpace config = NewSpace(false);
  EXPECT_FALSE(ReadMsixState(config).has_value());
  const uint16_t msix = Add(config, MsiX(100, 1, 0x2000, 3, 0x800));
  EXPECT_EQ(config.Get16(msix + PCI_MSIX_FLAGS), 99);
  Write(config, msix + PCI_MSIX_FLAGS, 2, 0xffff);
  Write(config, msix + PCI_MSIX_TABLE, 4, 0xffffffff);
  Write(config, msix + PCI_MSIX_PBA, 4, 0);
  EXPECT_EQ(config.Get16(msix + PCI_MSIX_FLAGS),
            PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 99);

  std::optional<MsixState> state = ReadMsixState(config);
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->enabled);
  EXPECT_TRUE(state->function_masked);
  EXPECT_EQ(state->table_size, 100);
  EXPECT_EQ(state->table_bar, 1);
  EXPECT_EQ(state->table_offset, 0x2000u);
  EXPECT_EQ(state->pba_bar, 3);
  EXPECT_EQ(state->pba_offset, 0x800u);

  Write(config, msix + PCI_MSIX_FLAGS + 1, 1, PCI_MSIX_FLAGS_ENABLE >> 8);
  state = ReadMsixState(config);
  EXPECT_TRUE(state->enabled);
  EXPECT_FALSE(state->function_masked);
}

// The table size field holds the full 1..2048 range.
TEST(CapabilitiesTest, MsixTableSizeExtremes) {
  for (uint16_t size : {1, 2048}) {
    ConfigSpace config = NewSpace(false);
    Add(config, MsiX(size, 0, 0, 0, 0x8000));
    EXPECT_EQ(ReadMsixState(config)->table_size, size);
  }
}

// Table and PBA must sit inside implemented memory BARs.
TEST(CapabilitiesTest, CheckMsixPlacement) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 4096, .kind = BarKind::kMemory64};
  bars[2] = {.size = 256, .kind = BarKind::kIo};
  bars[3] = {.size = 4096, .kind = BarKind::kMemory32};
  const auto kInvalid = absl::StatusCode::kInvalidArgument;

  ConfigSpace none = NewSpace(false, bars);
  EXPECT_OK(CheckMsixPlacement(none));

  ConfigSpace good = NewSpace(false, bars);
  Add(good, MsiX(16, 0, 0, 3, 0xff8));
  EXPECT_OK(CheckMsixPlacement(good));

  ConfigSpace past_end = NewSpace(false, bars);
  Add(past_end, MsiX(16, 0, 0xf08, 3, 0));  // 0xf08 + 0x100 > 0x1000
  EXPECT_THAT(CheckMsixPlacement(past_end), StatusIs(kInvalid));

  ConfigSpace pba_past_end = NewSpace(false, bars);
  Add(pba_past_end, MsiX(65, 0, 0, 3, 0xff8));  // 65 vectors need 16 PBA bytes
  EXPECT_THAT(CheckMsixPlacement(pba_past_end), StatusIs(kInvalid));

  for (uint8_t bad_bar : {1, 2, 4}) {  // upper half, I/O, unimplemented
    ConfigSpace config = NewSpace(false, bars);
    Add(config, MsiX(16, bad_bar, 0, 3, 0));
    EXPECT_THAT(CheckMsixPlacement(config), StatusIs(kInvalid)) << int{bad_bar};
  }
}

// PCI Express capability: version 2, endpoint, reset defaults, writable
// device control, RW1C device status, read-only link registers.
TEST(CapabilitiesTest, PciExpressRegisters) {
  ConfigSpace config = NewSpace(true);
  const uint16_t exp =
      Add(config, PciExpress({.max_payload_size = 512, .link_speed = 3, .link_width = 8}));
  ASSERT_EQ(config.FindCapability(PCI_CAP_ID_EXP), exp);
  EXPECT_EQ(config.Get16(exp + PCI_EXP_FLAGS), 0x0002);
  EXPECT_EQ(config.Get32(exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_PAYLOAD, 2u);
  EXPECT_NE(config.Get32(exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_RBER, 0u);
  EXPECT_NE(config.Get32(exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR, 0u) << "FLR advertised";
  EXPECT_EQ(config.Get16(exp + PCI_EXP_DEVCTL), PCI_EXP_DEVCTL_RELAX_EN |
                                                    PCI_EXP_DEVCTL_NOSNOOP_EN |
                                                    PCI_EXP_DEVCTL_READRQ_512B);

  Write(config, exp + PCI_EXP_DEVCTL, 2, 0xffff);
  EXPECT_EQ(config.Get16(exp + PCI_EXP_DEVCTL), 0x78ff);
  Write(config, exp + PCI_EXP_DEVCTL, 2, 0);
  EXPECT_EQ(config.Get16(exp + PCI_EXP_DEVCTL), 0);

  config.Set16(exp + PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_URD);
  Write(config, exp + PCI_EXP_DEVSTA, 2, PCI_EXP_DEVSTA_URD | PCI_EXP_DEVSTA_TRPND);
  EXPECT_EQ(config.Get16(exp + PCI_EXP_DEVSTA), PCI_EXP_DEVSTA_CED);

  const uint32_t speed_width = 3 | 8 << 4;
  EXPECT_EQ(config.Get32(exp + PCI_EXP_LNKCAP), speed_width);
  EXPECT_EQ(config.Get16(exp + PCI_EXP_LNKSTA), speed_width);
  EXPECT_EQ(config.Get32(exp + PCI_EXP_LNKCAP2),
            uint32_t{PCI_EXP_LNKCAP2_SLS_2_5GB | PCI_EXP_LNKCAP2_SLS_5_0GB |
                     PCI_EXP_LNKCAP2_SLS_8_0GB});
  EXPECT_EQ(config.Get16(exp + PCI_EXP_LNKCTL2), 3);
  for (uint32_t reg = PCI_EXP_LNKCAP; reg < kPciExpressV2Size; reg += 2) {
    const uint16_t before = config.Get16(exp + reg);
    Write(config, exp + reg, 2, 0xffff);
    Write(config, exp + reg, 2, 0);
    EXPECT_EQ(config.Get16(exp + reg), before) << "register +0x" << std::hex << reg;
  }
}

// A root-complex integrated endpoint has no link to report.
TEST(CapabilitiesTest, PciExpressIntegratedEndpointHasNoLink) {
  ASSERT_OK_AND_ASSIGN(
      Capability cap,
      PciExpress({.type = PciExpressType::kRootComplexIntegratedEndpoint, .link_width = 4}));
  EXPECT_EQ(cap.bytes[PCI_EXP_FLAGS], 2 | PCI_EXP_TYPE_RC_END << 4);
  for (uint32_t i = PCI_EXP_LNKCAP; i < PCI_EXP_SLTCAP; ++i) EXPECT_EQ(cap.bytes[i], 0) << i;
  for (uint32_t i = PCI_EXP_LNKCAP2; i < kPciExpressV2Size; ++i) EXPECT_EQ(cap.bytes[i], 0) << i;
}

// Out-of-range PCI Express options are refused.
TEST(CapabilitiesTest, PciExpressRejectsBadOptions) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(PciExpress({.type = static_cast<PciExpressType>(4)}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.max_payload_size = 64}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.max_payload_size = 384}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.max_payload_size = 8192}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.link_speed = 0}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.link_speed = 7}), StatusIs(kInvalid));
  EXPECT_THAT(PciExpress({.link_width = 3}), StatusIs(kInvalid));
  EXPECT_OK(PciExpress({.max_payload_size = 4096, .link_speed = 6, .link_width = 32}));
}

// The vendor-specific capability carries its length and payload read-only.
TEST(CapabilitiesTest, VendorSpecific) {
  ConfigSpace config = NewSpace(false);
  const uint16_t vndr = Add(config, VendorSpecific({0xde, 0xad, 0xbe, 0xef, 0x01}));
  EXPECT_EQ(config.Get8(vndr + kVendorCapLength), 8);
  EXPECT_EQ(config.Get32(vndr + kVendorCapPayload), 0xefbeaddeu);
  Write(config, vndr, 4, 0);
  Write(config, vndr + 4, 4, 0);
  EXPECT_EQ(config.Get32(vndr + kVendorCapPayload), 0xefbeaddeu);
  EXPECT_EQ(config.Get8(vndr + kVendorCapPayload + 4), 0x01);

  EXPECT_OK(VendorSpecific(std::vector<uint8_t>(252)));
  EXPECT_THAT(VendorSpecific(std::vector<uint8_t>(253)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// The serial number lands in two read-only dwords after a version 1 header.
TEST(CapabilitiesTest, DeviceSerialNumber) {
  ConfigSpace config = NewSpace(true);
  const uint16_t dsn = AddExtended(config, DeviceSerialNumber(0x0123456789abcdef));
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), dsn);
  EXPECT_EQ(PCI_EXT_CAP_VER(config.Get32(dsn)), 1u);
  Write(config, dsn + kDsnSerialLow, 4, 0);
  EXPECT_EQ(config.Get32(dsn + kDsnSerialLow), 0x89abcdefu);
  EXPECT_EQ(config.Get32(dsn + kDsnSerialHigh), 0x01234567u);
}

// The VSEC header holds ID, revision and length; bad values are refused.
TEST(CapabilitiesTest, VendorSpecificExtended) {
  ConfigSpace config = NewSpace(true);
  AddExtended(config, DeviceSerialNumber(1));
  const uint16_t vsec = AddExtended(config, VendorSpecificExtended(0x1234, 5, {9, 8, 7, 6, 5}));
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_VNDR), vsec);
  EXPECT_EQ(config.Get32(vsec + PCI_VSEC_HDR), 0x1234u | 5u << 16 | 13u << 20);
  EXPECT_EQ(config.Get32(vsec + kVsecPayload), 0x06070809u);
  EXPECT_EQ(config.Get8(vsec + kVsecPayload + 4), 5);

  EXPECT_THAT(VendorSpecificExtended(1, 16, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(VendorSpecificExtended(1, 15, std::vector<uint8_t>(0xfff - 8)));
  EXPECT_THAT(VendorSpecificExtended(1, 1, std::vector<uint8_t>(0xfff - 7)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A device with everything: the chains a driver walks find each capability.
TEST(CapabilitiesTest, FullDeviceChains) {
  std::array<BarLayout, kNumBars> bars = {};
  bars[0] = {.size = 16 * 1024, .kind = BarKind::kMemory64};
  ConfigSpace config = NewSpace(true, bars);
  const uint16_t pm = Add(config, PowerManagement());
  const uint16_t exp = Add(config, PciExpress());
  const uint16_t msi = Add(config, Msi(32, true, true));
  const uint16_t msix = Add(config, MsiX(64, 0, 0, 0, 0x2000));
  const uint16_t vndr = Add(config, VendorSpecific({1, 2, 3, 4}));
  const uint16_t dsn = AddExtended(config, DeviceSerialNumber(7));
  EXPECT_EQ(pm, 0x40);
  EXPECT_EQ(exp, 0x48);
  EXPECT_EQ(msi, 0x84);
  EXPECT_EQ(msix, 0x9c);
  EXPECT_EQ(vndr, 0xa8);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_PM), pm);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_EXP), exp);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_MSI), msi);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_MSIX), msix);
  EXPECT_EQ(config.FindCapability(PCI_CAP_ID_VNDR), vndr);
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_DSN), dsn);
  EXPECT_OK(CheckMsixPlacement(config));
}

}  // namespace
}  // namespace vfu::pci
