// Migration v2 through the C callbacks: a client saves a device served by
// one context (STOP_COPY, MIG_DATA_READ) and loads the stream into another
// (RESUMING, MIG_DATA_WRITE); the transition callbacks see every arc of the
// engine's path, after a quiesce, and the stream arrives intact.
#include <pthread.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "libvfio-user.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/device/migration_state.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/migration_data.h"

namespace vfu::capi {
namespace {

using ::vfu::testing::ScopedTempDir;
using wire::DeviceFeature;

// One device's migration side; touched by its server thread only until
// the test joins it.
struct MigratingDevice {
  std::vector<uint8_t> state;     // what a save streams
  size_t read_offset = 0;
  std::vector<uint8_t> received;  // what a load got
  std::vector<vfu_migr_state_t> transitions;
  int quiesces = 0;
};

MigratingDevice& Of(vfu_ctx_t* ctx) { return *static_cast<MigratingDevice*>(vfu_get_private(ctx)); }

int Transition(vfu_ctx_t* ctx, vfu_migr_state_t state) {
  Of(ctx).transitions.push_back(state);
  if (state == VFU_MIGR_STATE_STOP_AND_COPY) Of(ctx).read_offset = 0;
  return 0;
}

ssize_t ReadData(vfu_ctx_t* ctx, void* buf, uint64_t count) {
  MigratingDevice& device = Of(ctx);
  const size_t n = std::min<size_t>(count, device.state.size() - device.read_offset);
  std::memcpy(buf, device.state.data() + device.read_offset, n);
  device.read_offset += n;
  return static_cast<ssize_t>(n);
}

ssize_t WriteData(vfu_ctx_t* ctx, void* buf, uint64_t count) {
  auto* bytes = static_cast<uint8_t*>(buf);
  Of(ctx).received.insert(Of(ctx).received.end(), bytes, bytes + count);
  return static_cast<ssize_t>(count);
}

int Quiesce(vfu_ctx_t* ctx) {
  ++Of(ctx).quiesces;
  return 0;
}

// A blocking context serving one client on its own thread.
class ServedContext {
 public:
  ServedContext(const std::string& path, MigratingDevice& device) {
    ctx_ = vfu_create_ctx(VFU_TRANS_SOCK, path.c_str(), 0, &device, VFU_DEV_TYPE_PCI);
    EXPECT_NE(ctx_, nullptr);
    const vfu_migration_callbacks_t callbacks = {VFU_MIGR_CALLBACKS_VERS, Transition, ReadData,
                                                 WriteData};
    EXPECT_EQ(vfu_setup_device_migration_callbacks(ctx_, 0, &callbacks), 0);
    vfu_setup_device_quiesce_cb(ctx_, Quiesce);
    EXPECT_EQ(vfu_realize_ctx(ctx_), 0);
    thread_ = std::thread([this] {
      if (vfu_attach_ctx(ctx_) != 0) return;
      run_result_ = vfu_run_ctx(ctx_);
      run_errno_ = errno;
    });
  }
  // Waits for the client to have left.
  void Join() {
    thread_.join();
    EXPECT_EQ(run_result_, -1);
    EXPECT_EQ(run_errno_, ENOTCONN);
  }
  ~ServedContext() { vfu_destroy_ctx(ctx_); }

 private:
  vfu_ctx_t* ctx_ = nullptr;
  std::thread thread_;
  int run_result_ = 0;
  int run_errno_ = 0;
};

absl::Status SetState(Client& client, MigrationState state) {
  std::vector<uint8_t> payload;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 16,
       .flags = wire::DeviceFeatureFlags(DeviceFeature::kMigDeviceState, wire::kDeviceFeatureSet),
       .data = wire::FeatureMigState{.device_state = static_cast<uint32_t>(state)}},
      payload);
  return client.Call(wire::Command::kDeviceFeature, payload).status();
}

