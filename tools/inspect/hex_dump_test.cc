#include "tools/inspect/hex_dump.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu::inspect {
namespace {

using ::testing::ElementsAre;
using ::vfu::testing::StatusIs;

// Offsets count from the base; a short last line keeps the ASCII column
// aligned; non-printable bytes show as dots.
TEST(HexDumpTest, LinesOfSixteenWithAscii) {
  std::vector<uint8_t> bytes(18);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>('A' + i);
  bytes[1] = 0x07;
  EXPECT_EQ(HexDump(bytes, 0x100),
            "00000100: 41 07 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50 |A.CDEFGHIJKLMNOP|\n"
            "00000110: 51 52                                           |QR|\n");
}

TEST(HexDumpTest, EmptyIsEmpty) { EXPECT_EQ(HexDump({}, 0), ""); }

TEST(HexDumpTest, HexBytesStopsAtMax) {
  const std::vector<uint8_t> bytes = {1, 2, 3};
  EXPECT_EQ(HexBytes(bytes), "01 02 03");
  EXPECT_EQ(HexBytes(bytes, 2), "01 02 ...");
}

// Every accepted spelling gives the same bytes.
TEST(HexDumpTest, ParseAcceptsSeparatorsAndPrefix) {
  for (const char* text : {"deadBEEF", "de ad be ef", "de:ad:be:ef", "0xdeadbeef"}) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, ParseHexBytes(text));
    EXPECT_THAT(bytes, ElementsAre(0xde, 0xad, 0xbe, 0xef)) << text;
  }
}

TEST(HexDumpTest, ParseRejectsMalformedText) {
  for (const char* text : {"", "0x", "abc", "a b", "zz", "12 3g", "-1"}) {
    EXPECT_THAT(ParseHexBytes(text), StatusIs(absl::StatusCode::kInvalidArgument)) << text;
  }
}

}  // namespace
}  // namespace vfu::inspect
