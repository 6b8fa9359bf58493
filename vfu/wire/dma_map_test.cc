#include "vfu/wire/dma_map.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

// Golden bytes written from PROTOCOL.md 4.1's offsets, not from our encoder:
// argsz 32, flags READ|WRITE, offset 0x1000, addr 0x100000, size 0x2000.
const char kGoldenDmaMap[] =
    "20000000 | 03000000 | 0010000000000000 | 0000100000000000 | 0020000000000000";

// The golden vector decodes into the fields at their documented offsets.
TEST(DmaMapTest, DecodesGoldenBytes) {
  ASSERT_OK_AND_ASSIGN(DmaMapRequest r, DecodeDmaMapRequest(HexBytes(kGoldenDmaMap), 1));
  EXPECT_EQ(r.argsz, 32u);
  EXPECT_EQ(r.flags, kDmaMapFlagRead | kDmaMapFlagWrite);
  EXPECT_EQ(r.offset, 0x1000u);
  EXPECT_EQ(r.addr, 0x100000u);
  EXPECT_EQ(r.size, 0x2000u);
}

// Encoding reproduces the golden vector byte for byte.
TEST(DmaMapTest, EncodesGoldenBytes) {
  DmaMapRequest r{.argsz = 32, .flags = 3, .offset = 0x1000, .addr = 0x100000, .size = 0x2000};
  std::vector<uint8_t> out;
  EncodeDmaMapRequest(r, out);
  EXPECT_EQ(out, HexBytes(kGoldenDmaMap));
}

// Encode then decode gives back the same request.
TEST(DmaMapTest, RoundTrips) {
  DmaMapRequest r{.argsz = 32, .flags = kDmaMapFlagRead, .offset = 0, .addr = 1ull << 40,
                  .size = 1ull << 21};
  std::vector<uint8_t> out;
  EncodeDmaMapRequest(r, out);
  ASSERT_OK_AND_ASSIGN(DmaMapRequest back, DecodeDmaMapRequest(out, 0));
  EXPECT_EQ(back, r);
}

std::vector<uint8_t> Encoded(DmaMapRequest r) {
  std::vector<uint8_t> out;
  EncodeDmaMapRequest(r, out);
  return out;
}

const DmaMapRequest kValid{.argsz = 32, .flags = 3, .offset = 0, .addr = 0x1000, .size = 0x1000};

// Section 10 row 4: payload shorter than 32 bytes.
TEST(DmaMapTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = Encoded(kValid);
  bytes.pop_back();
  EXPECT_THAT(DecodeDmaMapRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDmaMapRequest({}, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: argsz below 32.
TEST(DmaMapTest, SmallArgszIsEinval) {
  DmaMapRequest r = kValid;
  r.argsz = 31;
  EXPECT_THAT(DecodeDmaMapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 24: unknown flag bits (bit 2 is the kernel's VADDR flag).
TEST(DmaMapTest, UnknownFlagIsEinval) {
  DmaMapRequest r = kValid;
  r.flags = 1u << 2;
  EXPECT_THAT(DecodeDmaMapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 25: zero size and wrap-around.
TEST(DmaMapTest, ZeroSizeAndWrapAreEinval) {
  DmaMapRequest zero = kValid;
  zero.size = 0;
  EXPECT_THAT(DecodeDmaMapRequest(Encoded(zero), 0), FailsWithErrno(EINVAL));
  DmaMapRequest wrap = kValid;
  wrap.addr = ~0ull - 0xfff;
  wrap.size = 0x2000;
  EXPECT_THAT(DecodeDmaMapRequest(Encoded(wrap), 0), FailsWithErrno(EINVAL));
}

// Section 2.5: DMA_MAP carries at most one fd.
TEST(DmaMapTest, TwoFdsAreEinval) {
  EXPECT_THAT(DecodeDmaMapRequest(Encoded(kValid), 2), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
