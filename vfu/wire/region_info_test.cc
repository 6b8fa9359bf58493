#include "vfu/wire/region_info.h"

#include <linux/vfio.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/wire/byte_io.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

// Golden request from PROTOCOL.md 4.4: argsz 32, index 7, the rest zero.
const char kGoldenRequest[] =
    "20000000 | 00000000 | 07000000 | 00000000 | 0000000000000000 | 0000000000000000";

// Golden complete reply, laid out by hand from 4.4's tables: region 2,
// READ|WRITE|MMAP|CAPS, size 0x4000, fd offset 0x20000; SPARSE_MMAP at 32
// (two areas, 48 bytes, next 80), TYPE at 80 (vendor 0x8086, subtype 5,
// next 96), MSIX_MAPPABLE at 96 (next 0). Full size 104.
const char kGoldenReply[] =
    "68000000 | 0f000000 | 02000000 | 20000000 | 0040000000000000 | 0000020000000000"
    "| 0100 0100 50000000 | 02000000 00000000"
    "| 0000000000000000 0010000000000000 | 0030000000000000 0010000000000000"
    "| 0200 0100 60000000 | 86800080 05000000"
    "| 0300 0100 00000000";

// The same reply for a request argsz below 104: fixed part only, argsz still
// 104, CAPS clear (flags 7) and cap_offset 0.
const char kGoldenTruncatedReply[] =
    "68000000 | 07000000 | 02000000 | 00000000 | 0040000000000000 | 0000020000000000";

RegionInfoReply GoldenReply() {
  return RegionInfoReply{
      .argsz = 0,  // computed by the encoder
      .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
               VFIO_REGION_INFO_FLAG_MMAP,
      .index = 2,
      .size = 0x4000,
      .offset = 0x20000,
      .sparse_mmap = std::vector<SparseMmapArea>{{.offset = 0, .size = 0x1000},
                                                 {.offset = 0x3000, .size = 0x1000}},
      .type = RegionType{.type = static_cast<uint32_t>(VFIO_REGION_TYPE_PCI_VENDOR_TYPE) | 0x8086u, .subtype = 5},
      .msix_mappable = true,
  };
}

// The golden request decodes to argsz and index.
TEST(RegionInfoTest, DecodesGoldenRequest) {
  ASSERT_OK_AND_ASSIGN(RegionInfoRequest r, DecodeRegionInfoRequest(HexBytes(kGoldenRequest), 0));
  EXPECT_EQ(r, (RegionInfoRequest{.argsz = 32, .index = 7}));
}

// The request encoder reproduces the golden bytes, zeroing unused fields.
TEST(RegionInfoTest, EncodesGoldenRequest) {
  std::vector<uint8_t> out;
  EncodeRegionInfoRequest({.argsz = 32, .index = 7}, out);
  EXPECT_EQ(out, HexBytes(kGoldenRequest));
}

// Section 10 row 4: a request payload shorter than 32 bytes.
TEST(RegionInfoTest, ShortRequestIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionInfoRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionInfoRequest({}, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: a request argsz below 32.
TEST(RegionInfoTest, SmallRequestArgszIsEinval) {
  std::vector<uint8_t> out;
  EncodeRegionInfoRequest({.argsz = 31, .index = 0}, out);
  EXPECT_THAT(DecodeRegionInfoRequest(out, 0), FailsWithErrno(EINVAL));
}

// The full size counts the fixed part and each capability.
TEST(RegionInfoTest, FullSizeCountsCapabilities) {
  EXPECT_EQ(RegionInfoReplyFullSize(GoldenReply()), 104u);
  EXPECT_EQ(RegionInfoReplyFullSize(RegionInfoReply{}), 32u);
  EXPECT_EQ(RegionInfoReplyFullSize(RegionInfoReply{.sparse_mmap = std::vector<SparseMmapArea>{}}),
            48u);
}

// A large enough argsz gets the golden chain, with argsz and CAPS computed.
TEST(RegionInfoTest, EncodesGoldenCompleteReply) {
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeRegionInfoReply(GoldenReply(), 104, out), RegionInfoReplyKind::kComplete);
  EXPECT_EQ(out, HexBytes(kGoldenReply));
}

// A client argsz above the full size gets exactly the full answer, no more.
TEST(RegionInfoTest, LargerArgszGetsFullSizeOnly) {
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeRegionInfoReply(GoldenReply(), 4096, out), RegionInfoReplyKind::kComplete);
  EXPECT_EQ(out, HexBytes(kGoldenReply));
}

