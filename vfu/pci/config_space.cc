#include "vfu/pci/config_space.h"

#include <linux/pci_regs.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"

namespace vfu::pci {
namespace {

constexpr uint16_t kCommandWritable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                      PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                      PCI_COMMAND_INTX_DISABLE;
constexpr uint16_t kStatusRw1c = PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
                                 PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT |
                                 PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY;
constexpr uint32_t kMemoryFlagBits = 0xf;
constexpr uint32_t kIoFlagBits = 0x3;
constexpr uint64_t kMaxMemory32Size = uint64_t{1} << 31;
constexpr uint64_t kMaxMemory64Size = uint64_t{1} << 63;
constexpr uint64_t kMaxIoSize = 64 * 1024;
constexpr uint64_t kMinRomSize = 2 * 1024;
constexpr uint64_t kMaxRomSize = 16 * 1024 * 1024;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint32_t AlignUp4(uint32_t v) { return (v + 3) & ~uint32_t{3}; }

uint32_t BarOffset(int index) { return PCI_BASE_ADDRESS_0 + 4 * static_cast<uint32_t>(index); }

absl::Status CheckBar(int index, const BarLayout& bar) {
  if (bar.size == 0) return absl::OkStatus();
  const std::string name = absl::StrCat("BAR", index);
  if (!IsPowerOfTwo(bar.size)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " size ", bar.size, " is not a power of two"));
  }
  switch (bar.kind) {
    case BarKind::kMemory32:
      if (bar.size < 16 || bar.size > kMaxMemory32Size) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " 32-bit memory size ", bar.size, " outside [16, 2 GiB]"));
      }
      return absl::OkStatus();
    case BarKind::kMemory64:
      if (bar.size < 16 || bar.size > kMaxMemory64Size) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " 64-bit memory size ", bar.size, " outside [16, 2^63]"));
      }
      if (index == kNumBars - 1) {
        return absl::InvalidArgumentError(
            "BAR5 cannot be 64-bit: it has no upper slot");
      }
      return absl::OkStatus();
    case BarKind::kIo:
      if (bar.size < 4 || bar.size > kMaxIoSize) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " I/O size ", bar.size, " outside [4, 64 KiB]"));
      }
      if (bar.prefetchable) {
        return absl::InvalidArgumentError(absl::StrCat(name, " is I/O and cannot be prefetchable"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(name, " has an unknown kind"));
}

absl::Status CheckLayout(const Identity& identity, const std::array<BarLayout, kNumBars>& bars,
                         uint64_t rom_size) {
  if (identity.vendor_id == 0xffff) {
    return absl::InvalidArgumentError("vendor ID 0xffff means no device");
  }
  if (identity.class_code > 0xffffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("class code 0x", absl::Hex(identity.class_code), " exceeds 24 bits"));
  }
  if (identity.interrupt_pin > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interrupt pin ", int{identity.interrupt_pin}, " is not 0 (none) or 1..4 (INTA..INTD)"));
  }
  for (int i = 0; i < kNumBars; ++i) {
    if (i > 0 && bars[i - 1].size != 0 && bars[i - 1].kind == BarKind::kMemory64 &&
        bars[i].size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BAR", i, " is the upper half of 64-bit BAR", i - 1, " and must have size 0"));
    }
    if (absl::Status s = CheckBar(i, bars[i]); !s.ok()) return s;
  }
  if (rom_size != 0 &&
      (!IsPowerOfTwo(rom_size) || rom_size < kMinRomSize || rom_size > kMaxRomSize)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expansion ROM size ", rom_size, " is not a power of two in [2 KiB, 16 MiB]"));
  }
  return absl::OkStatus();
}

