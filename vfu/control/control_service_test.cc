// The control plane end to end over its UNIX socket: a real Server with
// MemoryDevices (ControlTestServer), real vfio-user clients, and the gRPC
// stubs any client would generate from proto/control.proto.
#include "vfu/control/grpc_guard.h"  // first: see the file

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/text_format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "proto/control.grpc.pb.h"
#include "vfu/control/testing/control_test_server.h"

namespace vfu::control {
namespace {

using testing::ControlTestServer;

class ControlServiceTest : public ::testing::Test {
 protected:
  void StartServer(ControlTestServer::Options options = {}) {
    std::string error;
    server_ = ControlTestServer::Start(options, &error);
    ASSERT_NE(server_, nullptr) << error;
    channel_ = grpc::CreateChannel("unix:" + server_->control_path(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::VfuControl::NewStub(channel_);
  }

  // A context whose deadline bounds a failing test.
  static std::unique_ptr<grpc::ClientContext> Context(int seconds = 60) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return context;
  }

  v1::ListDevicesResponse List() {
    v1::ListDevicesResponse response;
    grpc::Status status = stub_->ListDevices(Context().get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Stats(const std::string& device, v1::DeviceStats* stats) {
    v1::GetStatsRequest request;
    request.mutable_device()->set_device(device);
    v1::GetStatsResponse response;
    grpc::Status status = stub_->GetStats(Context().get(), request, &response);
    *stats = response.stats();
    return status;
  }

  // Command name -> {count, errors}.
  static std::map<std::string, std::pair<uint64_t, uint64_t>> Commands(const v1::DeviceStats& s) {
    std::map<std::string, std::pair<uint64_t, uint64_t>> out;
    for (const v1::CommandStats& c : s.commands()) out[c.command()] = {c.count(), c.errors()};
    return out;
  }

  std::unique_ptr<ControlTestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::VfuControl::Stub> stub_;
};

TEST_F(ControlServiceTest, HealthAndVersion) {
  StartServer({.devices = 2});
  v1::GetHealthResponse health;
  ASSERT_TRUE(stub_->GetHealth(Context().get(), {}, &health).ok());
  EXPECT_EQ(health.status(), "SERVING");
  EXPECT_EQ(health.api_version(), "vfu.control.v1");
  EXPECT_FALSE(health.server_version().empty());
  EXPECT_EQ(health.devices(), 2u);
  EXPECT_EQ(health.pid(), ::getpid());
}

TEST_F(ControlServiceTest, ListShowsDevicesAndTheAttachedClient) {
  StartServer({.devices = 2});
  const int client = server_->Connect(1);
  ASSERT_GT(client, 0);
  v1::ListDevicesResponse list = List();
  ASSERT_EQ(list.devices_size(), 2);
  const v1::DeviceInfo& idle = list.devices(0);
  EXPECT_EQ(idle.name(), "dev0");
  EXPECT_EQ(idle.socket_path(), server_->device_path(0));
  EXPECT_FALSE(idle.has_client());
  EXPECT_EQ(idle.migration_state(), v1::MIGRATION_STATE_UNKNOWN);
  // MemoryDevice: 64 KiB BAR0, described from the device.
  EXPECT_FALSE(idle.spec_complete());
  ASSERT_GE(idle.spec().regions_size(), 1);
  EXPECT_EQ(idle.spec().regions(0).index(), 0u);
  EXPECT_EQ(idle.spec().regions(0).size(), 64u * 1024);

  const v1::DeviceInfo& busy = list.devices(1);
  EXPECT_EQ(busy.name(), "dev1");
  ASSERT_TRUE(busy.has_client());
  EXPECT_EQ(busy.client().pid(), ::getpid());
  EXPECT_EQ(busy.client().uid(), ::getuid());
  EXPECT_TRUE(busy.client().negotiated());
  EXPECT_EQ(busy.client().version_major(), 0u);
  EXPECT_GT(busy.client().max_data_xfer_size(), 0u);
}

TEST_F(ControlServiceTest, StatsMatchAKnownSequenceExactly) {
  StartServer();
  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(server_->RegionRead(client, 0, 4), 0);
  ASSERT_EQ(server_->RegionWrite(client, 8, {1, 2}), 0);
  ASSERT_EQ(server_->RegionRead(client, 64 * 1024, 4), EINVAL);  // past BAR0
  ASSERT_EQ(server_->Reset(client), 0);

  v1::DeviceStats stats;
  grpc::Status status = Stats("dev0", &stats);
  ASSERT_TRUE(status.ok()) << status.error_message();
  using Counts = std::map<std::string, std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(Commands(stats), (Counts{{"VERSION", {1, 0}},
                                     {"REGION_READ", {4, 1}},
                                     {"REGION_WRITE", {1, 0}},
                                     {"DEVICE_RESET", {1, 0}}}));
  ASSERT_EQ(stats.errors_size(), 1);
  EXPECT_EQ(stats.errors(0).errno_value(), static_cast<uint32_t>(EINVAL));
  EXPECT_EQ(stats.errors(0).errno_name(), "EINVAL");
  EXPECT_EQ(stats.errors(0).count(), 1u);
  EXPECT_EQ(stats.region_bytes_read(), 12u);
  EXPECT_EQ(stats.region_bytes_written(), 2u);
  EXPECT_EQ(stats.clients_connected(), 1u);
  EXPECT_EQ(stats.clients_served(), 1u);
  EXPECT_EQ(stats.clients_refused(), 0u);
  EXPECT_EQ(stats.dma_messages(), 0u);
  for (const v1::CommandStats& c : stats.commands()) {
    uint64_t in_buckets = 0;
    for (uint64_t b : c.latency().buckets()) in_buckets += b;
    EXPECT_EQ(in_buckets, c.count()) << c.command();
    EXPECT_EQ(c.latency().count(), c.count()) << c.command();
  }
  // By socket path too.
  ASSERT_TRUE(Stats(server_->device_path(0), &stats).ok());
  EXPECT_EQ(stats.name(), "dev0");
}

// Reads events from a feed until `count` arrived (bounded by the deadline).
std::vector<v1::Event> ReadEvents(grpc::ClientReader<v1::Event>& reader, size_t count) {
  std::vector<v1::Event> events;
  v1::Event event;
  while (events.size() < count && reader.Read(&event)) events.push_back(event);
  return events;
}

TEST_F(ControlServiceTest, EventFeedReportsInOrder) {
  StartServer();
  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::Event>> feed =
      stub_->WatchEvents(context.get(), v1::WatchEventsRequest());
  // The device's addition is still buffered.
  std::vector<v1::Event> first = ReadEvents(*feed, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].kind(), v1::Event::DEVICE_ADDED);
  EXPECT_EQ(first[0].device(), "dev0");

  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  ASSERT_EQ(server_->Reset(client), 0);
  ASSERT_EQ(server_->RegionRead(client, 64 * 1024, 4), EINVAL);  // past BAR0
  server_->Disconnect(client);
  std::vector<v1::Event> events = ReadEvents(*feed, 4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].kind(), v1::Event::CLIENT_ATTACHED);
  EXPECT_EQ(events[0].client().pid(), ::getpid());
  EXPECT_EQ(events[1].kind(), v1::Event::DEVICE_RESET);
  EXPECT_EQ(events[2].kind(), v1::Event::PROTOCOL_ERROR);
  EXPECT_EQ(events[2].command(), "REGION_READ");
  EXPECT_EQ(events[2].errno_value(), static_cast<uint32_t>(EINVAL));
  EXPECT_EQ(events[3].kind(), v1::Event::CLIENT_DETACHED);
  EXPECT_FALSE(events[3].reason().empty());

  // After the detach, so it cannot run on the departing client's strand.
  v1::ResetDeviceRequest reset;
  reset.mutable_device()->set_device("dev0");
  v1::ResetDeviceResponse reset_response;
  ASSERT_TRUE(stub_->ResetDevice(Context().get(), reset, &reset_response).ok());
  std::vector<v1::Event> last = ReadEvents(*feed, 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].kind(), v1::Event::DEVICE_RESET);
  EXPECT_EQ(last[0].reason(), "reset by the control plane");
  events.push_back(last[0]);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), first[0].sequence() + 1 + i);
    EXPECT_EQ(events[i].device(), "dev0");
    EXPECT_EQ(events[i].dropped_before(), 0u);
  }
  context->TryCancel();
}

