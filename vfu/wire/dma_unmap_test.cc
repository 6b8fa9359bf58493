#include "vfu/wire/dma_unmap.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

// Golden bytes written from PROTOCOL.md 4.2's offsets, not from our encoder.
// Plain unmap: argsz 24, flags 0, addr 0x100000, size 0x2000.
const char kGoldenUnmap[] = "18000000 | 00000000 | 0000100000000000 | 0020000000000000";
// UNMAP_ALL: argsz 24, flags ALL (2), addr 0, size 0.
const char kGoldenUnmapAll[] = "18000000 | 02000000 | 0000000000000000 | 0000000000000000";
// Legacy bitmap unmap: argsz 48 (40 + 8), flags GET_DIRTY_BITMAP, addr
// 0x100000, size 0x10000 (16 pages of 4 KiB -> one u64 word), pgsize 0x1000,
// bitmap.size 8.
const char kGoldenUnmapBitmap[] =
    "30000000 | 01000000 | 0000100000000000 | 0000010000000000 | "
    "0010000000000000 | 0800000000000000";
// Its reply: the 24 bytes echoed, {pgsize, size}, then the bitmap with pages
// 0, 2 and 63 dirty (word 0x8000000000000005, little-endian).
const char kGoldenUnmapBitmapReply[] =
    "30000000 | 01000000 | 0000100000000000 | 0000010000000000 | "
    "0010000000000000 | 0800000000000000 | 0500000000000080";

const DmaUnmapRequest kValid{
    .argsz = 24, .flags = 0, .addr = 0x100000, .size = 0x2000, .bitmap = std::nullopt};
const DmaUnmapRequest kValidBitmap{.argsz = 48,
                                   .flags = kDmaUnmapFlagGetDirtyBitmap,
                                   .addr = 0x100000,
                                   .size = 0x10000,
                                   .bitmap = DmaUnmapBitmap{.pgsize = 0x1000, .size = 8}};

std::vector<uint8_t> Encoded(const DmaUnmapRequest& r) {
  std::vector<uint8_t> out;
  EncodeDmaUnmapRequest(r, out);
  return out;
}

std::vector<uint8_t> Encoded(const DmaUnmapReply& r) {
  std::vector<uint8_t> out;
  EncodeDmaUnmapReply(r, out);
  return out;
}

// The plain golden vector decodes into the fields at their documented offsets.
TEST(DmaUnmapTest, DecodesGoldenPlainRequest) {
  ASSERT_OK_AND_ASSIGN(DmaUnmapRequest r, DecodeDmaUnmapRequest(HexBytes(kGoldenUnmap), 0));
  EXPECT_EQ(r.argsz, 24u);
  EXPECT_EQ(r.flags, 0u);
  EXPECT_EQ(r.addr, 0x100000u);
  EXPECT_EQ(r.size, 0x2000u);
  EXPECT_FALSE(r.bitmap.has_value());
}

// UNMAP_ALL with addr = size = 0 is what QEMU sends; it must decode.
TEST(DmaUnmapTest, DecodesGoldenUnmapAll) {
  ASSERT_OK_AND_ASSIGN(DmaUnmapRequest r, DecodeDmaUnmapRequest(HexBytes(kGoldenUnmapAll), 0));
  EXPECT_EQ(r.flags, kDmaUnmapFlagAll);
  EXPECT_EQ(r.addr, 0u);
  EXPECT_EQ(r.size, 0u);
}

// The bitmap golden vector yields the legacy {pgsize, size} at offsets 24/32.
TEST(DmaUnmapTest, DecodesGoldenBitmapRequest) {
  ASSERT_OK_AND_ASSIGN(DmaUnmapRequest r,
                       DecodeDmaUnmapRequest(HexBytes(kGoldenUnmapBitmap), 0));
  EXPECT_EQ(r.argsz, 48u);
  EXPECT_EQ(r.flags, kDmaUnmapFlagGetDirtyBitmap);
  EXPECT_EQ(r.addr, 0x100000u);
  EXPECT_EQ(r.size, 0x10000u);
  ASSERT_TRUE(r.bitmap.has_value());
  EXPECT_EQ(r.bitmap->pgsize, 0x1000u);
  EXPECT_EQ(r.bitmap->size, 8u);
}

