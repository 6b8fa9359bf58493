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

  // Polls (with a deadline) until the server has seen device 0's client
  // leave: a Disconnect is noticed asynchronously.
  bool WaitDetached() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!List().devices(0).has_client()) return true;
      std::this_thread::yield();
    }
    return false;
  }

  // An event feed read past what was already buffered, up to and
  // including the client's attach.
  struct FeedAfterAttach {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::Event>> reader;
    bool attached = false;  // the attach was read
    uint64_t attached_sequence = 0;
  };
  FeedAfterAttach WatchAfterAttach() {
    FeedAfterAttach feed;
    feed.context = Context();
    feed.reader = stub_->WatchEvents(feed.context.get(), v1::WatchEventsRequest());
    v1::Event event;
    while (feed.reader->Read(&event)) {
      if (event.kind() != v1::Event::CLIENT_ATTACHED) continue;
      feed.attached = true;
      feed.attached_sequence = event.sequence();
      break;
    }
    return feed;
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
  EXPECT_EQ(idle.migration_state(), v1::MIGRATION_STATE_NOT_SUPPORTED);
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

// GpioDevice registers (devices/gpio/gpio_device.h).
constexpr uint64_t kGpioOutput = 0x0c;
constexpr uint64_t kGpioDirection = 0x10;
constexpr uint64_t kGpioIrqEnable = 0x14;

grpc::Status SaveDeviceState(v1::VfuControl::Stub& stub, const std::string& device,
                             std::vector<std::string>* chunks) {
  v1::SaveStateRequest request;
  request.mutable_device()->set_device(device);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::unique_ptr<grpc::ClientReader<v1::StateChunk>> reader = stub.SaveState(&context, request);
  v1::StateChunk chunk;
  while (reader->Read(&chunk)) chunks->push_back(chunk.data());
  return reader->Finish();
}

grpc::Status LoadDeviceState(v1::VfuControl::Stub& stub, const std::string& device,
                             const std::vector<std::string>& chunks, uint64_t* loaded) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::LoadStateResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::StateChunk>> writer = stub.LoadState(&context, &response);
  for (size_t i = 0; i < chunks.size(); ++i) {
    v1::StateChunk chunk;
    if (i == 0) chunk.mutable_device()->set_device(device);
    chunk.set_data(chunks[i]);
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  *loaded = response.bytes_loaded();
  return status;
}

std::vector<v1::MigrationState> MigrationStates(const std::vector<v1::Event>& events) {
  std::vector<v1::MigrationState> states;
  for (const v1::Event& e : events) {
    EXPECT_EQ(e.kind(), v1::Event::MIGRATION_STATE_CHANGED);
    states.push_back(e.migration_state());
  }
  return states;
}

TEST_F(ControlServiceTest, ListShowsMigrationStates) {
  StartServer();
  EXPECT_EQ(List().devices(0).migration_state(), v1::MIGRATION_STATE_NOT_SUPPORTED);
  std::string error;
  auto gpio = ControlTestServer::Start({.gpio = true}, &error);
  ASSERT_NE(gpio, nullptr) << error;
  auto stub = v1::VfuControl::NewStub(
      grpc::CreateChannel("unix:" + gpio->control_path(), grpc::InsecureChannelCredentials()));
  v1::ListDevicesResponse list;
  ASSERT_TRUE(stub->ListDevices(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.devices_size(), 1);
  EXPECT_EQ(list.devices(0).migration_state(), v1::MIGRATION_STATE_RUNNING);
}

TEST_F(ControlServiceTest, SaveStateFromOneServerLoadsIntoAnother) {
  StartServer({.gpio = true});
  std::string error;
  auto destination = ControlTestServer::Start({.gpio = true}, &error);
  ASSERT_NE(destination, nullptr) << error;
  auto destination_stub = v1::VfuControl::NewStub(grpc::CreateChannel(
      "unix:" + destination->control_path(), grpc::InsecureChannelCredentials()));

  const int source_client = server_->Connect(0);
  ASSERT_GT(source_client, 0);
  ASSERT_EQ(server_->WriteRegister(source_client, kGpioDirection, 0x00ff), 0);
  ASSERT_EQ(server_->WriteRegister(source_client, kGpioOutput, 0x00a5), 0);
  ASSERT_EQ(server_->WriteRegister(source_client, kGpioIrqEnable, 0x0300), 0);
  // The client owns the migration while attached.
  std::vector<std::string> chunks;
  grpc::Status refused = SaveDeviceState(*stub_, "dev0", &chunks);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("client"), std::string::npos);
  server_->Disconnect(source_client);
  ASSERT_TRUE(WaitDetached());

  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::Event>> feed =
      stub_->WatchEvents(context.get(), v1::WatchEventsRequest());
  chunks.clear();
  grpc::Status saved = SaveDeviceState(*stub_, "dev0", &chunks);
  ASSERT_TRUE(saved.ok()) << saved.error_message();
  ASSERT_FALSE(chunks.empty());
  // The snapshot went through STOP_COPY and back.
  std::vector<v1::Event> events;
  v1::Event event;
  while (events.size() < 4 && feed->Read(&event)) {
    if (event.kind() == v1::Event::MIGRATION_STATE_CHANGED) events.push_back(event);
  }
  EXPECT_EQ(MigrationStates(events),
            (std::vector<v1::MigrationState>{v1::MIGRATION_STATE_STOP,
                                             v1::MIGRATION_STATE_STOP_COPY,
                                             v1::MIGRATION_STATE_STOP,
                                             v1::MIGRATION_STATE_RUNNING}));
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), events[i - 1].sequence() + 1);
  }
  context->TryCancel();
  EXPECT_EQ(List().devices(0).migration_state(), v1::MIGRATION_STATE_RUNNING);

  uint64_t loaded = 0;
  grpc::Status load = LoadDeviceState(*destination_stub, "dev0", chunks, &loaded);
  ASSERT_TRUE(load.ok()) << load.error_message();
  size_t total = 0;
  for (const std::string& c : chunks) total += c.size();
  EXPECT_EQ(loaded, total);

  const int destination_client = destination->Connect(0);
  ASSERT_GT(destination_client, 0);
  uint32_t value = 0;
  ASSERT_EQ(destination->ReadRegister(destination_client, kGpioDirection, &value), 0);
  EXPECT_EQ(value, 0x00ffu);
  ASSERT_EQ(destination->ReadRegister(destination_client, kGpioOutput, &value), 0);
  EXPECT_EQ(value, 0x00a5u);
  ASSERT_EQ(destination->ReadRegister(destination_client, kGpioIrqEnable, &value), 0);
  EXPECT_EQ(value, 0x0300u);
}

