// The engine's migration protocol and quiesce, against MigratingDevice.
#include <cerrno>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/local_dma_context.h"
#include "vfu/device/migration_state.h"
#include "vfu/engine/session.h"
#include "vfu/engine/session_test_util.h"
#include "vfu/engine/testing_migrating_device.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/migration_data.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using testing::MakeCommand;
using testing::MigratingDevice;
using testing::ReplyErrno;
using testing::ReplyPayload;
using testing::VersionPayload;
using wire::Command;
using wire::DeviceFeature;
using QuiesceMode = MigratingDevice::QuiesceMode;

constexpr MigrationState kEnterable[] = {MigrationState::kStop, MigrationState::kRunning,
                                         MigrationState::kStopCopy, MigrationState::kResuming,
                                         MigrationState::kPreCopy};

class SessionMigrationTest : public ::testing::Test {
 protected:
  SessionMigrationTest() { Connect(); }

  void Connect(SessionOptions options = {}) {
    session_.emplace(device_, context_, context_.table(), options, "t");
    Session::Result r = session_->Handle(MakeCommand(
        1, Command::kVersion,
        VersionPayload(R"({"capabilities":{"max_data_xfer_size":4096,"migration":{"pgsize":4096}}})")));
    ASSERT_EQ(ReplyErrno(r), 0);
    session_->Attach();
  }

  Session::Result Send(Command cmd, const std::vector<uint8_t>& payload) {
    return session_->Handle(MakeCommand(next_id_++, cmd, payload));
  }

  Session::Result Feature(const wire::DeviceFeatureRequest& request) {
    std::vector<uint8_t> p;
    wire::EncodeDeviceFeatureRequest(request, p);
    return Send(Command::kDeviceFeature, p);
  }

  int SetState(uint32_t state) {
    return ReplyErrno(Feature({.argsz = 16,
                               .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState,
                                                                 wire::kDeviceFeatureSet),
                               .data = wire::FeatureMigState{.device_state = state}}));
  }
  int SetState(MigrationState state) { return SetState(static_cast<uint32_t>(state)); }

  uint32_t GetState() {
    Session::Result r = Feature({.argsz = 16,
                                 .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState,
                                                                   wire::kDeviceFeatureGet)});
    EXPECT_EQ(ReplyErrno(r), 0);
    absl::StatusOr<wire::DeviceFeatureGetReply> reply =
        wire::DecodeDeviceFeatureGetReply(ReplyPayload(r), 0);
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return 0xffffffff;
    return std::get<wire::FeatureMigState>(reply->data).device_state;
  }

  Session::Result ReadData(uint32_t size, uint32_t argsz = 0) {
    std::vector<uint8_t> p;
    wire::EncodeMigDataReadRequest({.argsz = argsz ? argsz : 8 + size, .size = size}, p);
    return Send(Command::kMigDataRead, p);
  }
  Session::Result WriteData(const std::vector<uint8_t>& data, uint32_t argsz = 0) {
    std::vector<uint8_t> p;
    wire::EncodeMigDataWriteRequest(
        {.argsz = argsz ? argsz : static_cast<uint32_t>(8 + data.size()), .data = data}, p);
    return Send(Command::kMigDataWrite, p);
  }
  Session::Result Map(uint64_t iova) {
    std::vector<uint8_t> p;
    wire::EncodeDmaMapRequest({.flags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                               .addr = iova,
                               .size = 4096},
                              p);
    return Send(Command::kDmaMap, p);
  }
  Session::Result Unmap(uint64_t iova) {
    std::vector<uint8_t> p;
    wire::EncodeDmaUnmapRequest({.addr = iova, .size = 4096}, p);
    return Send(Command::kDmaUnmap, p);
  }
  Session::Result RegionWrite(uint64_t offset, std::vector<uint8_t> data) {
    std::vector<uint8_t> p;
    wire::EncodeRegionWriteRequest({.offset = offset, .region = 0, .data = data}, p);
    return Send(Command::kRegionWrite, p);
  }
  Session::Result RegionRead(uint64_t offset, uint32_t count) {
    std::vector<uint8_t> p;
    wire::EncodeRegionReadRequest({.offset = offset, .region = 0, .count = count}, p);
    return Send(Command::kRegionRead, p);
  }

  // Walks to `state` from wherever the device is, then forgets the log. In
  // RESUMING the device is given a whole stream, so that it may leave.
  void Reach(MigrationState state) {
    const bool entering = GetState() != static_cast<uint32_t>(state);
    if (state == MigrationState::kPreCopy &&
        GetState() == static_cast<uint32_t>(MigrationState::kStopCopy)) {
      ASSERT_EQ(SetState(MigrationState::kStop), 0);  // the forbidden arc's detour
    }
    ASSERT_EQ(SetState(state), 0) << MigrationStateName(state);
    if (state == MigrationState::kResuming && entering) {
      ASSERT_EQ(ReplyErrno(WriteData(std::vector<uint8_t>(MigratingDevice::kStateSize, 7))), 0);
    }
    ASSERT_EQ(GetState(), static_cast<uint32_t>(state));
    device_.ClearLog();
  }

  MigratingDevice device_;
  testing::LocalDmaContext context_;
  std::optional<Session> session_;
  uint16_t next_id_ = 2;
};

