#include "vfu/pci/capabilities.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"

namespace vfu::pci {
namespace {

constexpr uint32_t kMaxMsiVectors = 32;
constexpr uint32_t kMaxMsixVectors = 2048;
constexpr uint32_t kMsixEntriesPerPbaQword = 64;
constexpr uint8_t kPmVersion = 3;
constexpr uint8_t kPciExpressVersion = 2;
constexpr uint8_t kDsnVersion = 1;
constexpr uint8_t kVsecVersion = 1;
constexpr uint32_t kVsecMaxLength = 0xfff;
constexpr uint32_t kMsiDataWritable = 0xffff;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint32_t Log2(uint64_t power_of_two) {
  uint32_t log = 0;
  while ((uint64_t{1} << log) < power_of_two) ++log;
  return log;
}

template <typename Cap>
void Put(Cap& cap, uint32_t offset, uint32_t width, uint32_t value, uint32_t writable = 0,
         uint32_t rw1c = 0) {
  VFU_CHECK(offset + width <= cap.bytes.size(), "capability register past its end");
  for (uint32_t i = 0; i < width; ++i) {
    cap.bytes[offset + i] = static_cast<uint8_t>(value >> (8 * i));
    cap.writable[offset + i] = static_cast<uint8_t>(writable >> (8 * i));
    cap.rw1c[offset + i] = static_cast<uint8_t>(rw1c >> (8 * i));
  }
}

// A zeroed, read-only standard capability of `size` bytes.
Capability NewCapability(uint8_t id, size_t size) {
  Capability cap{.id = id,
                 .bytes = std::vector<uint8_t>(size, 0),
                 .writable = std::vector<uint8_t>(size, 0),
                 .rw1c = std::vector<uint8_t>(size, 0)};
  cap.bytes[PCI_CAP_LIST_ID] = id;
  return cap;
}

// The same for an extended capability; the header is filled as placed.
ExtendedCapability NewExtendedCapability(uint16_t id, uint8_t version, size_t size) {
  ExtendedCapability cap{.id = id,
                         .version = version,
                         .bytes = std::vector<uint8_t>(size, 0),
                         .writable = std::vector<uint8_t>(size, 0),
                         .rw1c = std::vector<uint8_t>(size, 0)};
  Put(cap, 0, 4, uint32_t{id} | uint32_t{version} << 16);
  return cap;
}

uint64_t MsixTableBytes(uint32_t entries) { return uint64_t{entries} * PCI_MSIX_ENTRY_SIZE; }

uint64_t MsixPbaBytes(uint32_t entries) {
  return (uint64_t{entries} + kMsixEntriesPerPbaQword - 1) / kMsixEntriesPerPbaQword * 8;
}

absl::Status CheckInsideMemoryBar(const ConfigSpace& config, const char* what, uint8_t bar,
                                  uint64_t offset, uint64_t length) {
  const BarLayout& layout = config.bar(bar);
  if (layout.size == 0 || layout.kind == BarKind::kIo) {
    return absl::InvalidArgumentError(
        absl::StrCat("MSI-X ", what, " is in BAR", int{bar}, ", which is not a memory BAR"));
  }
  if (offset > layout.size || length > layout.size - offset) {
    return absl::InvalidArgumentError(absl::StrCat("MSI-X ", what, " [0x", absl::Hex(offset),
                                                   ", +0x", absl::Hex(length), ") overruns BAR",
                                                   int{bar}, " of 0x", absl::Hex(layout.size)));
  }
  return absl::OkStatus();
}

}  // namespace

Capability PowerManagement() {
  Capability cap = NewCapability(PCI_CAP_ID_PM, PCI_PM_SIZEOF);
  Put(cap, PCI_PM_PMC, 2, kPmVersion);
  Put(cap, PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET, PCI_PM_CTRL_STATE_MASK,
      PCI_PM_CTRL_PME_STATUS);
  return cap;
}

absl::StatusOr<Capability> Msi(uint32_t vectors, bool address64, bool per_vector_mask) {
  if (!IsPowerOfTwo(vectors) || vectors > kMaxMsiVectors) {
    return absl::InvalidArgumentError(
        absl::StrCat("MSI vector count ", vectors, " is not a power of two in [1, 32]"));
  }
  const uint32_t data = address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32;
  const uint32_t mask = address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32;
  const uint32_t pending = address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32;
  Capability cap = NewCapability(PCI_CAP_ID_MSI, per_vector_mask ? pending + 4 : mask);

  uint32_t control = Log2(vectors) << 1;
  if (address64) control |= PCI_MSI_FLAGS_64BIT;
  if (per_vector_mask) control |= PCI_MSI_FLAGS_MASKBIT;
  Put(cap, PCI_MSI_FLAGS, 2, control, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
  // The message address is dword aligned: bits 1:0 read as zero.
  Put(cap, PCI_MSI_ADDRESS_LO, 4, 0, ~uint32_t{3});
  if (address64) Put(cap, PCI_MSI_ADDRESS_HI, 4, 0, ~uint32_t{0});
  Put(cap, data, 2, 0, kMsiDataWritable);
  if (per_vector_mask) {
    const uint32_t implemented =
        vectors == kMaxMsiVectors ? ~uint32_t{0} : (uint32_t{1} << vectors) - 1;
    Put(cap, mask, 4, 0, implemented);
    Put(cap, pending, 4, 0);
  }
  return cap;
}

absl::StatusOr<Capability> MsiX(uint16_t table_size, uint8_t table_bar, uint32_t table_offset,
                                uint8_t pba_bar, uint32_t pba_offset) {
  if (table_size == 0 || table_size > kMaxMsixVectors) {
    return absl::InvalidArgumentError(
        absl::StrCat("MSI-X table size ", table_size, " outside [1, 2048]"));
  }
  if (table_bar >= kNumBars || pba_bar >= kNumBars) {
    return absl::InvalidArgumentError(absl::StrCat("MSI-X table BAR ", int{table_bar},
                                                   " or PBA BAR ", int{pba_bar}, " is not 0..5"));
  }
  if ((table_offset & PCI_MSIX_TABLE_BIR) != 0 || (pba_offset & PCI_MSIX_PBA_BIR) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("MSI-X table offset 0x",
                                                   absl::Hex(table_offset), " or PBA offset 0x",
                                                   absl::Hex(pba_offset), " is not 8-byte aligned"));
  }
  if (table_bar == pba_bar) {
    const uint64_t table_end = table_offset + MsixTableBytes(table_size);
    const uint64_t pba_end = pba_offset + MsixPbaBytes(table_size);
    if (table_offset < pba_end && pba_offset < table_end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MSI-X table [0x", absl::Hex(table_offset), ", 0x", absl::Hex(table_end),
          ") overlaps the PBA [0x", absl::Hex(pba_offset), ", 0x", absl::Hex(pba_end), ")"));
    }
  }
  Capability cap = NewCapability(PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF);
  Put(cap, PCI_MSIX_FLAGS, 2, table_size - 1u, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  Put(cap, PCI_MSIX_TABLE, 4, table_offset | table_bar);
  Put(cap, PCI_MSIX_PBA, 4, pba_offset | pba_bar);
  return cap;
}

absl::StatusOr<Capability> PciExpress(const PciExpressOptions& options) {
  if (options.type != PciExpressType::kEndpoint &&
      options.type != PciExpressType::kLegacyEndpoint &&
      options.type != PciExpressType::kRootComplexIntegratedEndpoint) {
    return absl::InvalidArgumentError("PCI Express device type is not an endpoint");
  }
  const uint32_t mps = options.max_payload_size;
  if (!IsPowerOfTwo(mps) || mps < 128 || mps > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("max payload size ", mps, " is not a power of two in [128, 4096]"));
  }
  if (options.link_speed < PCI_EXP_LNKCAP_SLS_2_5GB ||
      options.link_speed > PCI_EXP_LNKCAP_SLS_64_0GB) {
    return absl::InvalidArgumentError(
        absl::StrCat("link speed ", int{options.link_speed}, " is not 1..6"));
  }
  constexpr uint8_t kWidths[] = {1, 2, 4, 8, 12, 16, 32};
  if (std::find(std::begin(kWidths), std::end(kWidths), options.link_width) == std::end(kWidths)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "link width x", int{options.link_width}, " is not 1, 2, 4, 8, 12, 16 or 32"));
  }

  Capability cap = NewCapability(PCI_CAP_ID_EXP, kPciExpressV2Size);
  Put(cap, PCI_EXP_FLAGS, 2, kPciExpressVersion | static_cast<uint32_t>(options.type) << 4);
  // Role-based error reporting is mandatory since PCIe 1.1.
  // Function-level reset is supported: PciDevice resets on Initiate FLR.
  Put(cap, PCI_EXP_DEVCAP, 4, (Log2(mps) - 7) | PCI_EXP_DEVCAP_RBER | PCI_EXP_DEVCAP_FLR);
  constexpr uint32_t kDevctlWritable = PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE |
                                       PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE |
                                       PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD |
                                       PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ;
  Put(cap, PCI_EXP_DEVCTL, 2,
      PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B,
      kDevctlWritable);
  Put(cap, PCI_EXP_DEVSTA, 2, 0, 0,
      PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD);
  if (options.type != PciExpressType::kRootComplexIntegratedEndpoint) {
    const uint32_t speed_width = options.link_speed | uint32_t{options.link_width} << 4;
    Put(cap, PCI_EXP_LNKCAP, 4, speed_width);
    Put(cap, PCI_EXP_LNKSTA, 2, speed_width);
    // Supported Link Speeds Vector: bit n for speed n, every speed up to the maximum.
    Put(cap, PCI_EXP_LNKCAP2, 4, ((1u << options.link_speed) - 1) << 1);
    Put(cap, PCI_EXP_LNKCTL2, 2, options.link_speed);
  }
  return cap;
}

