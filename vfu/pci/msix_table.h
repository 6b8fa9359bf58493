// MsixTable: the MSI-X vector table and pending-bit array (PBA) a device
// exposes in one of its BARs.
//
// Table layout, one 16-byte entry per vector (PCI_MSIX_ENTRY_*):
//   +0x0  message address, low 32 bits (bits 1:0 read as zero)
//   +0x4  message address, high 32 bits
//   +0x8  message data
//   +0xc  vector control: bit 0 masks the vector; the rest reads as zero
// The PBA holds one bit per vector, 64 vectors per qword; it is read-only
// and its bits come from the device model (ReadPba's `pending`), so a PBA
// write is simply dropped by the caller.
//
// Accesses are 4 or 8 bytes, naturally aligned, as the PCI spec allows for
// both structures. Offsets are relative to the start of the table (or the
// PBA); the device model maps its BAR offsets onto them.
//
// A vector delivers only when MSI-X is enabled, the function is not masked
// (see ReadMsixState) and VectorMasked() is false; a write that unmasks a
// vector is reported so the device model can send what became pending while
// it was masked.
//
// Pure data; thread-compatible.
#ifndef VFU_PCI_MSIX_TABLE_H_
#define VFU_PCI_MSIX_TABLE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::pci {

class MsixTable {
 public:
  // A vector's programmed message.
  struct Entry {
    uint64_t address = 0;
    uint32_t data = 0;
    bool masked = true;
  };

  // A table write that flipped a vector's mask bit.
  struct MaskChange {
    uint32_t vector = 0;
    bool masked = false;  // The new state.
  };

  // A table of `vectors` (1..2048) entries, all masked. InvalidArgument for
  // another count.
  static absl::StatusOr<MsixTable> Create(uint32_t vectors);

  uint32_t vectors() const { return static_cast<uint32_t>(words_.size() / kWordsPerEntry); }
  // Bytes the table and the PBA occupy in their BARs.
  uint64_t table_bytes() const;
  uint64_t pba_bytes() const;

  // Reads `out.size()` bytes of the table at `offset`. InvalidArgument unless
  // the size is 4 or 8 and `offset` a multiple of it; OutOfRange past the
  // table.
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> out) const;
  // Writes the table under the same rules. Returns the mask change the write
  // made, if any (an aligned access touches one entry, so at most one).
  absl::StatusOr<std::optional<MaskChange>> Write(uint64_t offset, absl::Span<const uint8_t> data);
  // Reads the PBA under the same rules; bit n is `pending(n)`, asked only for
  // implemented vectors. Bits past the last vector read as zero.
  absl::Status ReadPba(uint64_t offset, absl::Span<uint8_t> out,
                       const std::function<bool(uint32_t vector)>& pending) const;

  // `vector` must be below vectors(), else abort.
  bool VectorMasked(uint32_t vector) const;
  Entry entry(uint32_t vector) const;

  // Every entry zero and masked, as after a function reset.
  void Reset();

 private:
  static constexpr uint32_t kWordsPerEntry = 4;

  explicit MsixTable(uint32_t vectors);

  // The table as dword values, kWordsPerEntry per vector.
  std::vector<uint32_t> words_;
};

}  // namespace vfu::pci

#endif  // VFU_PCI_MSIX_TABLE_H_