// Encoding reproduces all three golden requests byte for byte.
TEST(DmaUnmapTest, EncodesGoldenRequests) {
  EXPECT_EQ(Encoded(kValid), HexBytes(kGoldenUnmap));
  EXPECT_EQ(Encoded(DmaUnmapRequest{.argsz = 24,
                                    .flags = kDmaUnmapFlagAll,
                                    .addr = 0,
                                    .size = 0,
                                    .bitmap = std::nullopt}),
            HexBytes(kGoldenUnmapAll));
  EXPECT_EQ(Encoded(kValidBitmap), HexBytes(kGoldenUnmapBitmap));
}

// Encode then decode gives back the same request, with and without bitmap.
TEST(DmaUnmapTest, RequestRoundTrips) {
  DmaUnmapRequest plain{
      .argsz = 4096, .flags = 0, .addr = 1ull << 40, .size = 1ull << 21, .bitmap = {}};
  ASSERT_OK_AND_ASSIGN(DmaUnmapRequest back, DecodeDmaUnmapRequest(Encoded(plain), 0));
  EXPECT_EQ(back, plain);
  DmaUnmapRequest bitmap{.argsz = 40 + 16,
                         .flags = kDmaUnmapFlagGetDirtyBitmap,
                         .addr = 0,
                         .size = 65 * 4096,
                         .bitmap = DmaUnmapBitmap{.pgsize = 4096, .size = 16}};
  ASSERT_OK_AND_ASSIGN(back, DecodeDmaUnmapRequest(Encoded(bitmap), 0));
  EXPECT_EQ(back, bitmap);
}

// The plain reply is the 24-byte echo, identical to the request bytes.
TEST(DmaUnmapTest, PlainReplyIsTheGoldenEcho) {
  DmaUnmapReply reply = DmaUnmapReplyFor(kValid);
  EXPECT_EQ(Encoded(reply), HexBytes(kGoldenUnmap));
  ASSERT_OK_AND_ASSIGN(DmaUnmapReply back, DecodeDmaUnmapReply(HexBytes(kGoldenUnmap), 0));
  EXPECT_EQ(back, reply);
  EXPECT_FALSE(back.bitmap_pgsize.has_value());
}

// The bitmap reply matches its golden vector both ways; the decoded bitmap is
// a view of the payload's last 8 bytes.
TEST(DmaUnmapTest, BitmapReplyMatchesGoldenBothWays) {
  const std::vector<uint8_t> bitmap = HexBytes("0500000000000080");
  DmaUnmapReply reply = DmaUnmapReplyFor(kValidBitmap, bitmap);
  EXPECT_EQ(Encoded(reply), HexBytes(kGoldenUnmapBitmapReply));

  const std::vector<uint8_t> golden = HexBytes(kGoldenUnmapBitmapReply);
  ASSERT_OK_AND_ASSIGN(DmaUnmapReply back, DecodeDmaUnmapReply(golden, 0));
  EXPECT_EQ(back.argsz, 48u);
  EXPECT_EQ(back.flags, kDmaUnmapFlagGetDirtyBitmap);
  EXPECT_EQ(back.addr, 0x100000u);
  EXPECT_EQ(back.size, 0x10000u);
  EXPECT_EQ(back.bitmap_pgsize, 0x1000u);
  EXPECT_EQ(back.dirty_bitmap.data(), golden.data() + 40);
  EXPECT_EQ(std::vector<uint8_t>(back.dirty_bitmap.begin(), back.dirty_bitmap.end()), bitmap);
  EXPECT_EQ(back, reply);
}