// Every (from, to) pair: the device sees exactly the shortest path's arcs,
// and an invalid target is EINVAL with no arc and no state change. ERROR
// and the P2P states cannot be a starting point: no SET reaches them (the
// `to` loop shows it for each of them).
TEST_F(SessionMigrationTest, EveryPairWalksTheShortestPath) {
  for (MigrationState from : kEnterable) {
    for (uint32_t to = 0; to <= 8; ++to) {
      SCOPED_TRACE(absl::StrCat(MigrationStateName(from), " -> ", to));
      // Every enterable state is reachable from every other (Reach()).
      Reach(from);
      absl::StatusOr<std::vector<MigrationState>> path =
          MigrationPath(from, static_cast<MigrationState>(to));
      const int err = SetState(to);
      if (!path.ok()) {
        EXPECT_EQ(err, EINVAL);
        EXPECT_THAT(device_.arcs(), IsEmpty());
        EXPECT_EQ(GetState(), static_cast<uint32_t>(from));
        continue;
      }
      EXPECT_EQ(err, 0);
      std::vector<MigratingDevice::Arc> expected;
      MigrationState at = from;
      for (MigrationState next : *path) {
        expected.push_back({at, next});
        at = next;
      }
      EXPECT_THAT(device_.arcs(), ElementsAreArray(expected));
      EXPECT_EQ(GetState(), to);
      if (to == static_cast<uint32_t>(MigrationState::kResuming) && !path->empty()) {
        // So that the next Reach() may leave RESUMING.
        ASSERT_EQ(ReplyErrno(WriteData(std::vector<uint8_t>(MigratingDevice::kStateSize, 7))), 0);
      }
    }
  }
  // The expected paths themselves (not just MigrationPath's word for it).
  Reach(MigrationState::kResuming);
  ASSERT_EQ(SetState(MigrationState::kPreCopy), 0);
  EXPECT_THAT(device_.arcs(),
              ElementsAre(MigratingDevice::Arc{MigrationState::kResuming, MigrationState::kStop},
                          MigratingDevice::Arc{MigrationState::kStop, MigrationState::kRunning},
                          MigratingDevice::Arc{MigrationState::kRunning,
                                               MigrationState::kPreCopy}));
  EXPECT_EQ(SetState(0xffffffffu), EINVAL);
}

TEST_F(SessionMigrationTest, SameStateSetDoesNotTouchTheDevice) {
  ASSERT_EQ(SetState(MigrationState::kRunning), 0);
  EXPECT_THAT(device_.arcs(), IsEmpty());
  EXPECT_THAT(device_.events(), IsEmpty()) << "no quiesce either";
  Reach(MigrationState::kStop);
  ASSERT_EQ(SetState(MigrationState::kStop), 0);
  EXPECT_THAT(device_.arcs(), IsEmpty());
}

TEST_F(SessionMigrationTest, DeviceErrnoPassesThroughAndTheWalkStopsThere) {
  device_.FailArc(MigrationState::kStop, MigrationState::kStopCopy,
                  wire::WireError(ENOSPC, "no room to save"));
  EXPECT_EQ(SetState(MigrationState::kStopCopy), ENOSPC);
  EXPECT_THAT(device_.arcs(),
              ElementsAre(MigratingDevice::Arc{MigrationState::kRunning, MigrationState::kStop},
                          MigratingDevice::Arc{MigrationState::kStop, MigrationState::kStopCopy}));
  // The first arc succeeded: the device is stopped.
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kStop));
  // The quiesce covered the whole walk, and ended with it.
  EXPECT_THAT(device_.events(), ElementsAre("quiesce migration state change", "unquiesce"));
}