TEST_F(ControlServiceTest, LoadStateRejectsGarbageAndBadRequests) {
  StartServer({.gpio = true});
  uint64_t loaded = 0;
  EXPECT_EQ(LoadDeviceState(*stub_, "nope", {"x"}, &loaded).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(LoadDeviceState(*stub_, "dev0", {}, &loaded).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status garbage = LoadDeviceState(*stub_, "dev0", {"not a migration stream"}, &loaded);
  EXPECT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ControlServiceTest, SetMigrationStateDrivesTheDevice) {
  StartServer({.gpio = true});
  v1::SetMigrationStateRequest set;
  set.mutable_device()->set_device("dev0");
  set.set_state(v1::MIGRATION_STATE_STOP);
  v1::SetMigrationStateResponse response;

  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(List().devices(0).migration_state(), v1::MIGRATION_STATE_RUNNING);
  server_->Disconnect(client);
  ASSERT_TRUE(WaitDetached());

  grpc::Status status = stub_->SetMigrationState(Context().get(), set, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state(), v1::MIGRATION_STATE_STOP);
  EXPECT_EQ(List().devices(0).migration_state(), v1::MIGRATION_STATE_STOP);

  set.set_state(v1::MIGRATION_STATE_RUNNING_P2P);  // the device cannot reach it
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  set.set_state(v1::MIGRATION_STATE_NOT_SUPPORTED);
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  set.set_state(v1::MIGRATION_STATE_RUNNING);
  ASSERT_TRUE(stub_->SetMigrationState(Context().get(), set, &response).ok());
  EXPECT_EQ(response.state(), v1::MIGRATION_STATE_RUNNING);
  set.mutable_device()->set_device("nope");
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

constexpr uint64_t kGpioIrqStatus = 0x18;
constexpr uint64_t kGpioControl = 0x1c;

TEST_F(ControlServiceTest, StatsCountInterruptsExactly) {
  StartServer({.gpio = true});
  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  ASSERT_EQ(server_->EnableIrq(client, 0), 0);  // INTx: masks itself on delivery
  ASSERT_EQ(server_->WriteRegister(client, kGpioIrqEnable, 0x2), 0);
  ASSERT_EQ(server_->WriteRegister(client, kGpioControl, 1), 0);  // loopback
  ASSERT_EQ(server_->WriteRegister(client, kGpioOutput, 0x2), 0);  // line 1 rises: event
  EXPECT_EQ(server_->WaitIrq(client, 60000), 1u);
  // The device raises its level and an edge (its MSI rule, routed to INTx):
  // the level is delivered and masks INTx, so the edge waits, pending.
  v1::DeviceStats stats;
  ASSERT_TRUE(Stats("dev0", &stats).ok());
  EXPECT_EQ(stats.interrupts_raised(), 1u);
  EXPECT_EQ(stats.interrupts_coalesced(), 0u);
  EXPECT_EQ(stats.interrupts_pending(), 1u);

  // Acknowledged, and a new event while INTx is still in service: held
  // until the client's unmask delivers it.
  ASSERT_EQ(server_->WriteRegister(client, kGpioIrqStatus, 0x2), 0);
  ASSERT_EQ(server_->WriteRegister(client, kGpioOutput, 0), 0);  // line 1 falls: event
  ASSERT_TRUE(Stats("dev0", &stats).ok());
  EXPECT_EQ(stats.interrupts_raised(), 1u);
  EXPECT_EQ(stats.interrupts_pending(), 1u);
  ASSERT_EQ(server_->UnmaskIrq(client, 0), 0);
  EXPECT_EQ(server_->WaitIrq(client, 60000), 1u);
  ASSERT_TRUE(Stats("dev0", &stats).ok());
  EXPECT_EQ(stats.interrupts_raised(), 2u);
  EXPECT_EQ(stats.interrupts_coalesced(), 0u);
  EXPECT_EQ(stats.interrupts_pending(), 0u);
}

constexpr char kExpressSpec[] = R"pb(
  name: "express"
  identity { vendor_id: 0x1af4 device_id: 0x1000 class_code: 0x020000 }
  express: true
  regions { index: 0 size: 4096 readable: true writable: true }
)pb";

// The offset of the PCI Express capability in the client's device's
// config space, found through the capability list; 0 if there is none, -1
// if a read fails.
int ExpressCapability(ControlTestServer& server, int client) {
  std::vector<uint8_t> byte;
  if (server.ConfigRead(client, 0x34, 1, &byte) != 0 || byte.size() != 1) return -1;
  uint8_t cap = byte[0];
  for (int hops = 0; cap != 0 && hops < 48; ++hops) {
    std::vector<uint8_t> header;
    if (server.ConfigRead(client, cap, 2, &header) != 0 || header.size() != 2) return -1;
    if (header[0] == 0x10) return cap;  // PCI_CAP_ID_EXP
    cap = header[1];
  }
  return 0;
}

// An express device added at runtime, with a client attached: the client
// and the offset of its PCI Express capability (0 or less: failed).
std::pair<int, int> AttachExpressClient(ControlTestServer& server, v1::VfuControl::Stub& stub,
                                        grpc::ClientContext* context) {
  const std::string path = server.dir() + "/express.sock";
  v1::AddDeviceResponse added;
  if (!stub.AddDevice(context, AddRequest(path, kExpressSpec), &added).ok()) return {-1, -1};
  const int client = server.ConnectPath(path);
  if (client <= 0) return {client, -1};
  return {client, ExpressCapability(server, client)};
}

TEST_F(ControlServiceTest, FunctionLevelResetIsAnEventInOrder) {
  StartServer();
  const auto [client, cap] = AttachExpressClient(*server_, *stub_, Context().get());
  ASSERT_GT(client, 0);
  ASSERT_GT(cap, 0);
  FeedAfterAttach feed = WatchAfterAttach();
  ASSERT_TRUE(feed.attached);
  // An ordinary config write is no FLR; DEVCTL's Initiate FLR bit is.
  ASSERT_EQ(server_->ConfigWrite(client, 0x04, {0x02, 0x00}), 0);  // memory space enable
  ASSERT_EQ(server_->ConfigWrite(client, cap + 8, {0x00, 0x80}), 0);  // DEVCTL: BCR_FLR
  server_->Disconnect(client);
  std::vector<v1::Event> events = ReadEvents(*feed.reader, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind(), v1::Event::DEVICE_FLR);
  EXPECT_EQ(events[0].device(), "express");
  EXPECT_EQ(events[0].sequence(), feed.attached_sequence + 1);
  EXPECT_EQ(events[1].kind(), v1::Event::CLIENT_DETACHED);
  EXPECT_EQ(events[1].sequence(), feed.attached_sequence + 2);
  feed.context->TryCancel();
}

// A posted (NO_REPLY) Initiate FLR resets the function all the same: one
// DEVICE_FLR event, before the client's detach.
TEST_F(ControlServiceTest, PostedFunctionLevelResetIsOneEvent) {
  StartServer();
  const auto [client, cap] = AttachExpressClient(*server_, *stub_, Context().get());
  ASSERT_GT(client, 0);
  ASSERT_GT(cap, 0);
  FeedAfterAttach feed = WatchAfterAttach();
  ASSERT_TRUE(feed.attached);
  ASSERT_EQ(server_->ConfigWrite(client, cap + 8, {0x00, 0x80}, /*posted=*/true), 0);
  // Commands run in order: once this read is answered the reset is done.
  std::vector<uint8_t> devctl;
  ASSERT_EQ(server_->ConfigRead(client, cap + 8, 2, &devctl), 0);
  server_->Disconnect(client);
  // Everything up to the detach (which always comes), so a missing or a
  // doubled event shows without waiting out a deadline.
  std::vector<v1::Event::Kind> kinds;
  v1::Event event;
  while (feed.reader->Read(&event)) {
    kinds.push_back(event.kind());
    if (event.kind() == v1::Event::CLIENT_DETACHED) break;
  }
  EXPECT_EQ(kinds, (std::vector<v1::Event::Kind>{v1::Event::DEVICE_FLR,
                                                 v1::Event::CLIENT_DETACHED}));
  feed.context->TryCancel();
}

TEST_F(ControlServiceTest, ClientDrivenMigrationStateChangesAreEvents) {
  StartServer({.gpio = true});
  const int client = server_->Connect(0);
  ASSERT_GT(client, 0);
  FeedAfterAttach feed = WatchAfterAttach();
  ASSERT_TRUE(feed.attached);
  ASSERT_EQ(server_->ClientSetMigrationState(client, v1::MIGRATION_STATE_STOP_COPY), 0);
  EXPECT_EQ(List().devices(0).migration_state(), v1::MIGRATION_STATE_STOP_COPY);
  ASSERT_EQ(server_->ClientSetMigrationState(client, v1::MIGRATION_STATE_RUNNING), 0);
  std::vector<v1::Event> events = ReadEvents(*feed.reader, 4);
  EXPECT_EQ(MigrationStates(events),
            (std::vector<v1::MigrationState>{v1::MIGRATION_STATE_STOP,
                                             v1::MIGRATION_STATE_STOP_COPY,
                                             v1::MIGRATION_STATE_STOP,
                                             v1::MIGRATION_STATE_RUNNING}));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), feed.attached_sequence + 1 + i);
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].reason(), "RUNNING -> STOP");
  feed.context->TryCancel();
}

TEST_F(ControlServiceTest, MigrationNeedsADeviceThatMigrates) {
  StartServer();
  std::vector<std::string> chunks;
  EXPECT_EQ(SaveDeviceState(*stub_, "dev0", &chunks).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::SetMigrationStateRequest set;
  set.mutable_device()->set_device("dev0");
  set.set_state(v1::MIGRATION_STATE_STOP);
  v1::SetMigrationStateResponse response;
  EXPECT_EQ(stub_->SetMigrationState(Context().get(), set, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
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
