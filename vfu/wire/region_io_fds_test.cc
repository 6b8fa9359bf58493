#include "vfu/wire/region_io_fds.h"

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

// Golden request from PROTOCOL.md 4.5: argsz 4096, flags 0, index 2, count 0.
const char kGoldenRequest[] = "00100000 | 00000000 | 02000000 | 00000000";

// Golden complete reply in the 48-byte layout, from 4.5's table: argsz
// 16 + 2 x 48 = 112, index 2, count 2. Entry 0: ioeventfd at 0x100, 4 bytes,
// fd 0, DATAMATCH (1) on 0xabcd. Entry 1: shadow ioeventfd at 0x200, 4 bytes,
// fd 1, shadow memory fd 2 at offset 0x3000.
const char kGoldenReply48[] =
    "70000000 | 00000000 | 02000000 | 02000000"
    "| 0001000000000000 | 0400000000000000 | 00000000 | 00000000 | 01000000 | 00000000"
    "| 0000000000000000 | cdab000000000000"
    "| 0002000000000000 | 0400000000000000 | 01000000 | 02000000 | 00000000 | 02000000"
    "| 0030000000000000 | 0000000000000000";

// Golden complete reply in the spec's 40-byte layout: argsz 16 + 2 x 40 = 96.
// Entry 0: ioeventfd at 0x10, any width, fd 0. Entry 1: ioregionfd at 0x20,
// 8 bytes, fd 0, user_data 0x1122334455667788.
const char kGoldenReply40[] =
    "60000000 | 00000000 | 02000000 | 02000000"
    "| 1000000000000000 | 0000000000000000 | 00000000 | 00000000 | 00000000 | 00000000"
    "| 0000000000000000"
    "| 2000000000000000 | 0800000000000000 | 00000000 | 01000000 | 00000000 | 00000000"
    "| 8877665544332211";

// The header-only reply to a request argsz too small for the golden entries.
const char kGoldenHeaderOnly[] = "70000000 | 00000000 | 02000000 | 02000000";

std::vector<IoFdEntry> GoldenEntries() {
  return {
      IoFdEntry{.offset = 0x100, .size = 4, .fd_index = 0, .type = IoFdType::kIoeventfd,
                .flags = 1, .datamatch = 0xabcd},
      IoFdEntry{.offset = 0x200, .size = 4, .fd_index = 1, .type = IoFdType::kShadowIoeventfd,
                .shadow_mem_fd_index = 2, .shadow_offset = 0x3000},
  };
}

std::vector<uint8_t> EncodedRequest(RegionIoFdsRequest r) {
  std::vector<uint8_t> out;
  EncodeRegionIoFdsRequest(r, out);
  return out;
}

// The golden request decodes field by field.
TEST(RegionIoFdsTest, DecodesGoldenRequest) {
  ASSERT_OK_AND_ASSIGN(RegionIoFdsRequest r,
                       DecodeRegionIoFdsRequest(HexBytes(kGoldenRequest), 0));
  EXPECT_EQ(r, (RegionIoFdsRequest{.argsz = 4096, .flags = 0, .index = 2, .count = 0}));
}

// The request encoder reproduces the golden bytes.
TEST(RegionIoFdsTest, EncodesGoldenRequest) {
  EXPECT_EQ(EncodedRequest({.argsz = 4096, .index = 2}), HexBytes(kGoldenRequest));
}

// A request survives encode then decode, argsz at both ends of its range.
TEST(RegionIoFdsTest, RequestRoundTrips) {
  for (uint32_t argsz : {16u, kRegionIoFdsMaxArgsz}) {
    RegionIoFdsRequest r{.argsz = argsz, .index = 0x12345678};
    ASSERT_OK_AND_ASSIGN(RegionIoFdsRequest back, DecodeRegionIoFdsRequest(EncodedRequest(r), 0));
    EXPECT_EQ(back, r);
  }
}

