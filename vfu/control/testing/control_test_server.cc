#include "vfu/control/testing/control_test_server.h"

#include <errno.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "devices/gpio/gpio_device.h"
#include "testing/memory_device.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/client/migration.h"
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
  std::vector<std::unique_ptr<devices::GpioDevice>> gpio_devices;
  std::unique_ptr<Server> server;
  std::map<int, std::unique_ptr<Client>> clients;
  // EnableIrq's eventfd per client (the reading end we keep).
  std::map<int, UniqueFd> irq_fds;
  int next_client = 1;

  ~State() {
    clients.clear();
    irq_fds.clear();
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
    Device* device = nullptr;
    if (options.gpio) {
      state->gpio_devices.push_back(std::make_unique<devices::GpioDevice>());
      device = state->gpio_devices.back().get();
    } else {
      state->devices.push_back(std::make_unique<vfu::testing::MemoryDevice>(64 * 1024));
      device = state->devices.back().get();
    }
    DeviceOptions device_options;
    device_options.name = absl::StrCat("dev", i);
    absl::Status added = state->server->AddDevice(absl::StrCat(state->dir, "/dev", i, ".sock"),
                                                  *device, device_options);
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
int ControlTestServer::device_resets(int device) const {
  if (device >= static_cast<int>(state_->devices.size())) return -1;
  return state_->devices[device]->resets();
}

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

int ControlTestServer::ClientSetMigrationState(int client, uint32_t state) {
  return ErrnoOf(SetMigrationState(*state_->clients.at(client), static_cast<MigrationState>(state)));
}

int ControlTestServer::ConfigRead(int client, uint64_t offset, uint32_t count,
                                  std::vector<uint8_t>* data) {
  absl::StatusOr<std::vector<uint8_t>> bytes =
      state_->clients.at(client)->RegionRead(VFIO_PCI_CONFIG_REGION_INDEX, offset, count);
  if (!bytes.ok()) return ErrnoOf(bytes.status());
  *data = std::move(*bytes);
  return 0;
}

int ControlTestServer::ConfigWrite(int client, uint64_t offset, const std::vector<uint8_t>& data,
                                   bool posted) {
  return ErrnoOf(state_->clients.at(client)->RegionWrite(VFIO_PCI_CONFIG_REGION_INDEX, offset,
                                                         data, posted));
}

int ControlTestServer::ReadRegister(int client, uint64_t offset, uint32_t* value) {
  absl::StatusOr<std::vector<uint8_t>> data = state_->clients.at(client)->RegionRead(0, offset, 4);
  if (!data.ok()) return ErrnoOf(data.status());
  if (data->size() != 4) return EIO;
  *value = static_cast<uint32_t>((*data)[0]) | static_cast<uint32_t>((*data)[1]) << 8 |
           static_cast<uint32_t>((*data)[2]) << 16 | static_cast<uint32_t>((*data)[3]) << 24;
  return 0;
}

int ControlTestServer::WriteRegister(int client, uint64_t offset, uint32_t value) {
  return RegionWrite(client, offset,
                     {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                      static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)});
}

int ControlTestServer::Reset(int client) { return ErrnoOf(state_->clients.at(client)->Reset()); }

int ControlTestServer::EnableIrq(int client, uint32_t index) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return errno;
  UniqueFd dup = DuplicateFd(fd.get());
  if (!dup.valid()) return EIO;
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(dup));
  const int result = ErrnoOf(state_->clients.at(client)->SetIrqEventfds(index, 0, std::move(fds)));
  if (result == 0) state_->irq_fds[client] = std::move(fd);
  return result;
}

int ControlTestServer::UnmaskIrq(int client, uint32_t index) {
  wire::SetIrqsRequest request;
  request.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
  request.index = index;
  request.start = 0;
  request.count = 1;
  return ErrnoOf(state_->clients.at(client)->SetIrqs(request));
}

uint64_t ControlTestServer::WaitIrq(int client, int timeout_ms) {
  auto it = state_->irq_fds.find(client);
  if (it == state_->irq_fds.end()) return 0;
  pollfd p{.fd = it->second.get(), .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, timeout_ms) != 1) return 0;
  uint64_t count = 0;
  if (::read(it->second.get(), &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

void ControlTestServer::Disconnect(int client) {
  state_->irq_fds.erase(client);
  state_->clients.erase(client);
}

}  // namespace vfu::control::testing