TEST(MigrationTest, SaveOnOneContextAndLoadOnAnother) {
  ScopedTempDir dir("vfu-capi");
  MigratingDevice source;
  for (int i = 0; i < 3000; ++i) source.state.push_back(static_cast<uint8_t>(i * 7));
  std::vector<uint8_t> stream;
  {
    ServedContext served(dir.path() + "/a.sock", source);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(dir.path() + "/a.sock"));
    ASSERT_OK(SetState(*client, MigrationState::kStopCopy));
    for (;;) {
      std::vector<uint8_t> payload;
      wire::EncodeMigDataReadRequest({.argsz = 8 + 1024, .size = 1024}, payload);
      ASSERT_OK_AND_ASSIGN(Reply reply, client->Call(wire::Command::kMigDataRead, payload));
      ASSERT_OK_AND_ASSIGN(wire::MigDataReadReply data,
                           wire::DecodeMigDataReadReply(reply.payload(), 0, 1024));
      stream.insert(stream.end(), data.data.begin(), data.data.end());
      if (data.data.size() < 1024) break;
    }
    ASSERT_OK(SetState(*client, MigrationState::kRunning));
    client.reset();
    served.Join();
  }
  EXPECT_EQ(stream, source.state);
  EXPECT_EQ(source.transitions,
            (std::vector<vfu_migr_state_t>{VFU_MIGR_STATE_STOP, VFU_MIGR_STATE_STOP_AND_COPY,
                                           VFU_MIGR_STATE_STOP, VFU_MIGR_STATE_RUNNING}));
  EXPECT_EQ(source.quiesces, 2);

  MigratingDevice destination;
  {
    ServedContext served(dir.path() + "/b.sock", destination);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(dir.path() + "/b.sock"));
    ASSERT_OK(SetState(*client, MigrationState::kResuming));
    for (size_t at = 0; at < stream.size(); at += 2000) {
      const size_t n = std::min<size_t>(2000, stream.size() - at);
      std::vector<uint8_t> payload;
      wire::EncodeMigDataWriteRequest(
          {.argsz = static_cast<uint32_t>(8 + n), .data = absl::MakeConstSpan(stream).subspan(at, n)},
          payload);
      ASSERT_OK(client->Call(wire::Command::kMigDataWrite, payload).status());
    }
    ASSERT_OK(SetState(*client, MigrationState::kRunning));
    // Data is refused outside the states that carry it.
    std::vector<uint8_t> payload;
    wire::EncodeMigDataReadRequest({.argsz = 8 + 16, .size = 16}, payload);
    EXPECT_FALSE(client->Call(wire::Command::kMigDataRead, payload).ok());
    client.reset();
    served.Join();
  }
  EXPECT_EQ(destination.received, source.state);
  EXPECT_EQ(destination.transitions,
            (std::vector<vfu_migr_state_t>{VFU_MIGR_STATE_STOP, VFU_MIGR_STATE_RESUME,
                                           VFU_MIGR_STATE_STOP, VFU_MIGR_STATE_RUNNING}));
}

TEST(MigrationTest, CallbacksAreChecked) {
  ScopedTempDir dir("vfu-capi");
  vfu_ctx_t* ctx = vfu_create_ctx(VFU_TRANS_SOCK, (dir.path() + "/c.sock").c_str(),
                                  LIBVFIO_USER_FLAG_ATTACH_NB, nullptr, VFU_DEV_TYPE_PCI);
  ASSERT_NE(ctx, nullptr);
  vfu_migration_callbacks_t callbacks = {1, Transition, ReadData, WriteData};
  errno = 0;
  EXPECT_EQ(vfu_setup_device_migration_callbacks(ctx, 0, &callbacks), -1);
  EXPECT_EQ(errno, EINVAL);
  callbacks.version = VFU_MIGR_CALLBACKS_VERS;
  callbacks.read_data = nullptr;
  EXPECT_EQ(vfu_setup_device_migration_callbacks(ctx, 0, &callbacks), -1);
  callbacks.read_data = ReadData;
  EXPECT_EQ(vfu_setup_device_migration_callbacks(ctx, 1u << 5, &callbacks), -1);
  EXPECT_EQ(vfu_setup_device_migration_callbacks(ctx, LIBVFIO_USER_MIG_FLAG_HAVE_DATA, &callbacks),
            0);
  vfu_destroy_ctx(ctx);
}

}  // namespace
}  // namespace vfu::capi