// PROTOCOL.md 4.4 truncation: argsz one byte short (and the minimum 32) gets
// the fixed part with the full argsz, CAPS clear and cap_offset 0.
TEST(RegionInfoTest, ArgszTooSmallSendsFixedPartOnly) {
  for (uint32_t request_argsz : {32u, 103u}) {
    std::vector<uint8_t> out;
    EXPECT_EQ(EncodeRegionInfoReply(GoldenReply(), request_argsz, out),
              RegionInfoReplyKind::kFixedPartOnly);
    EXPECT_EQ(out, HexBytes(kGoldenTruncatedReply)) << "request argsz " << request_argsz;
  }
}

// The encoder clears a CAPS bit the caller left set when nothing follows.
TEST(RegionInfoTest, EncoderOwnsTheCapsFlag) {
  RegionInfoReply plain{.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS,
                        .index = 7,
                        .size = 256};
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeRegionInfoReply(plain, 32, out), RegionInfoReplyKind::kComplete);
  EXPECT_EQ(out, HexBytes("20000000 | 01000000 | 07000000 | 00000000 | 0001000000000000 |"
                          "0000000000000000"));
}

// The golden chain decodes into each capability.
TEST(RegionInfoTest, DecodesGoldenReply) {
  ASSERT_OK_AND_ASSIGN(RegionInfoReply r, DecodeRegionInfoReply(HexBytes(kGoldenReply), 1));
  RegionInfoReply expected = GoldenReply();
  expected.argsz = 104;
  expected.flags |= VFIO_REGION_INFO_FLAG_CAPS;
  EXPECT_EQ(r, expected);
}

// A truncated reply decodes to its fields and full argsz, without capabilities.
TEST(RegionInfoTest, DecodesTruncatedReply) {
  ASSERT_OK_AND_ASSIGN(RegionInfoReply r,
                       DecodeRegionInfoReply(HexBytes(kGoldenTruncatedReply), 0));
  EXPECT_EQ(r.argsz, 104u);
  EXPECT_EQ(r.flags, 7u);
  EXPECT_EQ(r.size, 0x4000u);
  EXPECT_FALSE(r.sparse_mmap.has_value());
  EXPECT_FALSE(r.type.has_value());
  EXPECT_FALSE(r.msix_mappable);
}

// Each single capability (and an empty sparse list) survives a round trip.
TEST(RegionInfoTest, RoundTripsEachCapability) {
  std::vector<RegionInfoReply> replies(4);
  replies[0].sparse_mmap = std::vector<SparseMmapArea>{};
  replies[1].sparse_mmap = std::vector<SparseMmapArea>{{.offset = 1, .size = 2}};
  replies[2].type = RegionType{.type = 3, .subtype = 4};
  replies[3].msix_mappable = true;
  for (RegionInfoReply reply : replies) {
    reply.index = 9;
    reply.size = 1ull << 40;
    std::vector<uint8_t> out;
    const uint64_t full = RegionInfoReplyFullSize(reply);
    ASSERT_EQ(EncodeRegionInfoReply(reply, static_cast<uint32_t>(full), out),
              RegionInfoReplyKind::kComplete);
    ASSERT_EQ(out.size(), full);
    ASSERT_OK_AND_ASSIGN(RegionInfoReply back, DecodeRegionInfoReply(out, 0));
    reply.argsz = static_cast<uint32_t>(full);
    reply.flags = VFIO_REGION_INFO_FLAG_CAPS;
    EXPECT_EQ(back, reply);
  }
}

