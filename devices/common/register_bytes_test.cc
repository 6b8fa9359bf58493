#include "devices/common/register_bytes.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace vfu::devices {
namespace {

// {reg, first, size, shift} of each slice.
std::vector<std::vector<uint64_t>> Slices(uint64_t offset, size_t size) {
  std::vector<std::vector<uint64_t>> out;
  for (const RegisterSlice& s : RegisterSlices(offset, size)) {
    out.push_back({s.reg, s.first, s.size, s.shift});
  }
  return out;
}

TEST(RegisterSlicesTest, AlignedAccessesAreWholeRegisters) {
  using S = std::vector<std::vector<uint64_t>>;
  EXPECT_EQ(Slices(8, 4), (S{{8, 0, 4, 0}}));
  EXPECT_EQ(Slices(8, 8), (S{{8, 0, 4, 0}, {12, 4, 4, 0}}));
  EXPECT_TRUE(Slices(8, 0).empty());
}

TEST(RegisterSlicesTest, UnalignedAccessesSplitAtRegisterBoundaries) {
  using S = std::vector<std::vector<uint64_t>>;
  EXPECT_EQ(Slices(5, 1), (S{{4, 0, 1, 8}}));
  EXPECT_EQ(Slices(6, 4), (S{{4, 0, 2, 16}, {8, 2, 2, 0}}));
  EXPECT_EQ(Slices(3, 7), (S{{0, 0, 1, 24}, {4, 1, 4, 0}, {8, 5, 2, 0}}));
}

TEST(RegisterSlicesTest, MaskCoversTheSliceBytes) {
  EXPECT_EQ((RegisterSlice{.size = 4, .shift = 0}).mask(), 0xffffffffu);
  EXPECT_EQ((RegisterSlice{.size = 1, .shift = 8}).mask(), 0x0000ff00u);
  EXPECT_EQ((RegisterSlice{.size = 2, .shift = 16}).mask(), 0xffff0000u);
  EXPECT_EQ((RegisterSlice{.size = 3, .shift = 0}).mask(), 0x00ffffffu);
}

// A file of registers driven through slices reads and writes bytes as
// plain memory would, for every offset and size of a small window.
TEST(RegisterSlicesTest, ReadsAndMaskedWritesActLikeBytes) {
  for (uint64_t offset = 0; offset < 8; ++offset) {
    for (size_t size = 1; offset + size <= 16; ++size) {
      uint32_t regs[4] = {0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c};
      std::vector<uint8_t> read(size);
      for (const RegisterSlice& s : RegisterSlices(offset, size)) {
        s.Scatter(regs[s.reg / 4], absl::MakeSpan(read));
      }
      for (size_t i = 0; i < size; ++i) {
        ASSERT_EQ(read[i], offset + i) << "offset " << offset << " size " << size;
      }
      std::vector<uint8_t> data(size);
      for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(0xa0 + i);
      for (const RegisterSlice& s : RegisterSlices(offset, size)) {
        uint32_t& reg = regs[s.reg / 4];
        reg = (reg & ~s.mask()) | s.Gather(data);
      }
      for (uint64_t byte = 0; byte < 16; ++byte) {
        const uint8_t got = static_cast<uint8_t>(regs[byte / 4] >> (8 * (byte % 4)));
        const bool written = byte >= offset && byte < offset + size;
        ASSERT_EQ(got, written ? 0xa0 + (byte - offset) : byte)
            << "offset " << offset << " size " << size << " byte " << byte;
      }
    }
  }
}

}  // namespace
}  // namespace vfu::devices
