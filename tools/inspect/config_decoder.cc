#include "tools/inspect/config_decoder.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "vfu/wire/byte_io.h"

namespace vfu::inspect {
namespace {

using wire::LoadU16;
using wire::LoadU32;

// Where each chain lives: standard capabilities in [0x40, 0x100), extended
// ones in [0x100, 0x1000).
constexpr uint32_t kStandardAreaEnd = kConventionalConfigSize;
constexpr uint32_t kExtendedAreaStart = kConventionalConfigSize;
// Extended capability header: ID 15:0, version 19:16, next 31:20.
constexpr uint32_t kExtendedHeaderSize = 4;
// Vendor-specific capability: length byte, then the payload.
constexpr uint32_t kVendorLengthOffset = 2;
constexpr uint32_t kVendorPayloadOffset = 3;
// Vendor-specific extended capability: VSEC header, then the payload.
constexpr uint32_t kVsecPayloadOffset = 8;
// Device serial number: the 64-bit number after the header.
constexpr uint32_t kDsnSerialOffset = 4;

// A span of the image with the area it belongs to; `Fits` is asked before
// every load, so loads never leave the area.
class Area {
 public:
  Area(absl::Span<const uint8_t> bytes, uint32_t end) : bytes_(bytes), end_(end) {}
  bool Fits(uint32_t offset, uint32_t length) const {
    return offset <= end_ && length <= end_ - offset;
  }
  uint8_t U8(uint32_t offset) const { return bytes_[offset]; }
  uint16_t U16(uint32_t offset) const { return LoadU16(bytes_, offset); }
  uint32_t U32(uint32_t offset) const { return LoadU32(bytes_, offset); }
  std::vector<uint8_t> Bytes(uint32_t offset, uint32_t length) const {
    return std::vector<uint8_t>(bytes_.begin() + offset, bytes_.begin() + offset + length);
  }
  uint32_t end() const { return end_; }

