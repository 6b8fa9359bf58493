#include "vfu/device/migration_state.h"

#include <cerrno>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::vfu::testing::IsOk;

constexpr MigrationState kStop = MigrationState::kStop;
constexpr MigrationState kRunning = MigrationState::kRunning;
constexpr MigrationState kStopCopy = MigrationState::kStopCopy;
constexpr MigrationState kResuming = MigrationState::kResuming;
constexpr MigrationState kPreCopy = MigrationState::kPreCopy;

std::vector<MigrationState> PathOrDie(MigrationState from, MigrationState to) {
  absl::StatusOr<std::vector<MigrationState>> path = MigrationPath(from, to);
  EXPECT_THAT(path, IsOk()) << MigrationStateName(from) << " -> " << MigrationStateName(to);
  return path.ok() ? *path : std::vector<MigrationState>{};
}

TEST(MigrationPathTest, DirectArcsAreOneStep) {
  const std::pair<MigrationState, MigrationState> arcs[] = {
      {kStop, kRunning},       {kStop, kStopCopy},    {kStop, kResuming},
      {kRunning, kStop},       {kRunning, kPreCopy},  {kPreCopy, kRunning},
      {kPreCopy, kStopCopy},   {kStopCopy, kStop},    {kResuming, kStop},
  };
  for (const auto& [from, to] : arcs) {
    EXPECT_TRUE(IsMigrationArc(from, to));
    EXPECT_THAT(PathOrDie(from, to), ElementsAre(to));
  }
}

// PROTOCOL.md section 6's table, row by row.
TEST(MigrationPathTest, MultiArcPathsMatchTheTable) {
  EXPECT_THAT(PathOrDie(kStop, kPreCopy), ElementsAre(kRunning, kPreCopy));
  EXPECT_THAT(PathOrDie(kRunning, kStopCopy), ElementsAre(kStop, kStopCopy));
  EXPECT_THAT(PathOrDie(kRunning, kResuming), ElementsAre(kStop, kResuming));
  EXPECT_THAT(PathOrDie(kStopCopy, kRunning), ElementsAre(kStop, kRunning));
  EXPECT_THAT(PathOrDie(kStopCopy, kResuming), ElementsAre(kStop, kResuming));
  EXPECT_THAT(PathOrDie(kResuming, kRunning), ElementsAre(kStop, kRunning));
  EXPECT_THAT(PathOrDie(kResuming, kStopCopy), ElementsAre(kStop, kStopCopy));
  EXPECT_THAT(PathOrDie(kResuming, kPreCopy), ElementsAre(kStop, kRunning, kPreCopy));
  EXPECT_THAT(PathOrDie(kPreCopy, kStop), ElementsAre(kRunning, kStop));
  EXPECT_THAT(PathOrDie(kPreCopy, kResuming), ElementsAre(kRunning, kStop, kResuming));
}

TEST(MigrationPathTest, SameStateIsEmpty) {
  for (MigrationState s : {kStop, kRunning, kStopCopy, kResuming, kPreCopy}) {
    EXPECT_THAT(PathOrDie(s, s), IsEmpty());
  }
}

TEST(MigrationPathTest, ForbiddenAndUnenterableAreEinval) {
  EXPECT_EQ(wire::ReplyErrno(MigrationPath(kStopCopy, kPreCopy).status()), EINVAL);
  for (uint32_t to : {0u, 5u, 7u, 8u, 0xffffffffu}) {
    for (MigrationState from : {kStop, kRunning, kStopCopy, kResuming, kPreCopy}) {
      EXPECT_EQ(wire::ReplyErrno(MigrationPath(from, static_cast<MigrationState>(to)).status()),
                EINVAL)
          << to;
    }
  }
  EXPECT_EQ(wire::ReplyErrno(MigrationPath(MigrationState::kError, kRunning).status()), EINVAL);
}

TEST(MigrationPathTest, NoInteriorCopyState) {
  for (MigrationState from : {kStop, kRunning, kStopCopy, kResuming, kPreCopy}) {
    for (MigrationState to : {kStop, kRunning, kStopCopy, kResuming, kPreCopy}) {
      absl::StatusOr<std::vector<MigrationState>> path = MigrationPath(from, to);
      if (!path.ok()) continue;
      MigrationState at = from;
      for (size_t i = 0; i < path->size(); ++i) {
        EXPECT_TRUE(IsMigrationArc(at, (*path)[i]));
        if (i + 1 < path->size()) {
          EXPECT_NE((*path)[i], kPreCopy);
          EXPECT_NE((*path)[i], kStopCopy);
        }
        at = (*path)[i];
      }
    }
  }
}

TEST(MigrationStateTest, Names) {
  EXPECT_EQ(MigrationStateName(kPreCopy), "PRE_COPY");
  EXPECT_EQ(MigrationStateName(static_cast<MigrationState>(9)), "INVALID");
}

}  // namespace
}  // namespace vfu