absl::StatusOr<Capability> VendorSpecific(absl::Span<const uint8_t> payload) {
  constexpr size_t kMaxPayload = 0xff - kVendorCapPayload;
  if (payload.size() > kMaxPayload) {
    return absl::InvalidArgumentError(absl::StrCat("vendor-specific payload of ", payload.size(),
                                                   " bytes, at most ", kMaxPayload));
  }
  Capability cap = NewCapability(PCI_CAP_ID_VNDR, kVendorCapPayload + payload.size());
  cap.bytes[kVendorCapLength] = static_cast<uint8_t>(cap.bytes.size());
  std::copy(payload.begin(), payload.end(), cap.bytes.begin() + kVendorCapPayload);
  return cap;
}

ExtendedCapability DeviceSerialNumber(uint64_t serial) {
  ExtendedCapability cap =
      NewExtendedCapability(PCI_EXT_CAP_ID_DSN, kDsnVersion, PCI_EXT_CAP_DSN_SIZEOF);
  Put(cap, kDsnSerialLow, 4, static_cast<uint32_t>(serial));
  Put(cap, kDsnSerialHigh, 4, static_cast<uint32_t>(serial >> 32));
  return cap;
}

absl::StatusOr<ExtendedCapability> VendorSpecificExtended(uint16_t vsec_id, uint8_t vsec_rev,
                                                          absl::Span<const uint8_t> payload) {
  if (vsec_rev > 0xf) {
    return absl::InvalidArgumentError(
        absl::StrCat("VSEC revision ", int{vsec_rev}, " exceeds 4 bits"));
  }
  const size_t length = kVsecPayload + payload.size();
  if (length > kVsecMaxLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VSEC of ", length, " bytes, the 12-bit length field allows ", kVsecMaxLength));
  }
  ExtendedCapability cap = NewExtendedCapability(PCI_EXT_CAP_ID_VNDR, kVsecVersion, length);
  Put(cap, PCI_VSEC_HDR, 4,
      uint32_t{vsec_id} | uint32_t{vsec_rev} << 16 |
          static_cast<uint32_t>(length) << PCI_VSEC_HDR_LEN_SHIFT);
  std::copy(payload.begin(), payload.end(), cap.bytes.begin() + kVsecPayload);
  return cap;
}

