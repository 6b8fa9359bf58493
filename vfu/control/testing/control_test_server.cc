#include "vfu/control/testing/control_test_server.h"

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "testing/memory_device.h"
#include "vfu/client/client.h"
#include "vfu/server/server.h"
#include "vfu/wire/errno_status.h"

namespace vfu::control::testing {
namespace {

int ErrnoOf(const absl::Status& status) {
  if (status.ok()) return 0;
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDataLoss) {
    return -1;
  }
  return wire::ReplyErrno(status);
}

}  // namespace

struct ControlTestServer::State {
  std::string dir;
  bool own_dir = false;
  std::vector<std::unique_ptr<vfu::testing::MemoryDevice>> devices;
  std::unique_ptr<Server> server;
  std::map<int, std::unique_ptr<Client>> clients;
  int next_client = 1;

  ~State() {
    clients.clear();
    if (server) server->Stop();
    server.reset();
    if (own_dir) std::filesystem::remove_all(dir);
  }
};

std::unique_ptr<ControlTestServer> ControlTestServer::Start(Options options, std::string* error) {
  auto state = std::make_unique<State>();
  if (options.dir.empty()) {
    std::string templ = (std::filesystem::temp_directory_path() / "vfu-control-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      *error = "mkdtemp failed";
      return nullptr;
    }
    state->dir = templ;
    state->own_dir = true;
  } else {
    state->dir = options.dir;
  }
  ServerOptions server_options;
  server_options.control.socket_path = state->dir + "/control.sock";
  server_options.control.socket_mode = options.control_mode;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(server_options);
  if (!server.ok()) {
    *error = server.status().ToString();
    return nullptr;
  }
  state->server = std::move(*server);
  for (int i = 0; i < options.devices; ++i) {
    state->devices.push_back(std::make_unique<vfu::testing::MemoryDevice>(64 * 1024));
    DeviceOptions device_options;
    device_options.name = absl::StrCat("dev", i);
    absl::Status added = state->server->AddDevice(absl::StrCat(state->dir, "/dev", i, ".sock"),
                                                  *state->devices.back(), device_options);
    if (!added.ok()) {
      *error = added.ToString();
      return nullptr;
    }
  }
  if (absl::Status started = state->server->Start(); !started.ok()) {
    *error = started.ToString();
    return nullptr;
  }
  return std::unique_ptr<ControlTestServer>(new ControlTestServer(std::move(state)));
}

ControlTestServer::ControlTestServer(std::unique_ptr<State> state) : state_(std::move(state)) {}
ControlTestServer::~ControlTestServer() = default;

std::string ControlTestServer::dir() const { return state_->dir; }
std::string ControlTestServer::control_path() const { return state_->dir + "/control.sock"; }
std::string ControlTestServer::device_path(int device) const {
  return absl::StrCat(state_->dir, "/dev", device, ".sock");
}
std::string ControlTestServer::device_name(int device) const { return absl::StrCat("dev", device); }
int ControlTestServer::device_resets(int device) const { return state_->devices[device]->resets(); }

int ControlTestServer::Connect(int device) { return ConnectPath(device_path(device)); }

int ControlTestServer::ConnectPath(const std::string& socket_path) {
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect(socket_path, ClientOptions{.timeout = absl::Seconds(60)});
  if (!client.ok()) return -1;
  const int id = state_->next_client++;
  state_->clients[id] = std::move(*client);
  return id;
}

int ControlTestServer::RegionRead(int client, uint64_t offset, uint32_t count) {
  return ErrnoOf(state_->clients.at(client)->RegionRead(0, offset, count).status());
}

int ControlTestServer::RegionWrite(int client, uint64_t offset, const std::vector<uint8_t>& data) {
  return ErrnoOf(state_->clients.at(client)->RegionWrite(0, offset, data));
}

int ControlTestServer::Reset(int client) { return ErrnoOf(state_->clients.at(client)->Reset()); }

void ControlTestServer::Disconnect(int client) { state_->clients.erase(client); }

}  // namespace vfu::control::testing