// Helpers for hand-made chains: the 32-byte fixed part, then raw capability
// bytes appended with ByteWriter.
std::vector<uint8_t> FixedPart(uint32_t argsz, uint32_t cap_offset,
                               uint32_t flags = VFIO_REGION_INFO_FLAG_CAPS) {
  std::vector<uint8_t> out;
  ByteWriter(out).U32(argsz).U32(flags).U32(0).U32(cap_offset).U64(0x1000).U64(0);
  return out;
}

void AppendCapHeader(std::vector<uint8_t>& out, uint16_t id, uint32_t next) {
  ByteWriter(out).U16(id).U16(1).U32(next);
}

// Unknown capability ids are skipped and unaligned offsets are accepted.
TEST(RegionInfoTest, SkipsUnknownCapabilityAtUnalignedOffset) {
  std::vector<uint8_t> bytes = FixedPart(60, 36);
  ByteWriter(bytes).Zeros(4);
  AppendCapHeader(bytes, 0x99, 44);  // at 36
  AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_TYPE, 0);  // at 44
  ByteWriter(bytes).U32(0x11).U32(0x22);
  ASSERT_EQ(bytes.size(), 60u);
  ASSERT_OK_AND_ASSIGN(RegionInfoReply r, DecodeRegionInfoReply(bytes, 0));
  EXPECT_EQ(r.type, (RegionType{.type = 0x11, .subtype = 0x22}));
  EXPECT_FALSE(r.sparse_mmap.has_value());
}

// With CAPS clear, a stale cap_offset and trailing bytes are ignored.
TEST(RegionInfoTest, IgnoresChainWithoutCapsFlag) {
  std::vector<uint8_t> bytes = FixedPart(40, 32, /*flags=*/VFIO_REGION_INFO_FLAG_READ);
  AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  ASSERT_OK_AND_ASSIGN(RegionInfoReply r, DecodeRegionInfoReply(bytes, 0));
  EXPECT_FALSE(r.msix_mappable);
}

// Section 10 row 4 (client side): a reply shorter than 32 bytes.
TEST(RegionInfoTest, ShortReplyIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenTruncatedReply);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

// A reply argsz below 32 cannot describe even the fixed part.
TEST(RegionInfoTest, SmallReplyArgszIsEinval) {
  EXPECT_THAT(DecodeRegionInfoReply(FixedPart(31, 0, 0), 0), FailsWithErrno(EINVAL));
}

// PROTOCOL.md 2.5: a region info reply carries at most one fd.
TEST(RegionInfoTest, TwoFdsAreEinval) {
  EXPECT_THAT(DecodeRegionInfoReply(HexBytes(kGoldenReply), 2), FailsWithErrno(EINVAL));
}