absl::Status CheckMasks(const std::vector<uint8_t>& bytes, const std::vector<uint8_t>& writable,
                        const std::vector<uint8_t>& rw1c, const std::string& what) {
  if (writable.size() != bytes.size() || rw1c.size() != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", bytes.size(), " bytes but masks of ",
                                                   writable.size(), " and ", rw1c.size()));
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    if ((writable[i] & rw1c[i]) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": byte ", i, " has bits both writable and RW1C"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ConfigSpace::ConfigSpace(const Identity& identity, std::array<BarLayout, kNumBars> bars,
                         uint64_t rom_size, uint32_t size)
    : identity_(identity),
      bars_(bars),
      rom_size_(rom_size),
      bytes_(size, 0),
      writable_(size, 0),
      rw1c_(size, 0),
      default_(size, 0) {}

absl::StatusOr<ConfigSpace> ConfigSpace::Create(const Identity& identity,
                                                std::array<BarLayout, kNumBars> bars,
                                                uint64_t rom_size, bool express) {
  if (absl::Status s = CheckLayout(identity, bars, rom_size); !s.ok()) return s;
  ConfigSpace config(identity, bars, rom_size,
                     express ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE);
  config.InitHeader();
  return config;
}

void ConfigSpace::InitHeader() {
  Define(PCI_VENDOR_ID, 2, identity_.vendor_id);
  Define(PCI_DEVICE_ID, 2, identity_.device_id);
  Define(PCI_COMMAND, 2, 0, kCommandWritable);
  Define(PCI_STATUS, 2, 0, 0, kStatusRw1c);
  Define(PCI_REVISION_ID, 1, identity_.revision);
  Define(PCI_CLASS_PROG, 3, identity_.class_code);
  Define(PCI_CACHE_LINE_SIZE, 1, 0, 0xff);
  // PCIe hardwires the latency timer to 0; it only means something on a bus.
  Define(PCI_LATENCY_TIMER, 1, 0, express() ? 0 : 0xff);
  Define(PCI_HEADER_TYPE, 1, PCI_HEADER_TYPE_NORMAL);
  for (int i = 0; i < kNumBars; ++i) InitBar(i);
  Define(PCI_SUBSYSTEM_VENDOR_ID, 2, identity_.subsystem_vendor_id);
  Define(PCI_SUBSYSTEM_ID, 2, identity_.subsystem_id);
  InitRom();
  Define(PCI_INTERRUPT_LINE, 1, 0, 0xff);
  Define(PCI_INTERRUPT_PIN, 1, identity_.interrupt_pin);
}

// Address bits below the size stay read-only zero; that is what makes an
// all-ones write read back the size mask.
void ConfigSpace::InitBar(int index) {
  const BarLayout& bar = bars_[index];
  if (bar.size == 0) return;
  const uint64_t address_mask = ~(bar.size - 1);
  const uint32_t prefetch = bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
  switch (bar.kind) {
    case BarKind::kMemory32:
      Define(BarOffset(index), 4, prefetch,
             static_cast<uint32_t>(address_mask) & ~kMemoryFlagBits);
      break;
    case BarKind::kMemory64:
      Define(BarOffset(index), 4, PCI_BASE_ADDRESS_MEM_TYPE_64 | prefetch,
             static_cast<uint32_t>(address_mask) & ~kMemoryFlagBits);
      Define(BarOffset(index + 1), 4, 0, static_cast<uint32_t>(address_mask >> 32));
      break;
    case BarKind::kIo:
      Define(BarOffset(index), 4, PCI_BASE_ADDRESS_SPACE_IO,
             static_cast<uint32_t>(address_mask) & ~kIoFlagBits);
      break;
  }
}

void ConfigSpace::InitRom() {
  if (rom_size_ == 0) return;
  const uint32_t address_mask = static_cast<uint32_t>(~(rom_size_ - 1)) & PCI_ROM_ADDRESS_MASK;
  Define(PCI_ROM_ADDRESS, 4, 0, address_mask | PCI_ROM_ADDRESS_ENABLE);
}

void ConfigSpace::Define(uint32_t offset, uint32_t width, uint32_t value, uint32_t writable,
                         uint32_t rw1c) {
  for (uint32_t i = 0; i < width; ++i) {
    DefineByte(offset + i, static_cast<uint8_t>(value >> (8 * i)),
               static_cast<uint8_t>(writable >> (8 * i)), static_cast<uint8_t>(rw1c >> (8 * i)));
  }
}

void ConfigSpace::DefineByte(uint32_t offset, uint8_t value, uint8_t writable, uint8_t rw1c) {
  CheckRange(offset, 1);
  bytes_[offset] = value;
  default_[offset] = value;
  writable_[offset] = writable;
  rw1c_[offset] = rw1c;
}

void ConfigSpace::CheckRange(uint32_t offset, uint64_t length) const {
  VFU_CHECK(offset <= bytes_.size() && length <= bytes_.size() - offset,
            "config space access outside the space");
}

const BarLayout& ConfigSpace::bar(int index) const {
  VFU_CHECK(index >= 0 && index < kNumBars, "BAR index out of range");
  return bars_[index];
}

void ConfigSpace::Read(uint32_t offset, absl::Span<uint8_t> out) const {
  CheckRange(offset, out.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = bytes_[offset + i];
}

void ConfigSpace::Write(uint32_t offset, absl::Span<const uint8_t> data) {
  CheckRange(offset, data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t o = offset + i;
    uint8_t value = (bytes_[o] & ~writable_[o]) | (data[i] & writable_[o]);
    value &= ~(data[i] & rw1c_[o]);
    bytes_[o] = value;
  }
}

absl::StatusOr<uint16_t> ConfigSpace::AddCapability(const Capability& cap) {
  const std::string what = absl::StrCat("capability 0x", absl::Hex(cap.id));
  if (cap.id == 0) return absl::InvalidArgumentError("capability ID 0 is reserved");
  if (cap.bytes.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is shorter than its 2-byte header"));
  }
  if (absl::Status s = CheckMasks(cap.bytes, cap.writable, cap.rw1c, what); !s.ok()) return s;
  const uint32_t offset = AlignUp4(next_standard_);
  if (offset + cap.bytes.size() > PCI_CFG_SPACE_SIZE) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " of ", cap.bytes.size(),
                                                     " bytes does not fit at 0x",
                                                     absl::Hex(offset), " below 0x100"));
  }
  for (size_t i = 2; i < cap.bytes.size(); ++i) {
    DefineByte(offset + i, cap.bytes[i], cap.writable[i], cap.rw1c[i]);
  }
  DefineByte(offset + PCI_CAP_LIST_ID, cap.id, 0, 0);
  DefineByte(offset + PCI_CAP_LIST_NEXT, 0, 0, 0);
  if (last_standard_ == 0) {
    DefineByte(PCI_CAPABILITY_LIST, static_cast<uint8_t>(offset), 0, 0);
    bytes_[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    default_[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
  } else {
    DefineByte(last_standard_ + PCI_CAP_LIST_NEXT, static_cast<uint8_t>(offset), 0, 0);
  }
  last_standard_ = offset;
  next_standard_ = offset + static_cast<uint32_t>(cap.bytes.size());
  return static_cast<uint16_t>(offset);
}

absl::StatusOr<uint16_t> ConfigSpace::AddExtendedCapability(const ExtendedCapability& cap) {
  const std::string what = absl::StrCat("extended capability 0x", absl::Hex(cap.id));
  if (!express()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " needs a 4096-byte (express) config space"));
  }
  if (cap.id == 0) return absl::InvalidArgumentError("extended capability ID 0 is reserved");
  if (cap.version > 0xf) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " version ", int{cap.version}, " exceeds 4 bits"));
  }
  if (cap.bytes.size() < 4) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is shorter than its 4-byte header"));
  }
  if (absl::Status s = CheckMasks(cap.bytes, cap.writable, cap.rw1c, what); !s.ok()) return s;
  const uint32_t offset = AlignUp4(next_extended_);
  if (offset + cap.bytes.size() > size()) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " of ", cap.bytes.size(),
                                                     " bytes does not fit at 0x",
                                                     absl::Hex(offset), " below 0x1000"));
  }
  for (size_t i = 4; i < cap.bytes.size(); ++i) {
    DefineByte(offset + i, cap.bytes[i], cap.writable[i], cap.rw1c[i]);
  }
  Define(offset, 4, uint32_t{cap.id} | uint32_t{cap.version} << 16);
  if (last_extended_ != 0) {
    // The next pointer is bits 31:20 of the previous header.
    const uint32_t header = Get32(last_extended_);
    Define(last_extended_, 4, (header & 0x000fffff) | offset << 20);
  }
  last_extended_ = offset;
  next_extended_ = offset + static_cast<uint32_t>(cap.bytes.size());
  return static_cast<uint16_t>(offset);
}

