#include "vfu/wire/region_access.h"

#include <cerrno>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

constexpr uint64_t kMax = kDefaultMaxDataXferSize;

// Golden bytes from PROTOCOL.md 4.8: a 4-byte config-space read (region 7,
// offset 0x10) and its reply with data 01 02 03 04; a 2-byte BAR0 write at
// 0x1004 of be ef and its reply.
const char kGoldenReadRequest[] = "1000000000000000 | 07000000 | 04000000";
const char kGoldenReadReply[] = "1000000000000000 | 07000000 | 04000000 | 01020304";
const char kGoldenWriteRequest[] = "0410000000000000 | 00000000 | 02000000 | beef";
const char kGoldenWriteReply[] = "0410000000000000 | 00000000 | 02000000";

// Golden REGION_WRITE_MULTI from 4.9: wr_cnt 2; a 4-byte write of 0x12345678
// at 0 of region 2, then a 1-byte write of 0xff at 8 of region 2 (unused data
// bytes zero). Reply: 2 writes completed.
const char kGoldenMulti[] =
    "0200000000000000"
    "| 0000000000000000 | 02000000 | 04000000 | 7856341200000000"
    "| 0800000000000000 | 02000000 | 01000000 | ff00000000000000";
const char kGoldenMultiReply[] = "0200000000000000";

std::vector<uint8_t> Bytes(std::initializer_list<uint8_t> bytes) { return bytes; }

// The golden READ request decodes field by field.
TEST(RegionReadTest, DecodesGoldenRequest) {
  ASSERT_OK_AND_ASSIGN(RegionAccess r, DecodeRegionReadRequest(HexBytes(kGoldenReadRequest), 0, kMax));
  EXPECT_EQ(r, (RegionAccess{.offset = 0x10, .region = 7, .count = 4}));
}

// The READ request encoder reproduces the golden bytes.
TEST(RegionReadTest, EncodesGoldenRequest) {
  std::vector<uint8_t> out;
  EncodeRegionReadRequest({.offset = 0x10, .region = 7, .count = 4}, out);
  EXPECT_EQ(out, HexBytes(kGoldenReadRequest));
}

// The READ reply echoes offset and region and sets count from the data.
TEST(RegionReadTest, EncodesGoldenReply) {
  std::vector<uint8_t> data = Bytes({1, 2, 3, 4});
  std::vector<uint8_t> out;
  EncodeRegionReadReply({.offset = 0x10, .region = 7, .count = 4}, data, out);
  EXPECT_EQ(out, HexBytes(kGoldenReadReply));
}

// The golden READ reply decodes, its data a view of the payload's tail.
TEST(RegionReadTest, DecodesGoldenReply) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenReadReply);
  ASSERT_OK_AND_ASSIGN(RegionAccessData r, DecodeRegionReadReply(bytes, 0));
  EXPECT_EQ(r.offset, 0x10u);
  EXPECT_EQ(r.region, 7u);
  EXPECT_EQ(r.data.data(), bytes.data() + 16);
  EXPECT_EQ(r.data, absl::MakeConstSpan(Bytes({1, 2, 3, 4})));
}

// Request and reply survive encode then decode.
TEST(RegionReadTest, RoundTrips) {
  RegionAccess request{.offset = ~0ull - 1, .region = 0xabcdef, .count = 3};
  std::vector<uint8_t> out;
  EncodeRegionReadRequest(request, out);
  ASSERT_OK_AND_ASSIGN(RegionAccess back, DecodeRegionReadRequest(out, 0, kMax));
  EXPECT_EQ(back, request);

  std::vector<uint8_t> data = Bytes({9, 8, 7});
  std::vector<uint8_t> reply;
  EncodeRegionReadReply(request, data, reply);
  ASSERT_OK_AND_ASSIGN(RegionAccessData reply_back, DecodeRegionReadReply(reply, 0));
  EXPECT_EQ(reply_back, (RegionAccessData{.offset = request.offset, .region = request.region,
                                          .data = data}));
}

