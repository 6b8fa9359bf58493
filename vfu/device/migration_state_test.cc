#include "vfu/device/migration_state.h"

#include <cerrno>
#include <string>
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

// All 8 x 8 pairs against PROTOCOL.md section 6's table, written out: the
// states a SET passes through, "-" for none, "EINVAL" for a refusal.
TEST(MigrationPathTest, EveryPairMatchesTheSpecTable) {
  // Rows: from 0..7; columns: to 0..7. S=STOP R=RUNNING C=STOP_COPY
  // M=RESUMING P=PRE_COPY.
  const char* const kTable[8][8] = {
      // to: ERROR    STOP      RUNNING   STOP_COPY RESUMING  RUN_P2P   PRE_COPY  PRE_P2P
      /*ERROR*/ {"EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL"},
      /*STOP*/ {"EINVAL", "-", "R", "C", "M", "EINVAL", "RP", "EINVAL"},
      /*RUNNING*/ {"EINVAL", "S", "-", "SC", "SM", "EINVAL", "P", "EINVAL"},
      /*STOP_COPY*/ {"EINVAL", "S", "SR", "-", "SM", "EINVAL", "EINVAL", "EINVAL"},
      /*RESUMING*/ {"EINVAL", "S", "SR", "SC", "-", "EINVAL", "SRP", "EINVAL"},
      /*RUN_P2P*/ {"EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL"},
      /*PRE_COPY*/ {"EINVAL", "RS", "R", "C", "RSM", "EINVAL", "-", "EINVAL"},
      /*PRE_P2P*/ {"EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL"},
  };
  auto letter = [](MigrationState s) {
    switch (s) {
      case kStop:
        return 'S';
      case kRunning:
        return 'R';
      case kStopCopy:
        return 'C';
      case kResuming:
        return 'M';
      case kPreCopy:
        return 'P';
      default:
        return '?';
    }
  };
  for (uint32_t from = 0; from < 8; ++from) {
    for (uint32_t to = 0; to < 8; ++to) {
      absl::StatusOr<std::vector<MigrationState>> path =
          MigrationPath(static_cast<MigrationState>(from), static_cast<MigrationState>(to));
      std::string got;
      if (!path.ok()) {
        EXPECT_EQ(wire::ReplyErrno(path.status()), EINVAL);
        got = "EINVAL";
      } else if (path->empty()) {
        got = "-";
      } else {
        for (MigrationState s : *path) got += letter(s);
      }
      EXPECT_EQ(got, kTable[from][to]) << from << " -> " << to;
    }
  }
}

TEST(MigrationStateTest, Names) {
  EXPECT_EQ(MigrationStateName(kPreCopy), "PRE_COPY");
  EXPECT_EQ(MigrationStateName(static_cast<MigrationState>(9)), "INVALID");
}

}  // namespace
}  // namespace vfu
