#include "vfu/pci/msix_table.h"

#include <linux/pci_regs.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu::pci {
namespace {

using ::vfu::testing::StatusIs;

std::vector<uint8_t> Le(uint64_t value, size_t width) {
  std::vector<uint8_t> bytes(width);
  for (size_t i = 0; i < width; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  return bytes;
}

uint64_t FromLe(const std::vector<uint8_t>& bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t{bytes[i]} << (8 * i);
  return value;
}

uint64_t ReadTable(const MsixTable& table, uint64_t offset, size_t width) {
  std::vector<uint8_t> out(width);
  EXPECT_OK(table.Read(offset, absl::MakeSpan(out)));
  return FromLe(out);
}

std::optional<MsixTable::MaskChange> WriteTable(MsixTable& table, uint64_t offset, uint64_t value,
                                                size_t width) {
  absl::StatusOr<std::optional<MsixTable::MaskChange>> change =
      table.Write(offset, Le(value, width));
  EXPECT_OK(change);
  return change.value_or(std::nullopt);
}

uint64_t EntryOffset(uint32_t vector, uint32_t field) {
  return uint64_t{vector} * PCI_MSIX_ENTRY_SIZE + field;
}

// Only 1..2048 vectors make a table.
TEST(MsixTableTest, CreateRejectsBadCounts) {
  EXPECT_THAT(MsixTable::Create(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MsixTable::Create(2049), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(MsixTable::Create(1));
  EXPECT_OK(MsixTable::Create(2048));
}

// Table is 16 bytes per vector; PBA one qword per 64 vectors.
TEST(MsixTableTest, Sizes) {
  for (auto [vectors, table, pba] : std::vector<std::tuple<uint32_t, uint64_t, uint64_t>>{
           {1, 16, 8}, {64, 1024, 8}, {65, 1040, 16}, {2048, 32768, 256}}) {
    ASSERT_OK_AND_ASSIGN(MsixTable t, MsixTable::Create(vectors));
    EXPECT_EQ(t.vectors(), vectors);
    EXPECT_EQ(t.table_bytes(), table) << vectors;
    EXPECT_EQ(t.pba_bytes(), pba) << vectors;
  }
}

// A new table has every vector masked and every message zero.
TEST(MsixTableTest, StartsMasked) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(4));
  for (uint32_t v = 0; v < 4; ++v) {
    EXPECT_TRUE(table.VectorMasked(v));
    EXPECT_EQ(ReadTable(table, EntryOffset(v, PCI_MSIX_ENTRY_VECTOR_CTRL), 4),
              uint64_t{PCI_MSIX_ENTRY_CTRL_MASKBIT});
    EXPECT_EQ(ReadTable(table, EntryOffset(v, 0), 8), 0u);
  }
}

// Dword and qword writes program an entry; reads of either size agree.
TEST(MsixTableTest, DwordAndQwordAccesses) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(8));
  WriteTable(table, EntryOffset(3, PCI_MSIX_ENTRY_LOWER_ADDR), 0x00000001'fee01000, 8);
  WriteTable(table, EntryOffset(3, PCI_MSIX_ENTRY_DATA), 0x4041, 4);
  EXPECT_EQ(ReadTable(table, EntryOffset(3, PCI_MSIX_ENTRY_LOWER_ADDR), 4), 0xfee01000u);
  EXPECT_EQ(ReadTable(table, EntryOffset(3, PCI_MSIX_ENTRY_UPPER_ADDR), 4), 0x1u);
  EXPECT_EQ(ReadTable(table, EntryOffset(3, PCI_MSIX_ENTRY_DATA), 8),
            0x00000001'00004041u);
  const MsixTable::Entry entry = table.entry(3);
  EXPECT_EQ(entry.address, 0x1'fee01000u);
  EXPECT_EQ(entry.data, 0x4041u);
  EXPECT_TRUE(entry.masked);
  // Neighbours are untouched.
  EXPECT_EQ(ReadTable(table, EntryOffset(2, 0), 8), 0u);
  EXPECT_EQ(ReadTable(table, EntryOffset(4, 0), 8), 0u);
}

// Address bits 1:0 and reserved vector-control bits read as zero.
TEST(MsixTableTest, ReservedBitsReadZero) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(1));
  WriteTable(table, 0, 0xffffffff'ffffffff, 8);
  WriteTable(table, 8, 0xffffffff'ffffffff, 8);
  EXPECT_EQ(ReadTable(table, 0, 8), 0xffffffff'fffffffcu);
  EXPECT_EQ(ReadTable(table, 8, 8), 0x00000001'ffffffffu);
}

// Flipping a mask bit is reported with the new state; other writes are not.
TEST(MsixTableTest, MaskChangesAreReported) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(8));
  const uint64_t control = EntryOffset(5, PCI_MSIX_ENTRY_VECTOR_CTRL);
  EXPECT_EQ(WriteTable(table, control, 1, 4), std::nullopt);

  std::optional<MsixTable::MaskChange> unmask = WriteTable(table, control, 0, 4);
  ASSERT_TRUE(unmask.has_value());
  EXPECT_EQ(unmask->vector, 5u);
  EXPECT_FALSE(unmask->masked);
  EXPECT_FALSE(table.VectorMasked(5));
  EXPECT_TRUE(table.VectorMasked(4));

  EXPECT_EQ(WriteTable(table, EntryOffset(5, PCI_MSIX_ENTRY_DATA), 0x22, 4), std::nullopt);
  EXPECT_EQ(WriteTable(table, control, 0xfffffffe, 4), std::nullopt);  // Bit 0 stays clear.

  // A qword write of data + control masks again.
  std::optional<MsixTable::MaskChange> mask =
      WriteTable(table, EntryOffset(5, PCI_MSIX_ENTRY_DATA), 0x1'00000033, 8);
  ASSERT_TRUE(mask.has_value());
  EXPECT_EQ(mask->vector, 5u);
  EXPECT_TRUE(mask->masked);
  EXPECT_EQ(table.entry(5).data, 0x33u);
}

// Sizes other than 4 and 8, misaligned offsets and offsets past the end are
// refused, and a refused write changes nothing.
TEST(MsixTableTest, BadAccessesRejected) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(2));
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  const auto kOutOfRange = absl::StatusCode::kOutOfRange;
  auto never = [](uint32_t) { return false; };
  for (size_t size : {0, 1, 2, 3, 5, 16}) {
    std::vector<uint8_t> buffer(size, 0);
    EXPECT_THAT(table.Read(0, absl::MakeSpan(buffer)), StatusIs(kInvalid)) << size;
    EXPECT_THAT(table.Write(0, buffer), StatusIs(kInvalid)) << size;
    EXPECT_THAT(table.ReadPba(0, absl::MakeSpan(buffer), never), StatusIs(kInvalid)) << size;
  }
  std::vector<uint8_t> dword(4, 0), qword(8, 0);
  EXPECT_THAT(table.Read(2, absl::MakeSpan(dword)), StatusIs(kInvalid));
  EXPECT_THAT(table.Write(12, qword), StatusIs(kInvalid));
  EXPECT_THAT(table.ReadPba(4, absl::MakeSpan(qword), never), StatusIs(kInvalid));
  EXPECT_THAT(table.Read(32, absl::MakeSpan(dword)), StatusIs(kOutOfRange));
  EXPECT_THAT(table.Write(32, qword), StatusIs(kOutOfRange));
  EXPECT_THAT(table.Write(0xffffffff'fffffff8, qword), StatusIs(kOutOfRange));
  EXPECT_THAT(table.ReadPba(8, absl::MakeSpan(dword), never), StatusIs(kOutOfRange));
  EXPECT_TRUE(table.VectorMasked(0));
  EXPECT_TRUE(table.VectorMasked(1));
  EXPECT_OK(table.Read(28, absl::MakeSpan(dword)));
  EXPECT_OK(table.ReadPba(4, absl::MakeSpan(dword), never));
}

// PBA bits come from the callback, asked only for implemented vectors.
TEST(MsixTableTest, PbaReflectsPending) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(70));
  std::vector<uint32_t> asked;
  auto pending = [&asked](uint32_t v) {
    asked.push_back(v);
    return v == 0 || v == 5 || v == 63 || v >= 64;
  };
  std::vector<uint8_t> qword(8);
  ASSERT_OK(table.ReadPba(0, absl::MakeSpan(qword), pending));
  EXPECT_EQ(FromLe(qword), uint64_t{1} | uint64_t{1} << 5 | uint64_t{1} << 63);
  ASSERT_OK(table.ReadPba(8, absl::MakeSpan(qword), pending));
  EXPECT_EQ(FromLe(qword), 0x3fu);  // Vectors 64..69; the rest do not exist.
  std::vector<uint8_t> dword(4);
  ASSERT_OK(table.ReadPba(12, absl::MakeSpan(dword), pending));
  EXPECT_EQ(FromLe(dword), 0u);
  for (uint32_t v : asked) EXPECT_LT(v, 70u);
}

// Reset masks every vector and clears every message.
TEST(MsixTableTest, ResetMasksEverything) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(3));
  for (uint32_t v = 0; v < 3; ++v) {
    WriteTable(table, EntryOffset(v, 0), 0x12345678'9abcdef0, 8);
    WriteTable(table, EntryOffset(v, 8), 0x00000000'11111111, 8);
    ASSERT_FALSE(table.VectorMasked(v));
  }
  table.Reset();
  for (uint32_t v = 0; v < 3; ++v) {
    EXPECT_TRUE(table.VectorMasked(v));
    EXPECT_EQ(table.entry(v).address, 0u);
    EXPECT_EQ(table.entry(v).data, 0u);
  }
}

// Asking about a vector the table does not have is a caller bug.
TEST(MsixTableDeathTest, VectorOutOfRangeAborts) {
  ASSERT_OK_AND_ASSIGN(MsixTable table, MsixTable::Create(2));
  EXPECT_DEATH(table.VectorMasked(2), "out of range");
  EXPECT_DEATH(table.entry(2), "out of range");
}

}  // namespace
}  // namespace vfu::pci
