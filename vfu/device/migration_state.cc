#include "vfu/device/migration_state.h"

#include <array>
#include <cerrno>
#include <deque>

#include "absl/strings/str_cat.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

struct Arc {
  MigrationState from;
  MigrationState to;
};

// The direct arcs, as data (PROTOCOL.md section 6).
constexpr std::array<Arc, 9> kArcs = {{
    {MigrationState::kStop, MigrationState::kRunning},
    {MigrationState::kStop, MigrationState::kStopCopy},
    {MigrationState::kStop, MigrationState::kResuming},
    {MigrationState::kRunning, MigrationState::kStop},
    {MigrationState::kRunning, MigrationState::kPreCopy},
    {MigrationState::kPreCopy, MigrationState::kRunning},
    {MigrationState::kPreCopy, MigrationState::kStopCopy},
    {MigrationState::kStopCopy, MigrationState::kStop},
    {MigrationState::kResuming, MigrationState::kStop},
}};

// States a multi-arc path may pass through (not end at).
bool MayBeInterior(MigrationState state) {
  return state == MigrationState::kStop || state == MigrationState::kRunning ||
         state == MigrationState::kResuming;
}

std::string Describe(MigrationState state) {
  return absl::StrCat(MigrationStateName(state), " (", static_cast<uint32_t>(state), ")");
}

}  // namespace

std::string_view MigrationStateName(MigrationState state) {
  switch (state) {
    case MigrationState::kError:
      return "ERROR";
    case MigrationState::kStop:
      return "STOP";
    case MigrationState::kRunning:
      return "RUNNING";
    case MigrationState::kStopCopy:
      return "STOP_COPY";
    case MigrationState::kResuming:
      return "RESUMING";
    case MigrationState::kRunningP2p:
      return "RUNNING_P2P";
    case MigrationState::kPreCopy:
      return "PRE_COPY";
    case MigrationState::kPreCopyP2p:
      return "PRE_COPY_P2P";
  }
  return "INVALID";
}

bool IsEnterableMigrationState(MigrationState state) {
  switch (state) {
    case MigrationState::kStop:
    case MigrationState::kRunning:
    case MigrationState::kStopCopy:
    case MigrationState::kResuming:
    case MigrationState::kPreCopy:
      return true;
    default:
      return false;
  }
}

bool IsMigrationArc(MigrationState from, MigrationState to) {
  for (const Arc& arc : kArcs) {
    if (arc.from == from && arc.to == to) return true;
  }
  return false;
}

absl::StatusOr<std::vector<MigrationState>> MigrationPath(MigrationState from,
                                                          MigrationState to) {
  if (!IsEnterableMigrationState(to)) {
    return wire::WireError(EINVAL, absl::StrCat("migration state ", Describe(to),
                                                " cannot be entered"));
  }
  if (!IsEnterableMigrationState(from)) {
    return wire::WireError(EINVAL, absl::StrCat("no way out of migration state ",
                                                Describe(from)));
  }
  if (from == to) return std::vector<MigrationState>{};
  if (from == MigrationState::kStopCopy && to == MigrationState::kPreCopy) {
    return wire::WireError(EINVAL, "STOP_COPY -> PRE_COPY is forbidden");
  }
  // Breadth-first search over eight states: the first time `to` is reached
  // is along a shortest path.
  std::array<int, kMigrationStateLimit> previous;
  previous.fill(-1);
  previous[static_cast<uint32_t>(from)] = static_cast<int>(from);
  std::deque<MigrationState> frontier = {from};
  while (!frontier.empty()) {
    const MigrationState at = frontier.front();
    frontier.pop_front();
    if (at == to) break;
    if (at != from && !MayBeInterior(at)) continue;
    for (const Arc& arc : kArcs) {
      if (arc.from != at || previous[static_cast<uint32_t>(arc.to)] != -1) continue;
      previous[static_cast<uint32_t>(arc.to)] = static_cast<int>(at);
      frontier.push_back(arc.to);
    }
  }
  if (previous[static_cast<uint32_t>(to)] == -1) {
    return wire::WireError(EINVAL, absl::StrCat("no path from ", Describe(from), " to ",
                                                Describe(to)));
  }
  std::vector<MigrationState> path;
  for (MigrationState at = to; at != from;
       at = static_cast<MigrationState>(previous[static_cast<uint32_t>(at)])) {
    path.insert(path.begin(), at);
  }
  return path;
}

}  // namespace vfu