TEST_F(SessionMigrationTest, ResumingToStopRefusesAnIncompleteStream) {
  Reach(MigrationState::kStop);
  ASSERT_EQ(SetState(MigrationState::kResuming), 0);
  ASSERT_EQ(ReplyErrno(WriteData({1, 2, 3})), 0);
  EXPECT_EQ(SetState(MigrationState::kRunning), EBADMSG);
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kResuming));
  ASSERT_EQ(ReplyErrno(WriteData(std::vector<uint8_t>(MigratingDevice::kStateSize - 3, 9))), 0);
  EXPECT_EQ(SetState(MigrationState::kRunning), 0);
  EXPECT_EQ(device_.memory()[0], 1);
  EXPECT_EQ(device_.memory()[3], 9);
}

TEST_F(SessionMigrationTest, SaveStreamFlowsThroughPreCopyAndStopCopy) {
  std::vector<uint8_t> pattern(MigratingDevice::kStateSize);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i + 1);
  ASSERT_EQ(ReplyErrno(RegionWrite(0, pattern)), 0);
  Reach(MigrationState::kPreCopy);

  // MIG_DATA_SIZE reports what pre-copy still has.
  Session::Result size = Feature({.argsz = 16,
                                  .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDataSize,
                                                                    wire::kDeviceFeatureGet)});
  ASSERT_EQ(ReplyErrno(size), 0);
  absl::StatusOr<wire::DeviceFeatureGetReply> estimate =
      wire::DecodeDeviceFeatureGetReply(ReplyPayload(size), 0);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_EQ(std::get<wire::FeatureMigDataSize>(estimate->data).stop_copy_length,
            MigratingDevice::kStateSize / 2);

  std::vector<uint8_t> stream;
  auto read_all = [&](uint32_t chunk) {
    for (;;) {
      Session::Result r = ReadData(chunk);
      EXPECT_EQ(ReplyErrno(r), 0);
      if (!r.reply || ReplyErrno(r) != 0) return;
      absl::StatusOr<wire::MigDataReadReply> reply =
          wire::DecodeMigDataReadReply(ReplyPayload(r), 0, chunk);
      EXPECT_TRUE(reply.ok()) << reply.status();
      if (!reply.ok()) return;
      stream.insert(stream.end(), reply->data.begin(), reply->data.end());
      if (reply->data.size() < chunk) return;  // a short reply ends this round
    }
  };
  read_all(10);
  EXPECT_EQ(stream.size(), MigratingDevice::kStateSize / 2);
  ASSERT_EQ(SetState(MigrationState::kStopCopy), 0);
  read_all(7);
  EXPECT_EQ(stream, pattern);
}

TEST_F(SessionMigrationTest, DataReadOnlyInCopyStatesAndWriteOnlyInResuming) {
  for (MigrationState state : kEnterable) {
    SCOPED_TRACE(MigrationStateName(state));
    Reach(state);
    const bool readable = state == MigrationState::kPreCopy || state == MigrationState::kStopCopy;
    EXPECT_EQ(ReplyErrno(ReadData(4)), readable ? 0 : EINVAL);
    // STOP and STOP_COPY refuse the write before it reaches the handler;
    // RUNNING and PRE_COPY in the handler; both EINVAL.
    // (In RESUMING the device has a whole stream already and refuses more.)
    EXPECT_EQ(ReplyErrno(WriteData({1})), state == MigrationState::kResuming ? EFBIG : EINVAL);
  }
}

