#include "tools/inspect/command.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace vfu::inspect {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::vfu::testing::StatusIs;

absl::StatusOr<Command> Parse(std::vector<std::string> args, bool spec = false) {
  return ParseCommand(args, spec);
}

TEST(CommandTest, ListingAndSpec) {
  ASSERT_OK_AND_ASSIGN(Command listing, Parse({"/run/a.sock"}));
  EXPECT_EQ(listing.kind, Command::Kind::kListing);
  EXPECT_EQ(listing.socket_path, "/run/a.sock");
  ASSERT_OK_AND_ASSIGN(Command spec, Parse({"/run/a.sock"}, true));
  EXPECT_EQ(spec.kind, Command::Kind::kSpec);
}

TEST(CommandTest, ReadWithHexAndDecimal) {
  ASSERT_OK_AND_ASSIGN(Command read, Parse({"read", "/s", "7", "0x40", "16"}));
  EXPECT_EQ(read.kind, Command::Kind::kRead);
  EXPECT_EQ(read.socket_path, "/s");
  EXPECT_EQ(read.region, 7u);
  EXPECT_EQ(read.offset, 0x40u);
  EXPECT_EQ(read.size, 16u);
}

TEST(CommandTest, Write) {
  ASSERT_OK_AND_ASSIGN(Command write, Parse({"write", "/s", "2", "0X10", "de ad"}));
  EXPECT_EQ(write.kind, Command::Kind::kWrite);
  EXPECT_EQ(write.region, 2u);
  EXPECT_EQ(write.offset, 0x10u);
  EXPECT_THAT(write.data, ElementsAre(0xde, 0xad));
}

// Every malformed command line is InvalidArgument, before any connection.
TEST(CommandTest, MalformedCommandLines) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"/s", "extra"},
      {"read", "/s", "0", "0"},
      {"read", "/s", "0", "0", "0"},
      {"read", "/s", "0", "0", "0x1000001"},
      {"read", "/s", "x", "0", "4"},
      {"read", "/s", "0", "-4", "4"},
      {"read", "/s", "0x100000000", "0", "4"},
      {"read", "/s", "0", "0x", "4"},
      {"write", "/s", "0", "0", "xyz"},
      {"write", "/s", "0", "0"},
  };
  for (const auto& args : bad) {
    EXPECT_THAT(Parse(args), StatusIs(absl::StatusCode::kInvalidArgument))
        << ::testing::PrintToString(args);
  }
  EXPECT_THAT(Parse({"read", "/s", "0", "0", "4"}, /*spec=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Connecting to a path with no server: the connect error, naming the path.
TEST(CommandTest, NoServerIsAnErrorNamingTheSocket) {
  vfu::testing::ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(Command command, Parse({dir.File("none.sock")}));
  absl::StatusOr<std::string> out = RunCommand(command);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr(dir.File("none.sock")));
}

TEST(CommandTest, UsageNamesEverySubcommand) {
  const std::string usage = UsageText();
  EXPECT_THAT(usage, HasSubstr("inspect --spec SOCKET"));
  EXPECT_THAT(usage, HasSubstr("inspect read SOCKET REGION OFFSET SIZE"));
  EXPECT_THAT(usage, HasSubstr("inspect write SOCKET REGION OFFSET HEXBYTES"));
}

}  // namespace
}  // namespace vfu::inspect
