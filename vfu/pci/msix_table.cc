#include "vfu/pci/msix_table.h"

#include <linux/pci_regs.h>

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"

namespace vfu::pci {
namespace {

constexpr uint32_t kMaxVectors = 2048;
constexpr uint32_t kVectorsPerPbaQword = 64;

// What a guest write may change in each dword of an entry.
constexpr uint32_t kWritable[] = {
    ~uint32_t{3},                 // address low: dword aligned
    ~uint32_t{0},                 // address high
    ~uint32_t{0},                 // data
    PCI_MSIX_ENTRY_CTRL_MASKBIT,  // vector control
};
constexpr uint32_t kVectorControlWord = PCI_MSIX_ENTRY_VECTOR_CTRL / 4;

absl::Status CheckAccess(const char* what, uint64_t offset, size_t length, uint64_t limit) {
  if (length != 4 && length != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("MSI-X ", what, " access of ", length, " bytes, only 4 or 8"));
  }
  if (offset % length != 0) {
    return absl::InvalidArgumentError(absl::StrCat("MSI-X ", what, " access of ", length,
                                                   " bytes at unaligned offset 0x",
                                                   absl::Hex(offset)));
  }
  if (offset > limit || length > limit - offset) {
    return absl::OutOfRangeError(absl::StrCat("MSI-X ", what, " access at 0x", absl::Hex(offset),
                                              " past its 0x", absl::Hex(limit), " bytes"));
  }
  return absl::OkStatus();
}

uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

MsixTable::MsixTable(uint32_t vectors) : words_(size_t{vectors} * kWordsPerEntry, 0) { Reset(); }

absl::StatusOr<MsixTable> MsixTable::Create(uint32_t vectors) {
  if (vectors == 0 || vectors > kMaxVectors) {
    return absl::InvalidArgumentError(
        absl::StrCat("MSI-X vector count ", vectors, " outside [1, 2048]"));
  }
  return MsixTable(vectors);
}

uint64_t MsixTable::table_bytes() const { return uint64_t{vectors()} * PCI_MSIX_ENTRY_SIZE; }

uint64_t MsixTable::pba_bytes() const {
  return (uint64_t{vectors()} + kVectorsPerPbaQword - 1) / kVectorsPerPbaQword * 8;
}

absl::Status MsixTable::Read(uint64_t offset, absl::Span<uint8_t> out) const {
  if (absl::Status s = CheckAccess("table", offset, out.size(), table_bytes()); !s.ok()) return s;
  for (size_t i = 0; i < out.size(); i += 4) StoreLe32(&out[i], words_[(offset + i) / 4]);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<MsixTable::MaskChange>> MsixTable::Write(
    uint64_t offset, absl::Span<const uint8_t> data) {
  if (absl::Status s = CheckAccess("table", offset, data.size(), table_bytes()); !s.ok()) return s;
  const uint32_t vector = static_cast<uint32_t>(offset / PCI_MSIX_ENTRY_SIZE);
  const bool was_masked = VectorMasked(vector);
  for (size_t i = 0; i < data.size(); i += 4) {
    const size_t word = (offset + i) / 4;
    const uint32_t writable = kWritable[word % kWordsPerEntry];
    words_[word] = (words_[word] & ~writable) | (LoadLe32(&data[i]) & writable);
  }
  const bool masked = VectorMasked(vector);
  if (masked == was_masked) return std::nullopt;
  return MaskChange{.vector = vector, .masked = masked};
}

absl::Status MsixTable::ReadPba(uint64_t offset, absl::Span<uint8_t> out,
                                const std::function<bool(uint32_t vector)>& pending) const {
  if (absl::Status s = CheckAccess("PBA", offset, out.size(), pba_bytes()); !s.ok()) return s;
  for (size_t i = 0; i < out.size(); ++i) {
    uint8_t byte = 0;
    for (uint32_t bit = 0; bit < 8; ++bit) {
      const uint64_t vector = (offset + i) * 8 + bit;
      if (vector < vectors() && pending(static_cast<uint32_t>(vector))) byte |= 1u << bit;
    }
    out[i] = byte;
  }
  return absl::OkStatus();
}

bool MsixTable::VectorMasked(uint32_t vector) const {
  VFU_CHECK(vector < vectors(), "MSI-X vector out of range");
  return (words_[vector * kWordsPerEntry + kVectorControlWord] & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
}

MsixTable::Entry MsixTable::entry(uint32_t vector) const {
  VFU_CHECK(vector < vectors(), "MSI-X vector out of range");
  const uint32_t* e = &words_[vector * kWordsPerEntry];
  return Entry{
      .address = e[PCI_MSIX_ENTRY_LOWER_ADDR / 4] | uint64_t{e[PCI_MSIX_ENTRY_UPPER_ADDR / 4]} << 32,
      .data = e[PCI_MSIX_ENTRY_DATA / 4],
      .masked = VectorMasked(vector),
  };
}

void MsixTable::Reset() {
  for (size_t i = 0; i < words_.size(); ++i) {
    words_[i] = i % kWordsPerEntry == kVectorControlWord ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0;
  }
}

}  // namespace vfu::pci