TEST_F(SessionMigrationTest, DataArgszAndSizeChecks) {
  const uint32_t kMaxXfer =
      static_cast<uint32_t>(session_->negotiation()->reply.capabilities.max_data_xfer_size);
  Reach(MigrationState::kPreCopy);
  EXPECT_EQ(ReplyErrno(ReadData(16, /*argsz=*/8 + 15)), EINVAL) << "argsz below 8 + size";
  EXPECT_EQ(ReplyErrno(ReadData(kMaxXfer + 1)), EINVAL) << "beyond max_data_xfer_size";
  EXPECT_EQ(ReplyErrno(ReadData(kMaxXfer)), 0);
  EXPECT_EQ(ReplyErrno(Send(Command::kMigDataRead, {8, 0, 0, 0})), EINVAL) << "short payload";
  Reach(MigrationState::kStop);
  ASSERT_EQ(SetState(MigrationState::kResuming), 0);
  EXPECT_EQ(ReplyErrno(WriteData({1, 2}, /*argsz=*/9)), EINVAL) << "argsz below 8 + size";
  std::vector<uint8_t> p;
  wire::EncodeMigDataWriteRequest({.argsz = 12, .data = std::vector<uint8_t>{1, 2, 3, 4}}, p);
  p.pop_back();
  EXPECT_EQ(ReplyErrno(Send(Command::kMigDataWrite, p)), EINVAL) << "payload short of size";
  EXPECT_EQ(ReplyErrno(WriteData(std::vector<uint8_t>(kMaxXfer + 1))), EINVAL);
}

TEST_F(SessionMigrationTest, ProbeEchoesAndGetMigrationAdvertisesPreCopy) {
  const uint32_t probes[] = {
      wire::DeviceFeatureFlags(DeviceFeature::kMigration,
                               wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet),
      wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState, wire::kDeviceFeatureProbe |
                                                                   wire::kDeviceFeatureGet |
                                                                   wire::kDeviceFeatureSet),
      wire::DeviceFeatureFlags(DeviceFeature::kMigDataSize,
                               wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet),
  };
  for (uint32_t flags : probes) {
    std::vector<uint8_t> p;
    wire::EncodeDeviceFeatureRequest({.argsz = 8, .flags = flags}, p);
    Session::Result r = Send(Command::kDeviceFeature, p);
    ASSERT_EQ(ReplyErrno(r), 0);
    EXPECT_THAT(ReplyPayload(r), ElementsAreArray(p));
  }
  Session::Result r = Feature(
      {.argsz = 16,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigration, wire::kDeviceFeatureGet)});
  ASSERT_EQ(ReplyErrno(r), 0);
  absl::StatusOr<wire::DeviceFeatureGetReply> reply =
      wire::DecodeDeviceFeatureGetReply(ReplyPayload(r), 0);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<wire::FeatureMigration>(reply->data).flags,
            wire::kMigrationStopCopy | wire::kMigrationPreCopy);
  // The SET's reply echoes its request too.
  std::vector<uint8_t> set;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 16,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState, wire::kDeviceFeatureSet),
       .data = wire::FeatureMigState{.device_state = 1}},
      set);
  Session::Result set_reply = Send(Command::kDeviceFeature, set);
  ASSERT_EQ(ReplyErrno(set_reply), 0);
  EXPECT_THAT(ReplyPayload(set_reply), ElementsAreArray(set));
}

TEST_F(SessionMigrationTest, NonMigratableDeviceRefusesEveryMigrationFeature) {
  device_.set_migratable(false);
  EXPECT_EQ(SetState(MigrationState::kStop), ENOTSUP);
  std::vector<uint8_t> p;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 8,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigration,
                                         wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet)},
      p);
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceFeature, p)), ENOTSUP);
  EXPECT_EQ(ReplyErrno(ReadData(4)), EINVAL);
  EXPECT_EQ(ReplyErrno(WriteData({1})), EINVAL);
  EXPECT_THAT(device_.arcs(), IsEmpty());
}

TEST_F(SessionMigrationTest, StopAndStopCopyGateOtherCommands) {
  Reach(MigrationState::kStop);
  EXPECT_EQ(ReplyErrno(RegionRead(0, 4)), 0);
  EXPECT_EQ(ReplyErrno(RegionWrite(0, {5})), 0);
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceGetInfo, std::vector<uint8_t>(16, 0))), EINVAL);
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceReset, {})), EINVAL);
  EXPECT_EQ(ReplyErrno(Map(0x10000)), EINVAL);
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kStop)) << "features still answer";

  Reach(MigrationState::kStopCopy);
  EXPECT_EQ(ReplyErrno(RegionRead(0, 4)), EINVAL);
  EXPECT_EQ(ReplyErrno(RegionWrite(0, {5})), EINVAL);
  EXPECT_EQ(ReplyErrno(Unmap(0x10000)), EINVAL);
  EXPECT_EQ(ReplyErrno(ReadData(4)), 0);
  EXPECT_THAT(device_.events(), IsEmpty()) << "refused commands never reach the device";

  // RESUMING accepts everything.
  Reach(MigrationState::kResuming);
  std::vector<uint8_t> info(16, 0);
  info[0] = 16;
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceGetInfo, info)), 0);
}

