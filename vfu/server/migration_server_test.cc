// Migration through two running servers, driven over raw sockets as a
// client would: the source saves its device's state (PRE_COPY rounds,
// then STOP_COPY to the end of the stream) and the destination loads it
// (RESUMING, then RUNNING), after which the destination's device holds the
// source's bytes. A corrupted (short) stream is refused at RESUMING ->
// STOP and the destination stays RESUMING.
#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/engine/testing_migrating_device.h"
#include "vfu/server/server.h"
#include "vfu/server/server_test_util.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/migration_data.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

using testing::MigratingDevice;
using wire::Command;

// One served MigratingDevice and a raw client of it.
class Endpoint {
 public:
  explicit Endpoint(const std::string& path) : path_(path) {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Create();
    EXPECT_THAT(server, vfu::testing::IsOk());
    server_ = std::move(*server);
    EXPECT_THAT(server_->AddDevice(path_, device_), vfu::testing::IsOk());
    EXPECT_THAT(server_->Start(), vfu::testing::IsOk());
    fd_ = testing::RawNegotiatedClient(path_);
    EXPECT_EQ(testing::ReadMessages(fd_.get(), 1).size(), 1u);
  }
  ~Endpoint() {
    fd_.reset();
    server_->Stop();
  }

  // Sends one command and returns its reply (an error reply's errno in
  // `error`).
  InboundMessage Call(Command command, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> m = wire::StartMessage();
    m.insert(m.end(), payload.begin(), payload.end());
    wire::FinishMessage(wire::CommandHeader(next_id_++, command), m);
    testing::SendAll(fd_.get(), m);
    std::vector<InboundMessage> replies = testing::ReadMessages(fd_.get(), 1);
    EXPECT_EQ(replies.size(), 1u);
    return replies.empty() ? InboundMessage{} : std::move(replies[0]);
  }

  uint32_t SetState(uint32_t state) {
    std::vector<uint8_t> p;
    wire::EncodeDeviceFeatureRequest(
        {.argsz = 16,
         .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kMigDeviceState,
                                           wire::kDeviceFeatureSet),
         .data = wire::FeatureMigState{.device_state = state}},
        p);
    return Call(Command::kDeviceFeature, p).header.error;
  }

  // MIG_DATA_READ of up to `size` bytes; nullopt on an error reply.
  std::optional<std::vector<uint8_t>> Read(uint32_t size) {
    std::vector<uint8_t> p;
    wire::EncodeMigDataReadRequest({.argsz = 8 + size, .size = size}, p);
    InboundMessage reply = Call(Command::kMigDataRead, p);
    if (reply.header.is_error()) return std::nullopt;
    absl::StatusOr<wire::MigDataReadReply> data =
        wire::DecodeMigDataReadReply(reply.payload(), 0, size);
    EXPECT_TRUE(data.ok()) << data.status();
    if (!data.ok()) return std::nullopt;
    return std::vector<uint8_t>(data->data.begin(), data->data.end());
  }

  uint32_t Write(const std::vector<uint8_t>& data) {
    std::vector<uint8_t> p;
    wire::EncodeMigDataWriteRequest({.argsz = static_cast<uint32_t>(8 + data.size()), .data = data},
                                    p);
    return Call(Command::kMigDataWrite, p).header.error;
  }

  MigratingDevice& device() { return device_; }

 private:
  const std::string path_;
  MigratingDevice device_;
  std::unique_ptr<Server> server_;
  UniqueFd fd_;
  uint16_t next_id_ = 10;
};

constexpr uint32_t kStop = 1, kRunning = 2, kStopCopy = 3, kResuming = 4, kPreCopy = 6;

TEST(MigrationServerTest, DeviceStateMovesBetweenTwoServers) {
  testing::ScopedTempDir dir;
  Endpoint source(dir.File("source.sock"));
  Endpoint destination(dir.File("destination.sock"));

  std::vector<uint8_t> pattern(MigratingDevice::kStateSize);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(0xa0 ^ i);
  std::vector<uint8_t> write;
  wire::EncodeRegionWriteRequest({.offset = 0, .region = 0, .data = pattern}, write);
  ASSERT_EQ(source.Call(Command::kRegionWrite, write).header.error, 0u);

  // Source: pre-copy rounds until a short read, then stop-copy to the end.
  ASSERT_EQ(source.SetState(kPreCopy), 0u);
  std::vector<uint8_t> stream;
  int rounds = 0;
  for (;;) {
    std::optional<std::vector<uint8_t>> chunk = source.Read(8);
    ASSERT_TRUE(chunk.has_value());
    stream.insert(stream.end(), chunk->begin(), chunk->end());
    ++rounds;
    if (chunk->size() < 8) break;
  }
  EXPECT_GT(rounds, 1);
  ASSERT_EQ(source.SetState(kStopCopy), 0u);
  for (;;) {
    std::optional<std::vector<uint8_t>> chunk = source.Read(16);
    ASSERT_TRUE(chunk.has_value());
    stream.insert(stream.end(), chunk->begin(), chunk->end());
    if (chunk->size() < 16) break;
  }
  ASSERT_EQ(stream.size(), MigratingDevice::kStateSize);

  // Destination: a corrupted (short) stream is refused and it stays RESUMING.
  ASSERT_EQ(destination.SetState(kResuming), 0u);
  ASSERT_EQ(destination.Write(std::vector<uint8_t>(stream.begin(), stream.end() - 1)), 0u);
  EXPECT_EQ(destination.SetState(kRunning), static_cast<uint32_t>(EBADMSG));
  ASSERT_EQ(destination.SetState(kStop), static_cast<uint32_t>(EBADMSG)) << "still RESUMING";
  EXPECT_EQ(destination.device().memory()[0], 0) << "nothing applied";

  // The missing last byte completes the stream, and it is applied.
  ASSERT_EQ(destination.Write({stream.back()}), 0u);
  ASSERT_EQ(destination.SetState(kRunning), 0u);
  std::vector<uint8_t> read;
  wire::EncodeRegionReadRequest(
      {.offset = 0, .region = 0, .count = static_cast<uint32_t>(MigratingDevice::kStateSize)},
      read);
  InboundMessage reply = destination.Call(Command::kRegionRead, read);
  ASSERT_FALSE(reply.header.is_error());
  absl::StatusOr<wire::RegionAccessData> data = wire::DecodeRegionReadReply(reply.payload(), 0);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(std::vector<uint8_t>(data->data.begin(), data->data.end()), pattern);

  // The source, stopped, resumes after a failed migration: back to RUNNING.
  ASSERT_EQ(source.SetState(kStop), 0u);
  ASSERT_EQ(source.SetState(kRunning), 0u);
  EXPECT_EQ(source.Call(Command::kRegionRead, read).header.error, 0u);
}

}  // namespace
}  // namespace vfu