 private:
  absl::Span<const uint8_t> bytes_;
  uint32_t end_;
};

template <typename... Args>
void Warn(ConfigSpaceInfo& info, const absl::FormatSpec<Args...>& format, const Args&... args) {
  info.warnings.push_back(absl::StrFormat(format, args...));
}

void DecodeBars(const Area& header, int count, ConfigSpaceInfo& info) {
  for (int i = 0; i < count; ++i) {
    ConfigBar bar;
    bar.index = i;
    bar.raw = header.U32(PCI_BASE_ADDRESS_0 + 4 * i);
    if (!info.bars.empty() && info.bars.back().kind == ConfigBar::Kind::kMemory64 &&
        info.bars.back().index == i - 1) {
      bar.kind = ConfigBar::Kind::kUpperHalf;
      info.bars.back().address |= static_cast<uint64_t>(bar.raw) << 32;
      info.bars.push_back(bar);
      continue;
    }
    if (bar.raw & PCI_BASE_ADDRESS_SPACE_IO) {
      bar.kind = ConfigBar::Kind::kIo;
      bar.address = bar.raw & PCI_BASE_ADDRESS_IO_MASK;
    } else {
      switch (bar.raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) {
        case PCI_BASE_ADDRESS_MEM_TYPE_32:
          bar.kind = ConfigBar::Kind::kMemory32;
          break;
        case PCI_BASE_ADDRESS_MEM_TYPE_1M:
          bar.kind = ConfigBar::Kind::kMemoryBelow1M;
          break;
        case PCI_BASE_ADDRESS_MEM_TYPE_64:
          bar.kind = ConfigBar::Kind::kMemory64;
          break;
        default:
          bar.kind = ConfigBar::Kind::kMemoryReserved;
          Warn(info, "BAR %d: reserved memory type 3", i);
          break;
      }
      bar.prefetchable = (bar.raw & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
      bar.address = bar.raw & static_cast<uint32_t>(PCI_BASE_ADDRESS_MEM_MASK);
    }
    if (bar.kind == ConfigBar::Kind::kMemory64 && i == count - 1) {
      Warn(info, "BAR %d: 64-bit BAR in the last slot has no upper half", i);
    }
    info.bars.push_back(bar);
  }
}

void DecodeHeader(const Area& header, ConfigSpaceInfo& info) {
  info.vendor_id = header.U16(PCI_VENDOR_ID);
  info.device_id = header.U16(PCI_DEVICE_ID);
  info.command = header.U16(PCI_COMMAND);
  info.status = header.U16(PCI_STATUS);
  info.revision = header.U8(PCI_REVISION_ID);
  info.class_code = header.U32(PCI_CLASS_REVISION) >> 8;
  info.cache_line_size = header.U8(PCI_CACHE_LINE_SIZE);
  info.latency_timer = header.U8(PCI_LATENCY_TIMER);
  const uint8_t header_type = header.U8(PCI_HEADER_TYPE);
  info.header_type = header_type & PCI_HEADER_TYPE_MASK;
  info.multifunction = (header_type & 0x80) != 0;
  info.bist = header.U8(PCI_BIST);
  info.interrupt_line = header.U8(PCI_INTERRUPT_LINE);
  info.interrupt_pin = header.U8(PCI_INTERRUPT_PIN);

  if (info.vendor_id == 0xffff || info.vendor_id == 0) {
    Warn(info, "vendor ID %04x: no function answers", info.vendor_id);
  }
  switch (info.header_type) {
    case PCI_HEADER_TYPE_NORMAL: {
      DecodeBars(header, PCI_STD_NUM_BARS, info);
      info.subsystem_vendor_id = header.U16(PCI_SUBSYSTEM_VENDOR_ID);
      info.subsystem_id = header.U16(PCI_SUBSYSTEM_ID);
      const uint32_t rom = header.U32(PCI_ROM_ADDRESS);
      info.rom = ExpansionRom{rom, rom & PCI_ROM_ADDRESS_MASK,
                              (rom & PCI_ROM_ADDRESS_ENABLE) != 0};
      info.capabilities_pointer = header.U8(PCI_CAPABILITY_LIST);
      info.min_grant = header.U8(PCI_MIN_GNT);
      info.max_latency = header.U8(PCI_MAX_LAT);
      break;
    }
    case PCI_HEADER_TYPE_BRIDGE: {
      DecodeBars(header, 2, info);
      const uint32_t rom = header.U32(PCI_ROM_ADDRESS1);
      info.rom = ExpansionRom{rom, rom & PCI_ROM_ADDRESS_MASK,
                              (rom & PCI_ROM_ADDRESS_ENABLE) != 0};
      info.capabilities_pointer = header.U8(PCI_CAPABILITY_LIST);
      Warn(info, "header type 1 (bridge): only its BARs and capabilities are decoded");
      break;
    }
    default:
      // CardBus keeps its pointer elsewhere; other layouts are undefined.
      Warn(info, "header type %d: not decoded beyond the common registers", info.header_type);
      break;
  }
}

PowerManagementCapability DecodePowerManagement(const Area& a, uint32_t at) {
  const uint16_t pmc = a.U16(at + PCI_PM_PMC);
  const uint16_t pmcsr = a.U16(at + PCI_PM_CTRL);
  PowerManagementCapability pm;
  pm.version = pmc & PCI_PM_CAP_VER_MASK;
  pm.pme_clock = (pmc & PCI_PM_CAP_PME_CLOCK) != 0;
  pm.device_specific_init = (pmc & PCI_PM_CAP_DSI) != 0;
  pm.aux_current = (pmc & PCI_PM_CAP_AUX_POWER) >> 6;
  pm.d1 = (pmc & PCI_PM_CAP_D1) != 0;
  pm.d2 = (pmc & PCI_PM_CAP_D2) != 0;
  pm.pme_support = (pmc & PCI_PM_CAP_PME_MASK) >> PCI_PM_CAP_PME_SHIFT;
  pm.power_state = pmcsr & PCI_PM_CTRL_STATE_MASK;
  pm.no_soft_reset = (pmcsr & PCI_PM_CTRL_NO_SOFT_RESET) != 0;
  pm.pme_enable = (pmcsr & PCI_PM_CTRL_PME_ENABLE) != 0;
  pm.data_select = (pmcsr & PCI_PM_CTRL_DATA_SEL_MASK) >> 9;
  pm.data_scale = (pmcsr & PCI_PM_CTRL_DATA_SCALE_MASK) >> 13;
  pm.pme_status = (pmcsr & PCI_PM_CTRL_PME_STATUS) != 0;
  return pm;
}

// Bytes the MSI registers take for these message-control bits.
uint32_t MsiLength(uint16_t control) {
  const bool address64 = (control & PCI_MSI_FLAGS_64BIT) != 0;
  if (control & PCI_MSI_FLAGS_MASKBIT) return address64 ? 24 : 20;
  return address64 ? 14 : 10;
}

MsiCapability DecodeMsi(const Area& a, uint32_t at, ConfigSpaceInfo& info) {
  const uint16_t control = a.U16(at + PCI_MSI_FLAGS);
  MsiCapability msi;
  msi.enabled = (control & PCI_MSI_FLAGS_ENABLE) != 0;
  const uint32_t mmc = (control & PCI_MSI_FLAGS_QMASK) >> 1;
  const uint32_t mme = (control & PCI_MSI_FLAGS_QSIZE) >> 4;
  // Encodings 6 and 7 are reserved; 32 vectors is the most MSI has.
  if (mmc > 5) Warn(info, "MSI at 0x%02x: reserved Multiple Message Capable %d", at, mmc);
  if (mme > 5) Warn(info, "MSI at 0x%02x: reserved Multiple Message Enable %d", at, mme);
  msi.vectors_capable = 1u << std::min<uint32_t>(mmc, 5);
  msi.vectors_enabled = 1u << std::min<uint32_t>(mme, 5);
  msi.address64 = (control & PCI_MSI_FLAGS_64BIT) != 0;
  msi.per_vector_mask = (control & PCI_MSI_FLAGS_MASKBIT) != 0;
  msi.address = a.U32(at + PCI_MSI_ADDRESS_LO);
  if (msi.address64) {
    msi.address |= static_cast<uint64_t>(a.U32(at + PCI_MSI_ADDRESS_HI)) << 32;
    msi.data = a.U16(at + PCI_MSI_DATA_64);
  } else {
    msi.data = a.U16(at + PCI_MSI_DATA_32);
  }
  if (msi.per_vector_mask) {
    msi.mask = a.U32(at + (msi.address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32));
    msi.pending = a.U32(at + (msi.address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32));
  }
  return msi;
}

MsixCapability DecodeMsix(const Area& a, uint32_t at) {
  const uint16_t control = a.U16(at + PCI_MSIX_FLAGS);
  const uint32_t table = a.U32(at + PCI_MSIX_TABLE);
  const uint32_t pba = a.U32(at + PCI_MSIX_PBA);
  MsixCapability msix;
  msix.table_size = (control & PCI_MSIX_FLAGS_QSIZE) + 1;
  msix.enabled = (control & PCI_MSIX_FLAGS_ENABLE) != 0;
  msix.function_masked = (control & PCI_MSIX_FLAGS_MASKALL) != 0;
  msix.table_bar = table & PCI_MSIX_TABLE_BIR;
  msix.table_offset = table & PCI_MSIX_TABLE_OFFSET;
  msix.pba_bar = pba & PCI_MSIX_PBA_BIR;
  msix.pba_offset = pba & PCI_MSIX_PBA_OFFSET;
  return msix;
}

// Link registers end the version-1 endpoint layout.
constexpr uint32_t kExpressWithLinkLength = PCI_EXP_LNKSTA + 2;

ExpressCapability DecodeExpress(const Area& a, uint32_t at, ConfigSpaceInfo& info) {
  const uint16_t flags = a.U16(at + PCI_EXP_FLAGS);
  ExpressCapability exp;
  exp.version = flags & PCI_EXP_FLAGS_VERS;
  exp.type = (flags & PCI_EXP_FLAGS_TYPE) >> 4;
  exp.slot_implemented = (flags & PCI_EXP_FLAGS_SLOT) != 0;
  exp.interrupt_message = (flags & PCI_EXP_FLAGS_IRQ) >> 9;
  exp.device_capabilities = a.U32(at + PCI_EXP_DEVCAP);
  exp.device_control = a.U16(at + PCI_EXP_DEVCTL);
  exp.device_status = a.U16(at + PCI_EXP_DEVSTA);
  if (ExpressTypeHasLink(exp.type)) {
    if (a.Fits(at, kExpressWithLinkLength)) {
      exp.has_link = true;
      exp.link_capabilities = a.U32(at + PCI_EXP_LNKCAP);
      exp.link_control = a.U16(at + PCI_EXP_LNKCTL);
      exp.link_status = a.U16(at + PCI_EXP_LNKSTA);
    } else {
      Warn(info, "PCI Express capability at 0x%02x: link registers run past 0x%x", at, a.end());
    }
  }
  return exp;
}

// Length of the registers DecodeStandard reads for `id`, or 0 when the ID
// is not decoded.
uint32_t StandardLength(const Area& a, uint32_t at, uint8_t id) {
  switch (id) {
    case PCI_CAP_ID_PM:
      return PCI_PM_SIZEOF;
    case PCI_CAP_ID_MSI:
      // The control word decides the rest.
      return a.Fits(at, PCI_MSI_FLAGS + 2) ? MsiLength(a.U16(at + PCI_MSI_FLAGS))
                                           : PCI_MSI_FLAGS + 2;
    case PCI_CAP_ID_MSIX:
      return PCI_CAP_MSIX_SIZEOF;
    case PCI_CAP_ID_EXP:
      return PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1;
    case PCI_CAP_ID_VNDR:
      return kVendorPayloadOffset;
    default:
      return 0;
  }
}

void DecodeStandard(const Area& a, Capability& cap, ConfigSpaceInfo& info) {
  const uint32_t at = cap.offset;
  const uint32_t length = StandardLength(a, at, cap.id);
  if (length == 0) return;
  if (!a.Fits(at, length)) {
    Warn(info, "capability 0x%02x at 0x%02x: its %d bytes of registers run past 0x%x", cap.id,
         at, length, a.end());
    return;
  }
  switch (cap.id) {
    case PCI_CAP_ID_PM:
      cap.body = DecodePowerManagement(a, at);
      break;
    case PCI_CAP_ID_MSI:
      cap.body = DecodeMsi(a, at, info);
      break;
    case PCI_CAP_ID_MSIX:
      cap.body = DecodeMsix(a, at);
      break;
    case PCI_CAP_ID_EXP:
      cap.body = DecodeExpress(a, at, info);
      break;
    case PCI_CAP_ID_VNDR: {
      VendorCapability vendor;
      vendor.length = a.U8(at + kVendorLengthOffset);
      uint32_t end = at + vendor.length;
      if (vendor.length < kVendorPayloadOffset) {
        Warn(info, "vendor-specific capability at 0x%02x: length %d is below its header", at,
             vendor.length);
        end = at + kVendorPayloadOffset;
      } else if (end > a.end()) {
        Warn(info, "vendor-specific capability at 0x%02x: length %d runs past 0x%x", at,
             vendor.length, a.end());
        end = a.end();
      }
      vendor.payload = a.Bytes(at + kVendorPayloadOffset, end - (at + kVendorPayloadOffset));
      cap.body = std::move(vendor);
      break;
    }
    default:
      break;
  }
}

void DecodeExtended(const Area& a, ExtendedCapability& cap, ConfigSpaceInfo& info) {
  const uint32_t at = cap.offset;
  switch (cap.id) {
    case PCI_EXT_CAP_ID_DSN:
      if (!a.Fits(at, PCI_EXT_CAP_DSN_SIZEOF)) {
        Warn(info, "device serial number at 0x%03x runs past 0x%x", at, a.end());
        return;
      }
      cap.body = SerialNumberCapability{
          a.U32(at + kDsnSerialOffset) |
          static_cast<uint64_t>(a.U32(at + kDsnSerialOffset + 4)) << 32};
      break;
    case PCI_EXT_CAP_ID_VNDR: {
      if (!a.Fits(at, kVsecPayloadOffset)) {
        Warn(info, "vendor-specific extended capability at 0x%03x runs past 0x%x", at, a.end());
        return;
      }
      const uint32_t header = a.U32(at + PCI_VSEC_HDR);
      VendorExtendedCapability vsec;
      vsec.vsec_id = PCI_VNDR_HEADER_ID(header);
      vsec.vsec_rev = PCI_VNDR_HEADER_REV(header);
      vsec.vsec_length = PCI_VNDR_HEADER_LEN(header);
      uint32_t end = at + vsec.vsec_length;
      if (vsec.vsec_length < kVsecPayloadOffset) {
        Warn(info, "vendor-specific extended capability at 0x%03x: length %d is below its header",
             at, vsec.vsec_length);
        end = at + kVsecPayloadOffset;
      } else if (end > a.end()) {
        Warn(info, "vendor-specific extended capability at 0x%03x: length %d runs past 0x%x", at,
             vsec.vsec_length, a.end());
        end = a.end();
      }
      vsec.payload = a.Bytes(at + kVsecPayloadOffset, end - (at + kVsecPayloadOffset));
      cap.body = std::move(vsec);
      break;
    }
    default:
      break;
  }
}

// Raw bytes of each capability: up to the next one above it in config
// space, so an unknown capability shows what it owns and no more.
template <typename Cap>
void FillRaw(const Area& a, std::vector<Cap>& caps) {
  std::vector<uint32_t> offsets;
  for (const Cap& cap : caps) offsets.push_back(cap.offset);
  std::sort(offsets.begin(), offsets.end());
  for (Cap& cap : caps) {
    auto above = std::upper_bound(offsets.begin(), offsets.end(), cap.offset);
    const uint32_t end = above == offsets.end() ? a.end() : *above;
    cap.raw = a.Bytes(cap.offset, std::min(end - cap.offset, kMaxRawCapabilityBytes));
  }
}

void WalkStandard(const Area& a, ConfigSpaceInfo& info) {
  if (info.header_type > PCI_HEADER_TYPE_BRIDGE) return;
  if ((info.status & PCI_STATUS_CAP_LIST) == 0) {
    if (info.capabilities_pointer != 0) {
      Warn(info, "capabilities pointer 0x%02x ignored: status bit 4 (capability list) is clear",
           info.capabilities_pointer);
    }
    return;
  }
  std::bitset<kStandardAreaEnd> visited;
  uint32_t pointer = info.capabilities_pointer;
  uint32_t from = PCI_CAPABILITY_LIST;
  while (pointer != 0) {
    if (pointer & 3) {
      // The low two bits are reserved; drivers mask them.
      Warn(info, "capability pointer 0x%02x at 0x%02x is not dword aligned", pointer, from);
      pointer &= ~3u;
    }
    if (pointer < kConfigHeaderSize) {
      Warn(info, "capability pointer 0x%02x at 0x%02x points into the header; chain ends",
           pointer, from);
      return;
    }
    if (!a.Fits(pointer, 2)) {
      Warn(info, "capability pointer 0x%02x at 0x%02x points past 0x%x; chain ends", pointer,
           from, a.end());
      return;
    }
    if (visited[pointer]) {
      Warn(info, "capability pointer 0x%02x at 0x%02x loops back; chain ends", pointer, from);
      return;
    }
    visited[pointer] = true;
    Capability cap;
    cap.offset = static_cast<uint16_t>(pointer);
    cap.id = a.U8(pointer + PCI_CAP_LIST_ID);
    cap.next = a.U8(pointer + PCI_CAP_LIST_NEXT);
    DecodeStandard(a, cap, info);
    info.capabilities.push_back(std::move(cap));
    from = pointer + PCI_CAP_LIST_NEXT;
    pointer = info.capabilities.back().next;
  }
}

void WalkExtended(const Area& a, ConfigSpaceInfo& info) {
  if (!a.Fits(kExtendedAreaStart, kExtendedHeaderSize)) return;
  const uint32_t first = a.U32(kExtendedAreaStart);
  // All zeros (no extended capabilities) or all ones (no extended space).
  if (first == 0 || first == 0xffffffff) return;
  std::bitset<kExpressConfigSize / 4> visited;
  uint32_t pointer = kExtendedAreaStart;
  uint32_t from = kExtendedAreaStart;
  while (true) {
    if (pointer < kExtendedAreaStart) {
      Warn(info, "extended capability pointer 0x%03x at 0x%03x points below 0x100; chain ends",
           pointer, from);
      return;
    }
    if (!a.Fits(pointer, kExtendedHeaderSize)) {
      Warn(info, "extended capability pointer 0x%03x at 0x%03x points past 0x%x; chain ends",
           pointer, from, a.end());
      return;
    }
    if (visited[pointer / 4]) {
      Warn(info, "extended capability pointer 0x%03x at 0x%03x loops back; chain ends", pointer,
           from);
      return;
    }
    visited[pointer / 4] = true;
    const uint32_t header = a.U32(pointer);
    ExtendedCapability cap;
    cap.offset = static_cast<uint16_t>(pointer);
    cap.id = PCI_EXT_CAP_ID(header);
    cap.version = PCI_EXT_CAP_VER(header);
    const uint32_t next = header >> 20;
    if (next & 3) {
      Warn(info, "extended capability pointer 0x%03x at 0x%03x is not dword aligned", next,
           pointer);
    }
    cap.next = static_cast<uint16_t>(next & ~3u);
    DecodeExtended(a, cap, info);
    info.extended_capabilities.push_back(std::move(cap));
    if (info.extended_capabilities.back().next == 0) return;
    from = pointer;
    pointer = info.extended_capabilities.back().next;
  }
}

}  // namespace

absl::StatusOr<ConfigSpaceInfo> DecodeConfigSpace(absl::Span<const uint8_t> config) {
  if (config.size() < kConfigHeaderSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config space of %d bytes is shorter than the %d-byte header", config.size(),
        kConfigHeaderSize));
  }
  ConfigSpaceInfo info;
  info.size = static_cast<uint32_t>(std::min<size_t>(config.size(), kExpressConfigSize));
  const absl::Span<const uint8_t> bytes = config.first(info.size);
  if (info.size != kConventionalConfigSize && info.size != kExpressConfigSize) {
    Warn(info, "config space is %d bytes; PCI defines 256 and 4096", info.size);
  }
  DecodeHeader(Area(bytes, kConfigHeaderSize), info);

  const Area standard(bytes, std::min(info.size, kStandardAreaEnd));
  WalkStandard(standard, info);
  FillRaw(standard, info.capabilities);

  if (info.has_extended_space()) {
    const Area extended(bytes, info.size);
    WalkExtended(extended, info);
    FillRaw(extended, info.extended_capabilities);
  }
  return info;
}

uint32_t MaxPayloadSupportedBytes(const ExpressCapability& express) {
  return 128u << std::min<uint32_t>(express.device_capabilities & PCI_EXP_DEVCAP_PAYLOAD, 5);
}

uint32_t MaxPayloadBytes(const ExpressCapability& express) {
  return 128u << std::min<uint32_t>((express.device_control & PCI_EXP_DEVCTL_PAYLOAD) >> 5, 5);
}

uint32_t MaxReadRequestBytes(const ExpressCapability& express) {
  return 128u << std::min<uint32_t>((express.device_control & PCI_EXP_DEVCTL_READRQ) >> 12, 5);
}

bool ExpressTypeHasLink(uint8_t type) {
  return type != PCI_EXP_TYPE_RC_END && type != PCI_EXP_TYPE_RC_EC;
}

}  // namespace vfu::inspect