TEST_F(SessionMigrationTest, DeviceResetReturnsToRunning) {
  Reach(MigrationState::kPreCopy);
  ASSERT_EQ(ReplyErrno(Send(Command::kDeviceReset, {})), 0);
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kRunning));
  EXPECT_THAT(device_.events(), ElementsAre("quiesce reset", "reset (quiesced)", "unquiesce"));
  EXPECT_THAT(device_.arcs(), IsEmpty()) << "a reset is not an arc";
}

TEST_F(SessionMigrationTest, MigrationStateOutlivesTheSessionWhenShared) {
  MigrationEngine shared(device_);
  Connect(SessionOptions{.migration = &shared});
  Reach(MigrationState::kStop);
  session_->Detach();
  Connect(SessionOptions{.migration = &shared});
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kStop));
}

// ---- Quiesce ----

TEST_F(SessionMigrationTest, SynchronousQuiesceBracketsTheOperation) {
  ASSERT_EQ(ReplyErrno(Map(0x10000)), 0);
  ASSERT_EQ(ReplyErrno(Unmap(0x10000)), 0);
  std::vector<uint8_t> start;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 32,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, wire::kDeviceFeatureSet),
       .data = wire::DmaLoggingControl{.page_size = 4096}},
      start);
  ASSERT_EQ(ReplyErrno(Send(Command::kDeviceFeature, start)), 0);
  EXPECT_THAT(device_.events(),
              ElementsAre("quiesce DMA map", "map (quiesced)", "unquiesce", "quiesce DMA unmap",
                          "unmap (quiesced)", "unquiesce", "quiesce DMA logging", "unquiesce"));
  device_.ClearLog();
  // Plain region writes and reads need no quiesce.
  ASSERT_EQ(ReplyErrno(RegionWrite(4, {1})), 0);
  EXPECT_THAT(device_.events(), ElementsAre("write"));
}

TEST_F(SessionMigrationTest, FunctionLevelResetWriteIsQuiesced) {
  ASSERT_EQ(ReplyErrno(RegionWrite(0, {0xf1})), 0);
  EXPECT_THAT(device_.events(),
              ElementsAre("quiesce function-level reset", "write (quiesced)", "unquiesce"));
}

TEST_F(SessionMigrationTest, DeferredQuiesceParksTheCommandUntilTheDeviceAnswers) {
  ASSERT_EQ(ReplyErrno(Map(0x10000)), 0);
  device_.ClearLog();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);

  Session::Result parked = Unmap(0x10000);
  ASSERT_NE(parked.device_wait, nullptr);
  EXPECT_FALSE(parked.reply.has_value());
  EXPECT_TRUE(session_->waiting_for_device());
  EXPECT_THAT(device_.events(), ElementsAre("quiesce DMA unmap")) << "nothing unmapped yet";
  // A runtime that sent another command anyway gets EBUSY, not a reorder.
  EXPECT_EQ(ReplyErrno(RegionRead(0, 1)), EBUSY);

  absl::Notification ready;
  parked.device_wait->OnReady([&ready] { ready.Notify(); });
  std::thread device_thread([this] { EXPECT_TRUE(device_.CompleteQuiesce(absl::OkStatus())); });
  ASSERT_TRUE(ready.WaitForNotificationWithTimeout(absl::Seconds(30)));
  device_thread.join();

  Session::Result finished = session_->Continue();
  EXPECT_EQ(finished.device_wait, nullptr);
  EXPECT_EQ(ReplyErrno(finished), 0);
  EXPECT_EQ(wire::DecodeHeader(finished.reply->bytes).command,
            static_cast<uint16_t>(Command::kDmaUnmap));
  EXPECT_FALSE(session_->waiting_for_device());
  EXPECT_THAT(device_.events(),
              ElementsAre("quiesce DMA unmap", "unmap (quiesced)", "unquiesce"));
}