std::optional<uint16_t> ConfigSpace::FindCapability(uint8_t id) const {
  if ((status() & PCI_STATUS_CAP_LIST) == 0) return std::nullopt;
  // Each capability takes at least a dword, so at most 48 fit; a longer walk
  // is a loop.
  constexpr int kMaxHops = (PCI_CFG_SPACE_SIZE - kStandardCapabilitiesStart) / 4;
  uint32_t pointer = Get8(PCI_CAPABILITY_LIST) & ~3u;
  for (int hops = 0; hops < kMaxHops && pointer >= kStandardCapabilitiesStart; ++hops) {
    if (Get8(pointer + PCI_CAP_LIST_ID) == id) return static_cast<uint16_t>(pointer);
    pointer = Get8(pointer + PCI_CAP_LIST_NEXT) & ~3u;
  }
  return std::nullopt;
}

std::optional<uint16_t> ConfigSpace::FindExtendedCapability(uint16_t id) const {
  if (!express()) return std::nullopt;
  constexpr int kMaxHops = (PCI_CFG_SPACE_EXP_SIZE - kExtendedCapabilitiesStart) / 4;
  uint32_t pointer = kExtendedCapabilitiesStart;
  for (int hops = 0; hops < kMaxHops && pointer >= kExtendedCapabilitiesStart; ++hops) {
    const uint32_t header = Get32(pointer);
    // An all-zero header at 0x100 means "no extended capabilities".
    if (header == 0) return std::nullopt;
    if (PCI_EXT_CAP_ID(header) == id) return static_cast<uint16_t>(pointer);
    pointer = PCI_EXT_CAP_NEXT(header);
  }
  return std::nullopt;
}