// Section 10 row 4 and 4.8: a READ request payload other than 16 bytes.
TEST(RegionReadTest, WrongRequestSizeIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenReadRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionReadRequest(bytes, 0, kMax), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionReadRequest({}, 0, kMax), FailsWithErrno(EINVAL));
  std::vector<uint8_t> longer = HexBytes(kGoldenReadRequest);
  longer.push_back(0);
  EXPECT_THAT(DecodeRegionReadRequest(longer, 0, kMax), FailsWithErrno(EINVAL));
}

// Section 10 row 18: count above the server's max_data_xfer_size.
TEST(RegionReadTest, CountAboveMaxIsEinval) {
  EXPECT_THAT(DecodeRegionReadRequest(HexBytes(kGoldenReadRequest), 0, 3), FailsWithErrno(EINVAL));
  EXPECT_OK(DecodeRegionReadRequest(HexBytes(kGoldenReadRequest), 0, 4));
}

// A zero-byte read is valid (lvu answers it with success).
TEST(RegionReadTest, ZeroCountIsOk) {
  EXPECT_OK(DecodeRegionReadRequest(HexBytes("0000000000000000 | 07000000 | 00000000"), 0, kMax));
}

// A READ reply whose data does not match its count is malformed.
TEST(RegionReadTest, ReplySizeMismatchIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenReadReply);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionReadReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes.push_back(4);
  bytes.push_back(5);
  EXPECT_THAT(DecodeRegionReadReply(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionReadReply(HexBytes("1000000000000000 | 07000000"), 0),
              FailsWithErrno(EINVAL));
}

// The golden WRITE request decodes, data viewed in place.
TEST(RegionWriteTest, DecodesGoldenRequest) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenWriteRequest);
  ASSERT_OK_AND_ASSIGN(RegionAccessData r, DecodeRegionWriteRequest(bytes, 0, kMax));
  EXPECT_EQ(r.offset, 0x1004u);
  EXPECT_EQ(r.region, 0u);
  EXPECT_EQ(r.data.data(), bytes.data() + 16);
  EXPECT_EQ(r.data, absl::MakeConstSpan(Bytes({0xbe, 0xef})));
}

// The WRITE request encoder reproduces the golden bytes.
TEST(RegionWriteTest, EncodesGoldenRequest) {
  std::vector<uint8_t> data = Bytes({0xbe, 0xef});
  std::vector<uint8_t> out;
  EncodeRegionWriteRequest({.offset = 0x1004, .region = 0, .data = data}, out);
  EXPECT_EQ(out, HexBytes(kGoldenWriteRequest));
}

// The WRITE reply is the 16-byte echo, both ways.
TEST(RegionWriteTest, GoldenReplyBothWays) {
  std::vector<uint8_t> out;
  EncodeRegionWriteReply({.offset = 0x1004, .region = 0, .count = 2}, out);
  EXPECT_EQ(out, HexBytes(kGoldenWriteReply));
  ASSERT_OK_AND_ASSIGN(RegionAccess r, DecodeRegionWriteReply(HexBytes(kGoldenWriteReply), 0));
  EXPECT_EQ(r, (RegionAccess{.offset = 0x1004, .region = 0, .count = 2}));
}

// A WRITE request survives encode then decode.
TEST(RegionWriteTest, RoundTrips) {
  std::vector<uint8_t> data(300, 0x5a);
  RegionAccessData request{.offset = 1ull << 33, .region = 9, .data = data};
  std::vector<uint8_t> out;
  EncodeRegionWriteRequest(request, out);
  ASSERT_OK_AND_ASSIGN(RegionAccessData back, DecodeRegionWriteRequest(out, 0, kMax));
  EXPECT_EQ(back, request);
}

// Section 10 row 4: a WRITE payload shorter than 16 bytes.
TEST(RegionWriteTest, ShortPayloadIsEinval) {
  EXPECT_THAT(DecodeRegionWriteRequest(HexBytes("0410000000000000 | 00000000 | 000000"), 0, kMax),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionWriteRequest({}, 0, kMax), FailsWithErrno(EINVAL));
}

