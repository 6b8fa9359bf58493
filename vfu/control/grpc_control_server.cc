#include "vfu/control/grpc_guard.h"  // first: see the file

#include "vfu/control/grpc_control_server.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "proto/control.grpc.pb.h"

namespace vfu::control {
namespace {

grpc::Status ToGrpc(const ControlStatus& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code), status.message);
}

grpc::Status NotYet(const char* what) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string(what) +
                          " is not implemented yet: device state migration has not landed in "
                          "this server");
}

class Service final : public v1::VfuControl::Service {
 public:
  explicit Service(ControlBackend& backend) : backend_(backend) {}

  void BeginShutdown() { stopping_.store(true, std::memory_order_release); }

  grpc::Status GetHealth(grpc::ServerContext*, const v1::GetHealthRequest*,
                         v1::GetHealthResponse* response) override {
    return ToGrpc(backend_.GetHealth(response));
  }
  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest*,
                           v1::ListDevicesResponse* response) override {
    return ToGrpc(backend_.ListDevices(response));
  }
  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override {
    return ToGrpc(backend_.GetStats(*request, response));
  }
  grpc::Status AddDevice(grpc::ServerContext*, const v1::AddDeviceRequest* request,
                         v1::AddDeviceResponse* response) override {
    return ToGrpc(backend_.AddDevice(*request, response));
  }
  grpc::Status RemoveDevice(grpc::ServerContext*, const v1::RemoveDeviceRequest* request,
                            v1::RemoveDeviceResponse*) override {
    return ToGrpc(backend_.RemoveDevice(*request));
  }
  grpc::Status ResetDevice(grpc::ServerContext*, const v1::ResetDeviceRequest* request,
                           v1::ResetDeviceResponse*) override {
    return ToGrpc(backend_.ResetDevice(*request));
  }

  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::Event>* writer) override {
    if (feeds_.fetch_add(1, std::memory_order_acq_rel) >= GrpcControlServer::kMaxEventFeeds) {
      feeds_.fetch_sub(1, std::memory_order_acq_rel);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many event feeds open (at most " +
                              std::to_string(GrpcControlServer::kMaxEventFeeds) + ")");
    }
    uint64_t after = request->after_sequence();
    grpc::Status result = grpc::Status::OK;
    std::vector<v1::Event> events;
    while (!context->IsCancelled() && !stopping_.load(std::memory_order_acquire)) {
      events.clear();
      ControlStatus status = backend_.WaitEvents(after, GrpcControlServer::kFeedPollMs, &events);
      if (!status.ok()) {
        result = ToGrpc(status);
        break;
      }
      bool open = true;
      for (const v1::Event& event : events) {
        after = event.sequence();
        if (!writer->Write(event)) {
          open = false;
          break;
        }
      }
      if (!open) break;
    }
    feeds_.fetch_sub(1, std::memory_order_acq_rel);
    return result;
  }

  grpc::Status SaveState(grpc::ServerContext*, const v1::SaveStateRequest*,
                         grpc::ServerWriter<v1::StateChunk>*) override {
    return NotYet("SaveState");
  }
  grpc::Status LoadState(grpc::ServerContext*, grpc::ServerReader<v1::StateChunk>*,
                         v1::LoadStateResponse*) override {
    return NotYet("LoadState");
  }
  grpc::Status SetMigrationState(grpc::ServerContext*, const v1::SetMigrationStateRequest*,
                                 v1::SetMigrationStateResponse*) override {
    return NotYet("SetMigrationState");
  }

 private:
  ControlBackend& backend_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> feeds_{0};
};

}  // namespace

struct GrpcControlServer::State {
  std::string socket_path;
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
};

namespace {

// A private directory beside `socket_path` to bind in, so the socket
// appears at its path only once it has its mode: gRPC creates the file with
// the umask's mode. Empty when the temporary path would not fit in
// sockaddr_un (then the socket is bound in place and chmod()ed at once).
std::string PrivateBindDir(const std::string& socket_path) {
  constexpr size_t kMaxPath = sizeof(sockaddr_un{}.sun_path) - 1;
  const size_t slash = socket_path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : socket_path.substr(0, slash);
  std::string templ = dir + "/.vfu-XXXXXX";
  if (templ.size() + 2 > kMaxPath) return "";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

}  // namespace

std::unique_ptr<GrpcControlServer> GrpcControlServer::Start(ControlBackend& backend,
                                                            const std::string& socket_path,
                                                            unsigned socket_mode,
                                                            std::string* error) {
  auto state = std::make_unique<State>();
  state->socket_path = socket_path;
  state->service = std::make_unique<Service>(backend);
  const std::string private_dir = PrivateBindDir(socket_path);
  const std::string bind_path = private_dir.empty() ? socket_path : private_dir + "/s";
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort("unix:" + bind_path, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(state->service.get());
  state->server = builder.BuildAndStart();
  auto fail = [&](std::string why) -> std::unique_ptr<GrpcControlServer> {
    *error = std::move(why);
    if (state->server != nullptr) {
      state->service->BeginShutdown();
      state->server->Shutdown();
      state->server->Wait();
    }
    ::unlink(bind_path.c_str());
    if (!private_dir.empty()) ::rmdir(private_dir.c_str());
    return nullptr;
  };
  if (state->server == nullptr) return fail("cannot serve the control plane at " + socket_path);
  if (::chmod(bind_path.c_str(), static_cast<mode_t>(socket_mode)) != 0) {
    return fail("chmod " + bind_path + ": " + std::strerror(errno));
  }
  if (!private_dir.empty()) {
    // Replaces a stale file as gRPC's own bind would.
    if (::rename(bind_path.c_str(), socket_path.c_str()) != 0) {
      return fail("rename to " + socket_path + ": " + std::strerror(errno));
    }
    ::rmdir(private_dir.c_str());
  }
  return std::unique_ptr<GrpcControlServer>(new GrpcControlServer(std::move(state)));
}

GrpcControlServer::GrpcControlServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

GrpcControlServer::~GrpcControlServer() {
  state_->service->BeginShutdown();
  // Feeds notice within kFeedPollMs; other requests are short.
  state_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  state_->server->Wait();
  ::unlink(state_->socket_path.c_str());
}

const std::string& GrpcControlServer::socket_path() const { return state_->socket_path; }

}  // namespace vfu::control
