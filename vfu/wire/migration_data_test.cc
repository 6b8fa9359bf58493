#include "vfu/wire/migration_data.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;
using ::vfu::testing::IsOk;

constexpr uint64_t kMaxXfer = 1 << 20;
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// Golden bytes written from PROTOCOL.md 4.13's offsets, not from our encoder.
// READ request: argsz 0x1008 (8 + 4096), size 0x1000.
const char kGoldenReadRequest[] = "08100000 | 00100000";
// READ reply with 3 bytes: argsz 11, size 3, data aa bb cc.
const char kGoldenReadReply[] = "0b000000 | 03000000 | aabbcc";
// WRITE request with 3 bytes: argsz 11, size 3, data aa bb cc.
const char kGoldenWriteRequest[] = "0b000000 | 03000000 | aabbcc";

const std::vector<uint8_t> kData = {0xaa, 0xbb, 0xcc};

std::vector<uint8_t> Bytes(absl::Span<const uint8_t> span) {
  return std::vector<uint8_t>(span.begin(), span.end());
}

std::vector<uint8_t> Encoded(const MigDataReadRequest& r) {
  std::vector<uint8_t> out;
  EncodeMigDataReadRequest(r, out);
  return out;
}

std::vector<uint8_t> Encoded(const MigDataWriteRequest& r) {
  std::vector<uint8_t> out;
  EncodeMigDataWriteRequest(r, out);
  return out;
}

// The READ request golden vector decodes and re-encodes byte for byte.
TEST(MigrationDataTest, ReadRequestMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(MigDataReadRequest r,
                       DecodeMigDataReadRequest(HexBytes(kGoldenReadRequest), 0, kMaxXfer));
  EXPECT_EQ(r.argsz, 0x1008u);
  EXPECT_EQ(r.size, 0x1000u);
  EXPECT_EQ(Encoded(MigDataReadRequest{.argsz = 0x1008, .size = 0x1000}),
            HexBytes(kGoldenReadRequest));
}

// The READ reply golden vector decodes (data as a view at offset 8) and the
// encoder derives argsz = 8 + n and size = n from the data alone.
TEST(MigrationDataTest, ReadReplyMatchesGoldenBothWays) {
  const std::vector<uint8_t> golden = HexBytes(kGoldenReadReply);
  ASSERT_OK_AND_ASSIGN(MigDataReadReply r, DecodeMigDataReadReply(golden, 0, 4096));
  EXPECT_EQ(Bytes(r.data), kData);
  EXPECT_EQ(r.data.data(), golden.data() + 8);
  std::vector<uint8_t> out;
  EncodeMigDataReadReply(MigDataReadReply{.data = kData}, out);
  EXPECT_EQ(out, golden);
}

// The WRITE request golden vector decodes and re-encodes byte for byte.
TEST(MigrationDataTest, WriteRequestMatchesGoldenBothWays) {
  const std::vector<uint8_t> golden = HexBytes(kGoldenWriteRequest);
  ASSERT_OK_AND_ASSIGN(MigDataWriteRequest r, DecodeMigDataWriteRequest(golden, 0, kMaxXfer));
  EXPECT_EQ(r.argsz, 11u);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(Bytes(r.data), kData);
  EXPECT_EQ(r.data.data(), golden.data() + 8);
  EXPECT_EQ(Encoded(MigDataWriteRequest{.argsz = 11, .data = kData}), golden);
}

// Encode then decode gives back the same messages, including empty data
// (the end of the stream).
TEST(MigrationDataTest, RoundTrips) {
  MigDataReadRequest read{.argsz = 8 + 65536, .size = 65536};
  ASSERT_OK_AND_ASSIGN(MigDataReadRequest read_back,
                       DecodeMigDataReadRequest(Encoded(read), 0, kMaxXfer));
  EXPECT_EQ(read_back, read);

  std::vector<uint8_t> data(1000, 0x5a);
  for (absl::Span<const uint8_t> chunk : {absl::Span<const uint8_t>(data),
                                          absl::Span<const uint8_t>()}) {
    std::vector<uint8_t> out;
    EncodeMigDataReadReply(MigDataReadReply{.data = chunk}, out);
    ASSERT_OK_AND_ASSIGN(MigDataReadReply reply_back, DecodeMigDataReadReply(out, 0, 1000));
    EXPECT_EQ(reply_back, MigDataReadReply{.data = chunk});

    MigDataWriteRequest write{.argsz = 4096, .data = chunk};
    out = Encoded(write);
    ASSERT_OK_AND_ASSIGN(MigDataWriteRequest write_back,
                         DecodeMigDataWriteRequest(out, 0, kMaxXfer));
    EXPECT_EQ(write_back, write);
  }
}

// Section 10 row 4: a payload shorter than 8 bytes is EINVAL.
TEST(MigrationDataTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> seven(7);
  EXPECT_THAT(DecodeMigDataReadRequest(seven, 0, kMaxXfer), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeMigDataWriteRequest(seven, 0, kMaxXfer), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeMigDataReadReply(seven, 0, kMaxXfer), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeMigDataReadRequest({}, 0, kMaxXfer), FailsWithErrno(EINVAL));
}