// Section 10 row 17: WRITE payload != 16 + count, including a count of
// 0xffffffff that a 32-bit sum would wrap.
TEST(RegionWriteTest, PayloadCountMismatchIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenWriteRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionWriteRequest(bytes, 0, kMax), FailsWithErrno(EINVAL));
  bytes.push_back(0xef);
  bytes.push_back(0);
  EXPECT_THAT(DecodeRegionWriteRequest(bytes, 0, kMax), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionWriteRequest(HexBytes("0000000000000000 | 00000000 | ffffffff | 00"), 0,
                                       ~0ull),
              FailsWithErrno(EINVAL));
}

// Section 10 row 18: WRITE count above max_data_xfer_size.
TEST(RegionWriteTest, CountAboveMaxIsEinval) {
  EXPECT_THAT(DecodeRegionWriteRequest(HexBytes(kGoldenWriteRequest), 0, 1),
              FailsWithErrno(EINVAL));
  EXPECT_OK(DecodeRegionWriteRequest(HexBytes(kGoldenWriteRequest), 0, 2));
}

// A WRITE reply other than 16 bytes is malformed.
TEST(RegionWriteTest, WrongReplySizeIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenWriteReply);
  bytes.push_back(0);
  EXPECT_THAT(DecodeRegionWriteReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes.resize(15);
  EXPECT_THAT(DecodeRegionWriteReply(bytes, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 17: offset + count within the region, saturating.
TEST(CheckRegionAccessTest, RangeChecks) {
  EXPECT_OK(CheckRegionAccess(0, 4, 256));
  EXPECT_OK(CheckRegionAccess(252, 4, 256));
  EXPECT_OK(CheckRegionAccess(256, 0, 256));
  EXPECT_THAT(CheckRegionAccess(253, 4, 256), FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckRegionAccess(257, 0, 256), FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckRegionAccess(0, 1, 0), FailsWithErrno(EINVAL));
  // offset + count wraps to 2: must not pass as "inside".
  EXPECT_THAT(CheckRegionAccess(~0ull, 3, 4096), FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckRegionAccess(~0ull - 1, 4, ~0ull), FailsWithErrno(EINVAL));
  EXPECT_OK(CheckRegionAccess(~0ull - 4, 4, ~0ull));
}

std::vector<RegionWriteMultiEntry> GoldenMultiEntries(const std::vector<uint8_t>& word,
                                                      const std::vector<uint8_t>& byte) {
  return {RegionWriteMultiEntry{.offset = 0, .region = 2, .data = word},
          RegionWriteMultiEntry{.offset = 8, .region = 2, .data = byte}};
}

// The golden WRITE_MULTI decodes into both entries with views of their data.
TEST(RegionWriteMultiTest, DecodesGoldenRequest) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenMulti);
  ASSERT_OK_AND_ASSIGN(std::vector<RegionWriteMultiEntry> entries,
                       DecodeRegionWriteMultiRequest(bytes, 0));
  std::vector<uint8_t> word = Bytes({0x78, 0x56, 0x34, 0x12});
  std::vector<uint8_t> byte = Bytes({0xff});
  EXPECT_EQ(entries, GoldenMultiEntries(word, byte));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].data.data(), bytes.data() + 8 + 24 + 16);
}

// The encoder reproduces the golden bytes, zero-padding the data.
TEST(RegionWriteMultiTest, EncodesGoldenRequest) {
  std::vector<uint8_t> word = Bytes({0x78, 0x56, 0x34, 0x12});
  std::vector<uint8_t> byte = Bytes({0xff});
  std::vector<uint8_t> out;
  EncodeRegionWriteMultiRequest(GoldenMultiEntries(word, byte), out);
  EXPECT_EQ(out, HexBytes(kGoldenMulti));
}