TEST_F(ControlServiceTest, ResetDeviceResetsIt) {
  StartServer();
  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  v1::ResetDeviceRequest request;
  request.mutable_device()->set_device("dev0");
  v1::ResetDeviceResponse response;
  ASSERT_TRUE(stub_->ResetDevice(Context().get(), request, &response).ok());
  EXPECT_EQ(server_->device_resets(0), 1);
  // The client is still served.
  EXPECT_EQ(server_->RegionRead(client, 0, 4), 0);
}

v1::AddDeviceRequest AddRequest(const std::string& path, const std::string& spec_text) {
  v1::AddDeviceRequest request;
  request.set_socket_path(path);
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(spec_text, request.mutable_spec()));
  return request;
}

constexpr char kStubSpec[] = R"pb(
  name: "stub"
  identity { vendor_id: 0x1af4 device_id: 0x1000 class_code: 0x020000 }
  regions { index: 0 size: 4096 readable: true writable: true }
)pb";

TEST_F(ControlServiceTest, AddAndRemoveWhileAnotherClientIsAttached) {
  StartServer();
  const int bystander = server_->Connect(0);
  ASSERT_GT(bystander, 0);
  ASSERT_EQ(server_->RegionWrite(bystander, 0, {5, 6}), 0);

  const std::string path = server_->dir() + "/added.sock";
  v1::AddDeviceResponse added;
  grpc::Status status = stub_->AddDevice(Context().get(), AddRequest(path, kStubSpec), &added);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(added.device().name(), "stub");
  EXPECT_TRUE(added.device().spec_complete());
  EXPECT_EQ(added.device().spec().identity().vendor_id(), 0x1af4u);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const int client = server_->ConnectPath(path);
  ASSERT_GT(client, 0);
  ASSERT_EQ(server_->RegionWrite(client, 0, {1, 2, 3, 4}), 0);
  ASSERT_EQ(List().devices_size(), 2);

  v1::RemoveDeviceRequest remove;
  remove.mutable_device()->set_device("stub");
  v1::RemoveDeviceResponse removed;
  status = stub_->RemoveDevice(Context().get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket left behind";
  // Its client was disconnected; the other one was not.
  EXPECT_EQ(server_->RegionRead(client, 0, 4), -1);
  EXPECT_EQ(server_->RegionRead(bystander, 0, 2), 0);
  v1::ListDevicesResponse list = List();
  ASSERT_EQ(list.devices_size(), 1);
  EXPECT_EQ(list.devices(0).name(), "dev0");
  EXPECT_TRUE(list.devices(0).has_client());
}

TEST_F(ControlServiceTest, BadRequestsGetPreciseErrors) {
  StartServer();
  v1::AddDeviceResponse added;
  // A region of size 0.
  grpc::Status status = stub_->AddDevice(
      Context().get(),
      AddRequest(server_->dir() + "/bad.sock", "regions { index: 0 size: 0 readable: true }"),
      &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec: "), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("region 0"), std::string::npos) << status.error_message();
  EXPECT_NE(::access((server_->dir() + "/bad.sock").c_str(), F_OK), 0);

  status = stub_->AddDevice(Context().get(), AddRequest("", kStubSpec), &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("socket_path"), std::string::npos);

  v1::AddDeviceRequest no_spec;
  no_spec.set_socket_path(server_->dir() + "/x.sock");
  status = stub_->AddDevice(Context().get(), no_spec, &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec"), std::string::npos);

  v1::AddDeviceRequest bad_mode = AddRequest(server_->dir() + "/y.sock", kStubSpec);
  bad_mode.set_socket_mode(01777);
  status = stub_->AddDevice(Context().get(), bad_mode, &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("socket_mode"), std::string::npos);

  status = stub_->AddDevice(Context().get(), AddRequest(server_->device_path(0), kStubSpec),
                            &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  v1::DeviceStats stats;
  EXPECT_EQ(Stats("nope", &stats).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Stats("", &stats).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::RemoveDeviceRequest remove;
  remove.mutable_device()->set_device("nope");
  v1::RemoveDeviceResponse removed;
  EXPECT_EQ(stub_->RemoveDevice(Context().get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ResetDeviceRequest reset;
  reset.mutable_device()->set_device("nope");
  v1::ResetDeviceResponse reset_response;
  EXPECT_EQ(stub_->ResetDevice(Context().get(), reset, &reset_response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControlServiceTest, MigrationOperationsAreNotImplementedYet) {
  StartServer();
  v1::SaveStateRequest save;
  save.mutable_device()->set_device("dev0");
  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::StateChunk>> reader =
      stub_->SaveState(context.get(), save);
  v1::StateChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(status.error_message().find("migration"), std::string::npos);

  v1::SetMigrationStateRequest set;
  set.mutable_device()->set_device("dev0");
  set.set_state(v1::MIGRATION_STATE_STOP);
  v1::SetMigrationStateResponse set_response;
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &set_response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  auto load_context = Context();
  v1::LoadStateResponse loaded;
  std::unique_ptr<grpc::ClientWriter<v1::StateChunk>> writer =
      stub_->LoadState(load_context.get(), &loaded);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ControlServiceTest, ControlSocketIsPrivateByDefault) {
  StartServer();
  struct stat st;
  ASSERT_EQ(::stat(server_->control_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ControlServiceTest, ControlSocketModeIsConfigurable) {
  StartServer({.control_mode = 0660});
  struct stat st;
  ASSERT_EQ(::stat(server_->control_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(ControlServiceTest, ConcurrentRequestsAreSafe) {
  StartServer({.devices = 2});
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string path = server_->dir() + "/c" + std::to_string(t) + ".sock";
      for (int round = 0; round < 5; ++round) {
        v1::AddDeviceResponse added;
        grpc::Status status =
            stub_->AddDevice(Context().get(), AddRequest(path, "regions { index: 0 size: 4096 readable: true }"), &added);
        EXPECT_TRUE(status.ok()) << status.error_message();
        v1::ListDevicesResponse list;
        EXPECT_TRUE(stub_->ListDevices(Context().get(), {}, &list).ok());
        v1::DeviceStats stats;
        EXPECT_TRUE(Stats(path, &stats).ok());
        v1::RemoveDeviceRequest remove;
        remove.mutable_device()->set_device(path);
        v1::RemoveDeviceResponse removed;
        status = stub_->RemoveDevice(Context().get(), remove, &removed);
        EXPECT_TRUE(status.ok()) << status.error_message();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(List().devices_size(), 2);
}

}  // namespace
}  // namespace vfu::control
