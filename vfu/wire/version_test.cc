#include "vfu/wire/version.h"

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;
using ::vfu::testing::IsOk;

// Golden bytes from PROTOCOL.md 3.1's offsets, written by hand: major 0,
// minor 2, the 34-byte text {"capabilities":{"max_msg_fds":8}} in ASCII and
// its terminating NUL.
const char kGoldenVersion[] =
    "0000 | 0200 | "
    "7b22636170616269 6c6974696573223a 7b226d61785f6d73 675f666473223a38 7d7d | 00";

// 4 bytes of major 0 minor 2, then `json_area` verbatim.
std::vector<uint8_t> Payload(std::string_view json_area) {
  std::vector<uint8_t> out = HexBytes("0000 0200");
  out.insert(out.end(), json_area.begin(), json_area.end());
  return out;
}

// The golden vector decodes into major, minor and the JSON's one member.
TEST(VersionTest, DecodesGoldenBytes) {
  std::vector<uint8_t> golden = HexBytes(kGoldenVersion);
  ASSERT_EQ(golden.size(), 4u + 34u + 1u);
  ASSERT_OK_AND_ASSIGN(Version v, DecodeVersionRequest(golden, 0));
  EXPECT_EQ(v.major, 0);
  EXPECT_EQ(v.minor, 2);
  Capabilities expected;
  expected.max_msg_fds = 8;
  EXPECT_EQ(v.capabilities, expected);
}

// Both encoders reproduce the golden vector byte for byte.
TEST(VersionTest, EncodesGoldenBytes) {
  std::vector<uint8_t> raw;
  EncodeVersionWithJson(0, 2, R"({"capabilities":{"max_msg_fds":8}})", raw);
  EXPECT_EQ(raw, HexBytes(kGoldenVersion));

  Version v{.major = 0, .minor = 2};
  v.capabilities.max_msg_fds = 8;
  std::vector<uint8_t> typed;
  EncodeVersion(v, {.max_msg_fds = true}, typed);
  EXPECT_EQ(typed, HexBytes(kGoldenVersion));
}

// Encoding appends after what the buffer already holds (a header).
TEST(VersionTest, EncodeAppends) {
  std::vector<uint8_t> out(16, 0xee);
  EncodeVersionWithJson(0x0102, 0x0304, "{}", out);
  std::vector<uint8_t> expected(16, 0xee);
  std::vector<uint8_t> tail = HexBytes("0201 0403 7b7d 00");
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(out, expected);
}

// Encode then decode gives back every field, nested optionals included.
TEST(VersionTest, RoundTrips) {
  Version v{.major = 0x1234, .minor = 0xfffe};
  v.capabilities = {.max_msg_fds = 16,
                    .max_data_xfer_size = 4096,
                    .max_dma_maps = 7,
                    .pgsizes = 0x201000,
                    .twin_socket = {.supported = true, .fd_index = 0},
                    .write_multiple = true,
                    .migration = MigrationCapability{.pgsize = 65536}};
  std::vector<uint8_t> out;
  EncodeVersion(v, CapabilityMembers::All(), out);
  ASSERT_OK_AND_ASSIGN(Version back, DecodeVersionReply(out, 1));
  EXPECT_EQ(back, v);
}

// 3.1: the JSON is optional; a 4-byte payload means all defaults, and an
// empty JSON string encodes as exactly that.
TEST(VersionTest, NoJsonMeansDefaults) {
  std::vector<uint8_t> out;
  EncodeVersionWithJson(0, 0, "", out);
  EXPECT_EQ(out, HexBytes("0000 0000"));
  ASSERT_OK_AND_ASSIGN(Version v, DecodeVersionRequest(out, 0));
  EXPECT_EQ(v, Version{});
}

// Row 10: payload shorter than major + minor.
TEST(VersionTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = HexBytes("000002");
  for (size_t size = 0; size < 4; ++size) {
    EXPECT_THAT(DecodeVersionRequest(absl::MakeConstSpan(bytes.data(), size), 0),
                FailsWithErrno(EINVAL))
        << size;
  }
}

// Row 10 / 3.4: the JSON area's last byte must be NUL.
TEST(VersionTest, MissingNulIsEinval) {
  EXPECT_THAT(DecodeVersionRequest(Payload("{}"), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeVersionRequest(Payload("{"), 0), FailsWithErrno(EINVAL));
  // Valid JSON once the last byte is dropped: only the NUL check catches it.
  EXPECT_THAT(DecodeVersionRequest(Payload("{} "), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeVersionRequest(Payload("{}}"), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeVersionRequest(Payload(std::string_view("{}\0 ", 4)), 0),
              FailsWithErrno(EINVAL));
}

// A NUL before the end would hide the rest of the text from a C reader.
TEST(VersionTest, EarlyNulIsEinval) {
  EXPECT_THAT(DecodeVersionRequest(Payload(std::string_view("{}\0{}\0", 6)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeVersionRequest(Payload(std::string_view("\0\0", 2)), 0),
              FailsWithErrno(EINVAL));
}

// A lone NUL is empty text, which is not JSON.
TEST(VersionTest, EmptyJsonIsEinval) {
  EXPECT_THAT(DecodeVersionRequest(Payload(std::string_view("\0", 1)), 0),
              FailsWithErrno(EINVAL));
}

// Row 10: bad capabilities (a number as a string) fail the VERSION.
TEST(VersionTest, BadCapabilitiesAreEinval) {
  std::string json = R"({"capabilities":{"max_msg_fds":"8"}})";
  EXPECT_THAT(DecodeVersionRequest(Payload(json + std::string(1, '\0')), 0),
              FailsWithErrno(EINVAL));
}

// Row 13: a VERSION command carries no fds; a reply at most the twin socket.
TEST(VersionTest, FdCounts) {
  std::vector<uint8_t> golden = HexBytes(kGoldenVersion);
  EXPECT_THAT(DecodeVersionRequest(golden, 1), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeVersionReply(golden, 0), IsOk());
  EXPECT_THAT(DecodeVersionReply(golden, 1), IsOk());
  EXPECT_THAT(DecodeVersionReply(golden, 2), FailsWithErrno(EINVAL));
}

// The JSON text is capped at kMaxCapabilitiesJsonSize (NUL not counted).
TEST(VersionTest, JsonLengthCap) {
  std::string at_limit = "{}" + std::string(kMaxCapabilitiesJsonSize - 2, ' ');
  std::vector<uint8_t> ok = Payload(at_limit + std::string(1, '\0'));
  EXPECT_EQ(ok.size(), kMaxVersionPayloadSize);
  EXPECT_THAT(DecodeVersionRequest(ok, 0), IsOk());
  std::vector<uint8_t> too_long = Payload(at_limit + " " + std::string(1, '\0'));
  EXPECT_THAT(DecodeVersionRequest(too_long, 0), FailsWithErrno(EINVAL));
}

// Every prefix of a valid payload is refused or decoded, never a crash; only
// the whole payload and the 4-byte prefix (no JSON) decode.
TEST(VersionTest, EveryTruncationIsHandled) {
  std::vector<uint8_t> golden = HexBytes(kGoldenVersion);
  for (size_t size = 0; size <= golden.size(); ++size) {
    auto decoded = DecodeVersionRequest(absl::MakeConstSpan(golden.data(), size), 0);
    if (size == 4 || size == golden.size()) {
      EXPECT_THAT(decoded, IsOk()) << size;
    } else {
      EXPECT_THAT(decoded, FailsWithErrno(EINVAL)) << size;
    }
  }
}

}  // namespace
}  // namespace vfu::wire