// The reply carries the number of writes completed, both ways.
TEST(RegionWriteMultiTest, GoldenReplyBothWays) {
  std::vector<uint8_t> out;
  EncodeRegionWriteMultiReply(2, out);
  EXPECT_EQ(out, HexBytes(kGoldenMultiReply));
  ASSERT_OK_AND_ASSIGN(uint64_t done, DecodeRegionWriteMultiReply(HexBytes(kGoldenMultiReply), 0));
  EXPECT_EQ(done, 2u);
}

// 200 entries (QEMU's largest batch) of every size 1..8 survive a round trip.
TEST(RegionWriteMultiTest, RoundTrips) {
  std::vector<uint8_t> data = Bytes({1, 2, 3, 4, 5, 6, 7, 8});
  std::vector<RegionWriteMultiEntry> entries;
  for (uint32_t i = 0; i < 200; ++i) {
    entries.push_back({.offset = i * 8ull, .region = i % 9,
                       .data = absl::MakeConstSpan(data).subspan(0, 1 + i % 8)});
  }
  std::vector<uint8_t> out;
  EncodeRegionWriteMultiRequest(entries, out);
  EXPECT_EQ(out.size(), 8u + 24u * 200u);
  ASSERT_OK_AND_ASSIGN(std::vector<RegionWriteMultiEntry> back,
                       DecodeRegionWriteMultiRequest(out, 0));
  EXPECT_EQ(back, entries);
}

// An empty batch decodes to no entries.
TEST(RegionWriteMultiTest, EmptyBatchIsOk) {
  ASSERT_OK_AND_ASSIGN(std::vector<RegionWriteMultiEntry> entries,
                       DecodeRegionWriteMultiRequest(HexBytes("0000000000000000"), 0));
  EXPECT_TRUE(entries.empty());
}

// Section 10 row 4: a payload without the 8-byte wr_cnt.
TEST(RegionWriteMultiTest, ShortPayloadIsEinval) {
  EXPECT_THAT(DecodeRegionWriteMultiRequest(HexBytes("00000000000000"), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionWriteMultiRequest({}, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 35: size mismatch: wr_cnt too large or small, a partial
// entry, and a wr_cnt whose 24 * wr_cnt wraps 64 bits to match the payload.
TEST(RegionWriteMultiTest, SizeMismatchIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenMulti);
  bytes[0] = 3;
  EXPECT_THAT(DecodeRegionWriteMultiRequest(bytes, 0), FailsWithErrno(EINVAL));
  bytes[0] = 1;
  EXPECT_THAT(DecodeRegionWriteMultiRequest(bytes, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> partial = HexBytes(kGoldenMulti);
  partial.pop_back();
  partial[0] = 2;
  EXPECT_THAT(DecodeRegionWriteMultiRequest(partial, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> wrapping = HexBytes(kGoldenMulti);
  wrapping[7] = 0x20;  // wr_cnt = 2^61 + 2: 8 + 24 * wr_cnt == 56 mod 2^64
  EXPECT_THAT(DecodeRegionWriteMultiRequest(wrapping, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 35: an entry count of 0 or above 8.
TEST(RegionWriteMultiTest, EntryCountOutOfRangeIsEinval) {
  for (uint8_t count : {0, 9, 0xff}) {
    std::vector<uint8_t> bytes = HexBytes(kGoldenMulti);
    bytes[8 + 24 + 12] = count;  // entry 1's count
    EXPECT_THAT(DecodeRegionWriteMultiRequest(bytes, 0), FailsWithErrno(EINVAL)) << int{count};
  }
  std::vector<uint8_t> eight = HexBytes(kGoldenMulti);
  eight[8 + 24 + 12] = 8;
  EXPECT_OK(DecodeRegionWriteMultiRequest(eight, 0));
}

// A WRITE_MULTI reply other than 8 bytes is malformed.
TEST(RegionWriteMultiTest, WrongReplySizeIsEinval) {
  EXPECT_THAT(DecodeRegionWriteMultiReply(HexBytes("02000000000000"), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionWriteMultiReply(HexBytes("020000000000000000"), 0),
              FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
