// ConfigSpace: the PCI configuration space of one type-0 function, as the
// guest (through the client) sees it.
//
// The space is a byte array plus three per-byte masks:
//   writable  bits a guest write stores,
//   rw1c      bits a guest write of 1 clears (write-1-to-clear),
//   default   the image Reset() restores.
// Every other bit is read-only. With byte masks, accesses of any size and
// alignment need no special cases, and BAR sizing falls out: a BAR's address
// bits below its size are read-only zero, so writing all ones reads back the
// size mask with the read-only type bits.
//
// Lifetime: Create() with the identity and BAR layout, then
// AddCapability()/AddExtendedCapability() while building the device, before
// any client sees the space. Read()/Write() are the guest's accesses; the
// Get/Set calls are the device model's own, ignoring the masks (for example
// to raise the interrupt-status bit).
//
// Pure data: no threads, no locks. Thread-compatible; the device model
// serializes accesses.
#ifndef VFU_PCI_CONFIG_SPACE_H_
#define VFU_PCI_CONFIG_SPACE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::pci {

inline constexpr int kNumBars = 6;
// Where capabilities may live: standard ones in [0x40, 0x100), extended ones
// (express only) in [0x100, 0x1000).
inline constexpr uint32_t kStandardCapabilitiesStart = 0x40;
inline constexpr uint32_t kExtendedCapabilitiesStart = 0x100;

enum class BarKind {
  kMemory32,  // 32-bit memory BAR.
  kMemory64,  // 64-bit memory BAR; also occupies the next slot (upper half).
  kIo,        // I/O space BAR.
};

struct BarLayout {
  // 0: not implemented. Otherwise a power of two: memory >= 16 bytes
  // (memory32 <= 2 GiB), I/O >= 4 bytes and <= 64 KiB.
  uint64_t size = 0;
  BarKind kind = BarKind::kMemory32;
  // Memory BARs only.
  bool prefetchable = false;
};

struct Identity {
  uint16_t vendor_id = 0;  // 0xffff is rejected: it reads as "no device".
  uint16_t device_id = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  uint32_t class_code = 0;  // 24 bits: base << 16 | sub << 8 | prog-if.
  uint8_t revision = 0;
  uint8_t interrupt_pin = 0;  // 0 none, 1..4 INTA..INTD.
};

// A standard capability as its builder lays it out. `bytes` is the whole
// capability including the 2 header bytes (ID, next pointer); AddCapability()
// writes both header bytes itself. `writable` and `rw1c` are per-byte masks
// of the same length as `bytes`; masks on the header bytes are ignored.
struct Capability {
  uint8_t id = 0;
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> writable;
  std::vector<uint8_t> rw1c;
};

// An extended (PCIe) capability. `bytes` includes the 4-byte header, which
// AddExtendedCapability() writes from `id`, `version` and the chain.
struct ExtendedCapability {
  uint16_t id = 0;
  uint8_t version = 0;  // 4 bits.
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> writable;
  std::vector<uint8_t> rw1c;
};

class ConfigSpace {
 public:
  // Builds the type-0 header. InvalidArgument, naming the field, for a bad
  // identity, a BAR size that is not a valid power of two, a prefetchable
  // I/O BAR, a 64-bit BAR in slot 5 or whose upper slot is also described,
  // or a ROM size that is not a power of two in [2 KiB, 16 MiB].
  // `express` selects 4096 bytes (PCIe) over 256 (conventional PCI).
  static absl::StatusOr<ConfigSpace> Create(const Identity& identity,
                                            std::array<BarLayout, kNumBars> bars,
                                            uint64_t rom_size, bool express);

  // 256 or 4096.
  uint32_t size() const { return static_cast<uint32_t>(bytes_.size()); }
  bool express() const { return size() > 256; }
  const Identity& identity() const { return identity_; }
  // The layout given to Create(); the upper slot of a 64-bit BAR reads as
  // not implemented.
  const BarLayout& bar(int index) const;
  uint64_t rom_size() const { return rom_size_; }

  // Guest read and write of any length at any offset. The caller checks
  // that [offset, offset + length) lies within size(); a range outside it
  // is a bug in the caller and aborts.
  void Read(uint32_t offset, absl::Span<uint8_t> out) const;
  void Write(uint32_t offset, absl::Span<const uint8_t> data);

  // Appends a standard capability at the next dword-aligned offset from
  // 0x40 and links it into the chain (capabilities pointer 0x34, status bit
  // 4). Returns its offset. InvalidArgument for ID 0, fewer than 2 bytes,
  // masks of another length or a bit both writable and RW1C;
  // ResourceExhausted when it does not fit below 0x100.
  absl::StatusOr<uint16_t> AddCapability(const Capability& cap);
  // Same for extended capabilities from 0x100: FailedPrecondition on a
  // conventional (256-byte) space, InvalidArgument for ID 0, a version above
  // 15, fewer than 4 bytes or bad masks, ResourceExhausted past 0x1000.
  absl::StatusOr<uint16_t> AddExtendedCapability(const ExtendedCapability& cap);

  // Walk the live chain as a driver does; nullopt when absent. The walk is
  // bounded, so a corrupted chain cannot loop.
  std::optional<uint16_t> FindCapability(uint8_t id) const;
  std::optional<uint16_t> FindExtendedCapability(uint16_t id) const;

  // Restores the default image: what the function looks like after a reset.
  void Reset();

  // The address the guest programmed into a BAR, flag bits removed; a 64-bit
  // BAR combines both halves. 0 for an unimplemented BAR or an upper half.
  uint64_t BarAddress(int index) const;
  // The expansion ROM address (bits 31:11); the enable bit is not included.
  uint64_t RomAddress() const;
  bool RomEnabled() const;

  // Raw access for the device model, ignoring masks; little-endian. The
  // range must lie within size(), else abort.
  uint8_t Get8(uint32_t offset) const;
  uint16_t Get16(uint32_t offset) const;
  uint32_t Get32(uint32_t offset) const;
  void Set8(uint32_t offset, uint8_t value);
  void Set16(uint32_t offset, uint16_t value);
  void Set32(uint32_t offset, uint32_t value);

  uint16_t command() const;
  uint16_t status() const;
  // Status bit 3, the INTx state the device model asserts or deasserts.
  void SetInterruptStatus(bool asserted);

 private:
  ConfigSpace(const Identity& identity, std::array<BarLayout, kNumBars> bars,
              uint64_t rom_size, uint32_t size);

  void InitHeader();
  void InitBar(int index);
  void InitRom();
  // Sets a register in both the live and the default image, with its masks.
  void Define(uint32_t offset, uint32_t width, uint32_t value, uint32_t writable = 0,
              uint32_t rw1c = 0);
  void DefineByte(uint32_t offset, uint8_t value, uint8_t writable, uint8_t rw1c);
  void CheckRange(uint32_t offset, uint64_t length) const;

  Identity identity_;
  std::array<BarLayout, kNumBars> bars_;
  uint64_t rom_size_;
  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> writable_;
  std::vector<uint8_t> rw1c_;
  std::vector<uint8_t> default_;
  // Offset of the last capability added (0: none yet) and the first free
  // byte after it, per chain.
  uint32_t last_standard_ = 0;
  uint32_t next_standard_ = kStandardCapabilitiesStart;
  uint32_t last_extended_ = 0;
  uint32_t next_extended_ = kExtendedCapabilitiesStart;
};

}  // namespace vfu::pci

#endif  // VFU_PCI_CONFIG_SPACE_H_