TEST_F(SessionMigrationTest, FailedQuiesceFailsTheCommandWithItsErrno) {
  device_.set_quiesce_mode(QuiesceMode::kFail, wire::WireError(EAGAIN, "jobs in flight"));
  EXPECT_EQ(ReplyErrno(Map(0x10000)), EAGAIN);
  EXPECT_EQ(context_.table().size(), 0u) << "not mapped";
  EXPECT_THAT(device_.events(), ElementsAre("quiesce DMA map")) << "no unquiesce";

  // The same failure, answered later.
  device_.ClearLog();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  Session::Result parked = Send(Command::kDeviceReset, {});
  ASSERT_NE(parked.device_wait, nullptr);
  ASSERT_TRUE(device_.CompleteQuiesce(wire::WireError(EBUSY, "still busy")));
  ASSERT_TRUE(parked.device_wait->ready());
  EXPECT_EQ(ReplyErrno(session_->Continue()), EBUSY);
  EXPECT_THAT(device_.events(), ElementsAre("quiesce reset"));
}

TEST_F(SessionMigrationTest, DroppedCompletionFailsTheCommand) {
  device_.set_quiesce_mode(QuiesceMode::kDrop);
  const int err = ReplyErrno(Map(0x10000));
  EXPECT_NE(err, 0);
  EXPECT_EQ(context_.table().size(), 0u);
}

TEST_F(SessionMigrationTest, DeferredQuiesceOfAStateChange) {
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  std::vector<uint8_t> p;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 16,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState, wire::kDeviceFeatureSet),
       .data = wire::FeatureMigState{.device_state = 3}},
      p);
  Session::Result parked = Send(Command::kDeviceFeature, p);
  ASSERT_NE(parked.device_wait, nullptr);
  EXPECT_THAT(device_.arcs(), IsEmpty());
  ASSERT_TRUE(device_.CompleteQuiesce(absl::OkStatus()));
  Session::Result done = session_->Continue();
  ASSERT_EQ(ReplyErrno(done), 0);
  EXPECT_THAT(ReplyPayload(done), ElementsAreArray(p));
  EXPECT_EQ(device_.arcs().size(), 2u);
  device_.set_quiesce_mode(QuiesceMode::kImmediate);
  EXPECT_EQ(GetState(), static_cast<uint32_t>(MigrationState::kStopCopy));
}

TEST_F(SessionMigrationTest, DetachQuiescesForTheLostConnection) {
  ASSERT_EQ(ReplyErrno(Map(0x10000)), 0);
  device_.ClearLog();
  session_->Detach();
  EXPECT_THAT(device_.events(), ElementsAre("quiesce lost connection", "unmap (quiesced)",
                                            "detach (quiesced)", "unquiesce"));
}

TEST_F(SessionMigrationTest, DetachGivesUpOnADeviceThatNeverQuiesces) {
  Connect(SessionOptions{.detach_quiesce_timeout = absl::Milliseconds(50)});
  ASSERT_EQ(ReplyErrno(Map(0x10000)), 0);
  device_.ClearLog();
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  Session::Result parked = Unmap(0x10000);
  ASSERT_NE(parked.device_wait, nullptr);
  const absl::Time start = absl::Now();
  session_->Detach();  // the parked command, then the detach's own quiesce
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_FALSE(session_->waiting_for_device());
  EXPECT_EQ(context_.table().size(), 0u) << "the client's memory is released anyway";
  std::vector<std::string> events = device_.events();
  EXPECT_EQ(std::count(events.begin(), events.end(), "unquiesce"), 0);
  // The device's late answer goes nowhere.
  EXPECT_TRUE(device_.CompleteQuiesce(absl::OkStatus()));
}

TEST_F(SessionMigrationTest, AbandonFailsTheParkedCommandWithEtimedout) {
  device_.set_quiesce_mode(QuiesceMode::kDeferred);
  Session::Result parked = Map(0x10000);
  ASSERT_NE(parked.device_wait, nullptr);
  bool called = false;
  parked.device_wait->OnReady([&called] { called = true; });
  EXPECT_EQ(ReplyErrno(session_->Abandon()), ETIMEDOUT);
  EXPECT_TRUE(device_.CompleteQuiesce(absl::OkStatus()));
  EXPECT_FALSE(called) << "the runtime's callback was dropped";
  EXPECT_EQ(context_.table().size(), 0u);
}

}  // namespace
}  // namespace vfu