// Section 10 row 4: a request payload shorter than 16 bytes.
TEST(RegionIoFdsTest, ShortRequestIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionIoFdsRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionIoFdsRequest({}, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: argsz below 16.
TEST(RegionIoFdsTest, SmallArgszIsEinval) {
  EXPECT_THAT(DecodeRegionIoFdsRequest(EncodedRequest({.argsz = 15}), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 6: argsz above 1 MiB.
TEST(RegionIoFdsTest, HugeArgszIsEinval) {
  EXPECT_THAT(DecodeRegionIoFdsRequest(EncodedRequest({.argsz = kRegionIoFdsMaxArgsz + 1}), 0),
              FailsWithErrno(EINVAL));
}

// Section 10 row 21: non-zero flags or count in the request.
TEST(RegionIoFdsTest, NonZeroFlagsOrCountIsEinval) {
  EXPECT_THAT(DecodeRegionIoFdsRequest(EncodedRequest({.argsz = 64, .flags = 1}), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionIoFdsRequest(EncodedRequest({.argsz = 64, .count = 1}), 0),
              FailsWithErrno(EINVAL));
}

// The full size is the header plus 48 bytes per entry.
TEST(RegionIoFdsTest, FullSizeUses48ByteEntries) {
  EXPECT_EQ(RegionIoFdsReplyFullSize(0), 16u);
  EXPECT_EQ(RegionIoFdsReplyFullSize(2), 112u);
}

// An argsz that holds every entry gets the golden 48-byte reply.
TEST(RegionIoFdsTest, EncodesGoldenReply) {
  for (uint32_t request_argsz : {112u, 4096u}) {
    std::vector<uint8_t> out;
    EXPECT_EQ(EncodeRegionIoFdsReply(2, GoldenEntries(), request_argsz, out),
              RegionIoFdsReplyKind::kComplete);
    EXPECT_EQ(out, HexBytes(kGoldenReply48)) << "request argsz " << request_argsz;
  }
}

// PROTOCOL.md 4.5 truncation: argsz one byte short (or the minimum 16) gets
// the header alone, with the full argsz and the total count.
TEST(RegionIoFdsTest, ArgszTooSmallSendsHeaderOnly) {
  for (uint32_t request_argsz : {16u, 111u}) {
    std::vector<uint8_t> out;
    EXPECT_EQ(EncodeRegionIoFdsReply(2, GoldenEntries(), request_argsz, out),
              RegionIoFdsReplyKind::kHeaderOnly);
    EXPECT_EQ(out, HexBytes(kGoldenHeaderOnly)) << "request argsz " << request_argsz;
  }
}

// A region without sub-regions: a 16-byte complete reply with count 0.
TEST(RegionIoFdsTest, EncodesEmptyReply) {
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeRegionIoFdsReply(5, {}, 16, out), RegionIoFdsReplyKind::kComplete);
  EXPECT_EQ(out, HexBytes("10000000 | 00000000 | 05000000 | 00000000"));
  ASSERT_OK_AND_ASSIGN(RegionIoFdsReply r, DecodeRegionIoFdsReply(out, 0));
  EXPECT_FALSE(r.header_only());
  EXPECT_TRUE(r.entries.empty());
}

// The golden 48-byte reply decodes into both entries.
TEST(RegionIoFdsTest, DecodesGoldenReply48) {
  ASSERT_OK_AND_ASSIGN(RegionIoFdsReply r, DecodeRegionIoFdsReply(HexBytes(kGoldenReply48), 3));
  EXPECT_EQ(r, (RegionIoFdsReply{.argsz = 112, .flags = 0, .index = 2, .count = 2,
                                 .entries = GoldenEntries()}));
  EXPECT_FALSE(r.header_only());
}

// The golden 40-byte reply decodes with its own stride and field offsets.
TEST(RegionIoFdsTest, DecodesGoldenReply40) {
  ASSERT_OK_AND_ASSIGN(RegionIoFdsReply r, DecodeRegionIoFdsReply(HexBytes(kGoldenReply40), 1));
  std::vector<IoFdEntry> expected = {
      IoFdEntry{.offset = 0x10, .size = 0, .fd_index = 0, .type = IoFdType::kIoeventfd},
      IoFdEntry{.offset = 0x20, .size = 8, .fd_index = 0, .type = IoFdType::kIoregionfd,
                .datamatch = 0x1122334455667788},
  };
  EXPECT_EQ(r.argsz, 96u);
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.entries, expected);
}

// A header-only reply decodes with no entries and says so.
TEST(RegionIoFdsTest, DecodesHeaderOnlyReply) {
  ASSERT_OK_AND_ASSIGN(RegionIoFdsReply r, DecodeRegionIoFdsReply(HexBytes(kGoldenHeaderOnly), 0));
  EXPECT_TRUE(r.header_only());
  EXPECT_EQ(r.argsz, 112u);
  EXPECT_EQ(r.count, 2u);
}

// Entries with every field distinct survive encode then decode.
TEST(RegionIoFdsTest, ReplyRoundTrips) {
  std::vector<IoFdEntry> entries = {
      IoFdEntry{.offset = 1, .size = 2, .fd_index = 3, .type = IoFdType::kIoregionfd,
                .flags = 4, .shadow_mem_fd_index = 0, .shadow_offset = 0, .datamatch = 5},
      IoFdEntry{.offset = 6, .size = 7, .fd_index = 1, .type = IoFdType::kShadowIoeventfd,
                .flags = 8, .shadow_mem_fd_index = 2, .shadow_offset = 9, .datamatch = 10},
      IoFdEntry{.offset = ~0ull, .size = 0, .fd_index = 0, .type = IoFdType::kIoeventfd},
  };
  std::vector<uint8_t> out;
  ASSERT_EQ(EncodeRegionIoFdsReply(7, entries, 4096, out), RegionIoFdsReplyKind::kComplete);
  ASSERT_OK_AND_ASSIGN(RegionIoFdsReply r, DecodeRegionIoFdsReply(out, 4));
  EXPECT_EQ(r, (RegionIoFdsReply{.argsz = 16 + 3 * 48, .flags = 0, .index = 7, .count = 3,
                                 .entries = entries}));
}

// Client side, section 10 row 4: a reply shorter than its 16-byte header.
TEST(RegionIoFdsTest, ShortReplyIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenHeaderOnly);
  bytes.pop_back();
  EXPECT_THAT(DecodeRegionIoFdsReply(bytes, 0), FailsWithErrno(EINVAL));
}

// A reply with argsz below 16 or non-zero flags is malformed.
TEST(RegionIoFdsTest, BadReplyHeaderIsEinval) {
  EXPECT_THAT(DecodeRegionIoFdsReply(HexBytes("0f000000 00000000 02000000 00000000"), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionIoFdsReply(HexBytes("10000000 01000000 02000000 00000000"), 0),
              FailsWithErrno(EINVAL));
}

// argsz and count must give a whole 40- or 48-byte stride: 44 bytes, a
// remainder, zero bytes, and a count so large the stride would be 0.
TEST(RegionIoFdsTest, BadStrideIsEinval) {
  for (const char* header : {"68000000 00000000 02000000 02000000",    // 16 + 2 x 44
                             "61000000 00000000 02000000 02000000",    // 16 + 81
                             "10000000 00000000 02000000 02000000",    // 16 + 0
                             "ffffffff 00000000 02000000 ffffffff"}) {  // stride 0
    EXPECT_THAT(DecodeRegionIoFdsReply(HexBytes(header), 8), FailsWithErrno(EINVAL)) << header;
  }
}

// A reply with some but not all of the bytes argsz announces.
TEST(RegionIoFdsTest, PartialEntriesAreEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenReply48);
  bytes.resize(bytes.size() - 48);
  EXPECT_THAT(DecodeRegionIoFdsReply(bytes, 3), FailsWithErrno(EINVAL));
}

// An unknown entry type, or a shadow entry in the 40-byte layout.
TEST(RegionIoFdsTest, BadEntryTypeIsEinval) {
  std::vector<uint8_t> unknown = HexBytes(kGoldenReply40);
  unknown[16 + 20] = 3;  // entry 0's type
  EXPECT_THAT(DecodeRegionIoFdsReply(unknown, 1), FailsWithErrno(EINVAL));
  std::vector<uint8_t> shadow40 = HexBytes(kGoldenReply40);
  shadow40[16 + 20] = 2;
  EXPECT_THAT(DecodeRegionIoFdsReply(shadow40, 1), FailsWithErrno(EINVAL));
}

// PROTOCOL.md 4.5: fd indexes must point into the reply's fds.
TEST(RegionIoFdsTest, FdIndexOutOfRangeIsEinval) {
  // Entry 1 uses fd 1 and shadow fd 2: three fds are needed.
  EXPECT_THAT(DecodeRegionIoFdsReply(HexBytes(kGoldenReply48), 2), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeRegionIoFdsReply(HexBytes(kGoldenReply40), 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> shadow_fd_only = HexBytes(kGoldenReply48);
  shadow_fd_only[16 + 48 + 28] = 1;  // entry 1's shadow fd now 1: two fds suffice
  EXPECT_OK(DecodeRegionIoFdsReply(shadow_fd_only, 2));
}

}  // namespace
}  // namespace vfu::wire