// Section 10 row 4: payload shorter than 24, or than 40 with the bitmap flag.
TEST(DmaUnmapTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = Encoded(kValid);
  bytes.pop_back();
  EXPECT_THAT(DecodeDmaUnmapRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDmaUnmapRequest({}, 0), FailsWithErrno(EINVAL));
  // GET_DIRTY_BITMAP set but only the 24-byte part sent.
  DmaUnmapRequest no_header = kValidBitmap;
  no_header.bitmap.reset();
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(no_header), 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> one_short = Encoded(kValidBitmap);
  one_short.pop_back();
  EXPECT_THAT(DecodeDmaUnmapRequest(one_short, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: argsz below 24, or below 40 + bitmap.size with the bitmap.
TEST(DmaUnmapTest, SmallArgszIsEinval) {
  DmaUnmapRequest r = kValid;
  r.argsz = 23;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
  DmaUnmapRequest b = kValidBitmap;
  b.argsz = 47;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(b), 0), FailsWithErrno(EINVAL));
  b.argsz = 39;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(b), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 6: argsz above 1 MiB is EINVAL; exactly 1 MiB is fine.
TEST(DmaUnmapTest, HugeArgszIsEinval) {
  DmaUnmapRequest r = kValid;
  r.argsz = kDmaUnmapMaxArgsz;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), ::vfu::testing::IsOk());
  r.argsz = kDmaUnmapMaxArgsz + 1;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
  r.argsz = std::numeric_limits<uint32_t>::max();
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 28: unknown flag bits are EINVAL.
TEST(DmaUnmapTest, UnknownFlagIsEinval) {
  DmaUnmapRequest r = kValid;
  r.flags = 1u << 2;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
  r.flags = 1u << 31;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 28: ALL together with GET_DIRTY_BITMAP is EINVAL.
TEST(DmaUnmapTest, AllWithBitmapIsEinval) {
  DmaUnmapRequest r{.argsz = 40,
                    .flags = kDmaUnmapFlagAll | kDmaUnmapFlagGetDirtyBitmap,
                    .addr = 0,
                    .size = 0,
                    .bitmap = DmaUnmapBitmap{.pgsize = 4096, .size = 0}};
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 28: ALL with a non-zero addr or size is EINVAL.
TEST(DmaUnmapTest, AllWithRangeIsEinval) {
  DmaUnmapRequest addr = kValid;
  addr.flags = kDmaUnmapFlagAll;
  addr.addr = 0x1000;
  addr.size = 0;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(addr), 0), FailsWithErrno(EINVAL));
  DmaUnmapRequest size = kValid;
  size.flags = kDmaUnmapFlagAll;
  size.addr = 0;
  size.size = 0x1000;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(size), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 29: bitmap page size 0 or not a power of two is EINVAL.
TEST(DmaUnmapTest, BadBitmapPageSizeIsEinval) {
  DmaUnmapRequest r = kValidBitmap;
  r.bitmap->pgsize = 0;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
  r.bitmap->pgsize = 0x1800;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 29: a bitmap.size other than the section 7 rule is EINVAL,
// even when argsz has room for it.
TEST(DmaUnmapTest, WrongBitmapSizeIsEinval) {
  DmaUnmapRequest r = kValidBitmap;
  r.argsz = 40 + 16;
  r.bitmap->size = 16;  // 16 pages need 8 bytes
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
  r.bitmap->size = 0;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// A bitmap.size near 2^64 cannot wrap the argsz check into passing.
TEST(DmaUnmapTest, HugeBitmapSizeDoesNotWrap) {
  DmaUnmapRequest r = kValidBitmap;
  r.argsz = kDmaUnmapMaxArgsz;
  r.bitmap->size = std::numeric_limits<uint64_t>::max() - 20;
  EXPECT_THAT(DecodeDmaUnmapRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 16: fds on DMA_UNMAP are not the decoder's concern.
TEST(DmaUnmapTest, FdsAreIgnored) {
  ASSERT_OK_AND_ASSIGN(DmaUnmapRequest r, DecodeDmaUnmapRequest(Encoded(kValid), 3));
  EXPECT_EQ(r, kValid);
}

// A plain reply longer than 24 bytes is rejected: QEMU has no room for more.
TEST(DmaUnmapTest, PlainReplyWithTrailingBytesIsEinval) {
  std::vector<uint8_t> bytes = Encoded(DmaUnmapReplyFor(kValid));
  bytes.push_back(0);
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes.resize(23);
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
}

// A bitmap reply whose bitmap.size disagrees with the bytes that follow, or
// that lacks the bitmap header, is rejected.
TEST(DmaUnmapTest, BitmapReplySizeMismatchIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenUnmapBitmapReply);
  bytes.pop_back();
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGoldenUnmapBitmapReply);
  bytes.push_back(0);
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGoldenUnmapBitmap);  // header says 8 bytes, none follow
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes.resize(32);
  EXPECT_THAT(DecodeDmaUnmapReply(bytes, 0), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