void ConfigSpace::Reset() { bytes_ = default_; }

uint64_t ConfigSpace::BarAddress(int index) const {
  const BarLayout& layout = bar(index);
  if (layout.size == 0) return 0;
  const uint32_t low = Get32(BarOffset(index));
  switch (layout.kind) {
    case BarKind::kMemory32:
      return low & ~kMemoryFlagBits;
    case BarKind::kMemory64:
      return (low & ~kMemoryFlagBits) | uint64_t{Get32(BarOffset(index + 1))} << 32;
    case BarKind::kIo:
      return low & ~kIoFlagBits;
  }
  return 0;
}

uint64_t ConfigSpace::RomAddress() const {
  if (rom_size_ == 0) return 0;
  return Get32(PCI_ROM_ADDRESS) & PCI_ROM_ADDRESS_MASK;
}

bool ConfigSpace::RomEnabled() const {
  return rom_size_ != 0 && (Get32(PCI_ROM_ADDRESS) & PCI_ROM_ADDRESS_ENABLE) != 0;
}

uint8_t ConfigSpace::Get8(uint32_t offset) const {
  CheckRange(offset, 1);
  return bytes_[offset];
}

uint16_t ConfigSpace::Get16(uint32_t offset) const {
  CheckRange(offset, 2);
  return static_cast<uint16_t>(bytes_[offset] | bytes_[offset + 1] << 8);
}

uint32_t ConfigSpace::Get32(uint32_t offset) const {
  CheckRange(offset, 4);
  return uint32_t{bytes_[offset]} | uint32_t{bytes_[offset + 1]} << 8 |
         uint32_t{bytes_[offset + 2]} << 16 | uint32_t{bytes_[offset + 3]} << 24;
}

void ConfigSpace::Set8(uint32_t offset, uint8_t value) {
  CheckRange(offset, 1);
  bytes_[offset] = value;
}

void ConfigSpace::Set16(uint32_t offset, uint16_t value) {
  CheckRange(offset, 2);
  for (uint32_t i = 0; i < 2; ++i) bytes_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void ConfigSpace::Set32(uint32_t offset, uint32_t value) {
  CheckRange(offset, 4);
  for (uint32_t i = 0; i < 4; ++i) bytes_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

uint16_t ConfigSpace::command() const { return Get16(PCI_COMMAND); }

uint16_t ConfigSpace::status() const { return Get16(PCI_STATUS); }

void ConfigSpace::SetInterruptStatus(bool asserted) {
  const uint16_t s = status();
  Set16(PCI_STATUS, asserted ? (s | PCI_STATUS_INTERRUPT) : (s & ~PCI_STATUS_INTERRUPT));
}

}  // namespace vfu::pci