// Section 10 row 5: READ argsz below 8 + size is EINVAL; exactly 8 + size is
// fine.
TEST(MigrationDataTest, ReadArgszBelowSizeIsEinval) {
  EXPECT_THAT(DecodeMigDataReadRequest(Encoded(MigDataReadRequest{.argsz = 0x1008,
                                                                  .size = 0x1000}),
                                       0, kMaxXfer),
              IsOk());
  EXPECT_THAT(DecodeMigDataReadRequest(Encoded(MigDataReadRequest{.argsz = 0x1007,
                                                                  .size = 0x1000}),
                                       0, kMaxXfer),
              FailsWithErrno(EINVAL));
}

// Section 10 row 5: 8 + size is computed in 64 bits, so size 0xfffffffc
// cannot wrap to 4 and pass a small argsz.
TEST(MigrationDataTest, ArgszCheckDoesNotWrap) {
  const std::vector<uint8_t> read = HexBytes("04000000 | fcffffff");
  EXPECT_THAT(DecodeMigDataReadRequest(read, 0, kNoLimit), FailsWithErrno(EINVAL));
  const std::vector<uint8_t> max_argsz = HexBytes("ffffffff | ffffffff");
  EXPECT_THAT(DecodeMigDataReadRequest(max_argsz, 0, kNoLimit), FailsWithErrno(EINVAL));
}

// Section 10 row 5 (lvu applies it to WRITE too): argsz below 8 + size.
TEST(MigrationDataTest, WriteArgszBelowSizeIsEinval) {
  EXPECT_THAT(DecodeMigDataWriteRequest(Encoded(MigDataWriteRequest{.argsz = 10, .data = kData}),
                                        0, kMaxXfer),
              FailsWithErrno(EINVAL));
}

// Section 10 row 33: size above the client's max_data_xfer_size is EINVAL,
// for READ and WRITE; at the limit it is fine.
TEST(MigrationDataTest, SizeAboveLimitIsEinval) {
  const std::vector<uint8_t> read = HexBytes(kGoldenReadRequest);  // size 4096
  EXPECT_THAT(DecodeMigDataReadRequest(read, 0, 4096), IsOk());
  EXPECT_THAT(DecodeMigDataReadRequest(read, 0, 4095), FailsWithErrno(EINVAL));
  const std::vector<uint8_t> write = HexBytes(kGoldenWriteRequest);  // size 3
  EXPECT_THAT(DecodeMigDataWriteRequest(write, 0, 3), IsOk());
  EXPECT_THAT(DecodeMigDataWriteRequest(write, 0, 2), FailsWithErrno(EINVAL));
}

// Section 10 row 33: a WRITE payload shorter than 8 + size is EINVAL, and
// so is a longer one (the payload must be exact).
TEST(MigrationDataTest, WritePayloadSizeMismatchIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenWriteRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeMigDataWriteRequest(bytes, 0, kMaxXfer), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGoldenWriteRequest);
  bytes.push_back(0xdd);
  EXPECT_THAT(DecodeMigDataWriteRequest(bytes, 0, kMaxXfer), FailsWithErrno(EINVAL));
  // A size near 2^32 with a tiny payload and no limit.
  EXPECT_THAT(DecodeMigDataWriteRequest(HexBytes("ffffffff | f8ffffff"), 0, kNoLimit),
              FailsWithErrno(EINVAL));
}

// The reply must carry exactly 8 + size bytes, argsz = 8 + size, and no
// more than was asked for.
TEST(MigrationDataTest, MalformedReadReplyIsEinval) {
  const std::vector<uint8_t> golden = HexBytes(kGoldenReadReply);
  EXPECT_THAT(DecodeMigDataReadReply(golden, 0, 2), FailsWithErrno(EINVAL));
  std::vector<uint8_t> bytes = golden;
  bytes.pop_back();
  EXPECT_THAT(DecodeMigDataReadReply(bytes, 0, kMaxXfer), FailsWithErrno(EINVAL));
  bytes = golden;
  bytes.push_back(0);
  EXPECT_THAT(DecodeMigDataReadReply(bytes, 0, kMaxXfer), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeMigDataReadReply(HexBytes("0c000000 | 03000000 | aabbcc"), 0, kMaxXfer),
              FailsWithErrno(EINVAL));
}

// Section 10 row 16: fds are not the decoders' concern.
TEST(MigrationDataTest, FdsAreIgnored) {
  EXPECT_THAT(DecodeMigDataReadRequest(HexBytes(kGoldenReadRequest), 1, kMaxXfer), IsOk());
  EXPECT_THAT(DecodeMigDataWriteRequest(HexBytes(kGoldenWriteRequest), 2, kMaxXfer), IsOk());
}

}  // namespace
}  // namespace vfu::wire