// CAPS set with cap_offset 0, or a cap_offset inside the fixed part (QEMU
// rejects cap_offset < 32 too).
TEST(RegionInfoTest, CapOffsetBelow32IsEinval) {
  std::vector<uint8_t> zero = FixedPart(40, 0);
  AppendCapHeader(zero, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(zero, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> inside = FixedPart(40, 24);
  AppendCapHeader(inside, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(inside, 0), FailsWithErrno(EINVAL));
}

// A capability header past the payload, straddling its end, or past argsz.
TEST(RegionInfoTest, CapabilityOutOfRangeIsEinval) {
  std::vector<uint8_t> past = FixedPart(40, 0xfffffff8);
  AppendCapHeader(past, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(past, 0), FailsWithErrno(EINVAL));

  std::vector<uint8_t> straddle = FixedPart(40, 36);
  AppendCapHeader(straddle, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(straddle, 0), FailsWithErrno(EINVAL));

  std::vector<uint8_t> beyond_argsz = FixedPart(39, 32);
  AppendCapHeader(beyond_argsz, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(beyond_argsz, 0), FailsWithErrno(EINVAL));
  // The same bytes with argsz 40 are fine, so argsz alone caused the error.
  std::vector<uint8_t> ok = FixedPart(40, 32);
  AppendCapHeader(ok, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_OK(DecodeRegionInfoReply(ok, 0));
}

// A `next` that points to itself or backwards would loop: rejected.
TEST(RegionInfoTest, ChainLoopIsEinval) {
  std::vector<uint8_t> self = FixedPart(40, 32);
  AppendCapHeader(self, 0x77, 32);
  EXPECT_THAT(DecodeRegionInfoReply(self, 0), FailsWithErrno(EINVAL));

  std::vector<uint8_t> back = FixedPart(48, 32);
  AppendCapHeader(back, 0x77, 40);
  AppendCapHeader(back, 0x77, 32);
  EXPECT_THAT(DecodeRegionInfoReply(back, 0), FailsWithErrno(EINVAL));

  std::vector<uint8_t> low = FixedPart(40, 32);
  AppendCapHeader(low, 0x77, 8);
  EXPECT_THAT(DecodeRegionInfoReply(low, 0), FailsWithErrno(EINVAL));
}

// A `next` beyond the payload is caught when the walk gets there.
TEST(RegionInfoTest, NextOutOfRangeIsEinval) {
  std::vector<uint8_t> bytes = FixedPart(40, 32);
  AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 40);
  EXPECT_THAT(DecodeRegionInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

// nr_areas that does not fit the remaining bytes, including 0xffffffff
// (whose byte size overflows 32 bits).
TEST(RegionInfoTest, SparseAreasThatDoNotFitAreEinval) {
  for (uint32_t nr_areas : {2u, 0x10000000u, 0xffffffffu}) {
    std::vector<uint8_t> bytes = FixedPart(64, 32);
    AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 0);
    ByteWriter(bytes).U32(nr_areas).U32(0).U64(0).U64(0x1000);  // room for one area
    EXPECT_THAT(DecodeRegionInfoReply(bytes, 0), FailsWithErrno(EINVAL)) << nr_areas;
  }
  // One area fits exactly.
  std::vector<uint8_t> one = FixedPart(64, 32);
  AppendCapHeader(one, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 0);
  ByteWriter(one).U32(1).U32(0).U64(0).U64(0x1000);
  ASSERT_OK_AND_ASSIGN(RegionInfoReply r, DecodeRegionInfoReply(one, 0));
  EXPECT_EQ(r.sparse_mmap, (std::vector<SparseMmapArea>{{.offset = 0, .size = 0x1000}}));
}

// Known capabilities cut short by the end of the payload.
TEST(RegionInfoTest, TruncatedKnownCapabilityIsEinval) {
  std::vector<uint8_t> sparse = FixedPart(44, 32);
  AppendCapHeader(sparse, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 0);
  ByteWriter(sparse).U32(0);  // nr_areas without the reserved word
  EXPECT_THAT(DecodeRegionInfoReply(sparse, 0), FailsWithErrno(EINVAL));

  std::vector<uint8_t> type = FixedPart(44, 32);
  AppendCapHeader(type, VFIO_REGION_INFO_CAP_TYPE, 0);
  ByteWriter(type).U32(1);  // type without subtype
  EXPECT_THAT(DecodeRegionInfoReply(type, 0), FailsWithErrno(EINVAL));
}

// A known capability appearing twice is malformed.
TEST(RegionInfoTest, DuplicateCapabilityIsEinval) {
  std::vector<uint8_t> bytes = FixedPart(48, 32);
  AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 40);
  AppendCapHeader(bytes, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  EXPECT_THAT(DecodeRegionInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