std::optional<MsiState> ReadMsiState(const ConfigSpace& config) {
  const std::optional<uint16_t> offset = config.FindCapability(PCI_CAP_ID_MSI);
  if (!offset) return std::nullopt;
  const uint16_t control = config.Get16(*offset + PCI_MSI_FLAGS);
  MsiState state;
  state.enabled = (control & PCI_MSI_FLAGS_ENABLE) != 0;
  // Encodings above 32 vectors are reserved; clamp rather than trust them.
  state.vectors_capable = std::min(1u << ((control & PCI_MSI_FLAGS_QMASK) >> 1), kMaxMsiVectors);
  state.vectors_enabled =
      std::min(1u << ((control & PCI_MSI_FLAGS_QSIZE) >> 4), state.vectors_capable);
  state.per_vector_mask = (control & PCI_MSI_FLAGS_MASKBIT) != 0;
  if (state.per_vector_mask) {
    const bool address64 = (control & PCI_MSI_FLAGS_64BIT) != 0;
    state.mask_bits = config.Get32(*offset + (address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32));
  }
  return state;
}

std::optional<MsixState> ReadMsixState(const ConfigSpace& config) {
  const std::optional<uint16_t> offset = config.FindCapability(PCI_CAP_ID_MSIX);
  if (!offset) return std::nullopt;
  const uint16_t control = config.Get16(*offset + PCI_MSIX_FLAGS);
  const uint32_t table = config.Get32(*offset + PCI_MSIX_TABLE);
  const uint32_t pba = config.Get32(*offset + PCI_MSIX_PBA);
  return MsixState{
      .enabled = (control & PCI_MSIX_FLAGS_ENABLE) != 0,
      .function_masked = (control & PCI_MSIX_FLAGS_MASKALL) != 0,
      .table_size = static_cast<uint16_t>((control & PCI_MSIX_FLAGS_QSIZE) + 1),
      .table_bar = static_cast<uint8_t>(table & PCI_MSIX_TABLE_BIR),
      .table_offset = table & PCI_MSIX_TABLE_OFFSET,
      .pba_bar = static_cast<uint8_t>(pba & PCI_MSIX_PBA_BIR),
      .pba_offset = pba & PCI_MSIX_PBA_OFFSET,
  };
}

absl::Status CheckMsixPlacement(const ConfigSpace& config) {
  const std::optional<MsixState> msix = ReadMsixState(config);
  if (!msix) return absl::OkStatus();
  if (msix->table_bar >= kNumBars || msix->pba_bar >= kNumBars) {
    return absl::InvalidArgumentError("MSI-X BAR indicator is not 0..5");
  }
  if (absl::Status s = CheckInsideMemoryBar(config, "table", msix->table_bar, msix->table_offset,
                                            MsixTableBytes(msix->table_size));
      !s.ok()) {
    return s;
  }
  return CheckInsideMemoryBar(config, "PBA", msix->pba_bar, msix->pba_offset,
                              MsixPbaBytes(msix->table_size));
}

}  // namespace vfu::pci
