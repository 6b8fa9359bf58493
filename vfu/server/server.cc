#include "vfu/server/server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"

namespace vfu {

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServerOptions options) {
  if (options.worker_threads == 0) return absl::InvalidArgumentError("worker_threads is 0");
  VFU_RETURN_IF_ERROR(wire::ValidateServerVersionPolicy(options.version));
  if (!options.control.socket_path.empty() && GetControlPlaneFactory() == nullptr) {
    return absl::FailedPreconditionError(
        "a control socket was asked for, but this binary has no control plane (link "
        "//vfu/control:control_plane)");
  }
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Reactor> reactor, Reactor::Create());
  return std::unique_ptr<Server>(new Server(std::move(options), std::move(reactor)));
}

Server::Server(ServerOptions options, std::unique_ptr<Reactor> reactor)
    : options_(std::move(options)),
      reactor_(std::move(reactor)),
      pool_(std::make_unique<WorkerPool>(
          options_.worker_threads,
          WorkerPool::PollOptions{.idle_spin = options_.runtime.worker_idle_spin,
                                  .backoff = options_.runtime.poll_backoff})),
      events_(options_.event_buffer) {
  reactor_->set_poll_backoff(options_.runtime.poll_backoff);
}

Server::~Server() { Stop(); }

absl::Status Server::AddDevice(const std::string& socket_path, Device& device,
                               DeviceOptions options) {
  absl::MutexLock membership(&membership_mu_);
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::FailedPreconditionError("AddDevice after Stop");
    started = started_;
    const std::string& name = options.name.empty() ? socket_path : options.name;
    for (const auto& e : endpoints_) {
      if (e->socket_path() == socket_path || e->name() == name || e->socket_path() == name ||
          e->name() == socket_path) {
        return absl::AlreadyExistsError(absl::StrCat("a device named ", name, " or served at ",
                                                     socket_path, " exists already"));
      }
    }
  }
  if (absl::Status valid = device.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device for ", socket_path, " is invalid: ", valid.message()));
  }
  RuntimeOptions runtime = options_.runtime;
  if (options.dma_layout) runtime.dma_layout = *options.dma_layout;
  runtime.statistics = runtime.statistics && options.statistics;
  auto endpoint = std::make_shared<DeviceEndpoint>(
      socket_path, options.name, device, *reactor_, *pool_,
      SessionOptions{.version = options_.version}, runtime, &events_);
  VFU_RETURN_IF_ERROR(endpoint->Listen(options.socket_mode));
  if (started) {
    absl::Status status;
    absl::Notification registered;
    reactor_->Post([&] {
      status = endpoint->StartOnIoThread();
      registered.Notify();
    });
    registered.WaitForNotification();
    if (!status.ok()) {
      ShutDownEndpoints({endpoint});
      return status;
    }
    VFU_LOG(kInfo, "serving ", endpoint->socket_path());
  }
  events_.Publish(ServerEvent{.kind = ServerEvent::Kind::kDeviceAdded,
                              .device = endpoint->name(),
                              .reason = endpoint->socket_path()});
  absl::MutexLock lock(&mu_);
  endpoints_.push_back(std::move(endpoint));
  return absl::OkStatus();
}

absl::Status Server::RemoveDevice(std::string_view device) {
  absl::MutexLock membership(&membership_mu_);
  std::shared_ptr<DeviceEndpoint> endpoint;
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::FailedPreconditionError("RemoveDevice after Stop");
    started = started_;
    for (auto it = endpoints_.begin(); it != endpoints_.end(); ++it) {
      if ((*it)->name() == device || (*it)->socket_path() == device) {
        endpoint = std::move(*it);
        endpoints_.erase(it);
        break;
      }
    }
  }
  if (endpoint == nullptr) return absl::NotFoundError(absl::StrCat("no device named ", device));
  // Before Start() it was never registered with the reactor: destroying
  // it removes its socket.
  if (started) ShutDownEndpoints({endpoint});
  VFU_LOG(kInfo, "stopped serving ", endpoint->socket_path());
  events_.Publish(ServerEvent{.kind = ServerEvent::Kind::kDeviceRemoved,
                              .device = endpoint->name(),
                              .reason = endpoint->socket_path()});
  return absl::OkStatus();
}

absl::Status Server::ResetDevice(std::string_view device, absl::Time deadline) {
  std::shared_ptr<DeviceEndpoint> endpoint = FindDevice(device);
  if (endpoint == nullptr) return absl::NotFoundError(absl::StrCat("no device named ", device));
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || stopped_) return absl::FailedPreconditionError("the server is not running");
  }
  VFU_RETURN_IF_ERROR(endpoint->RunOnDevice([](Device& d) { return d.Reset(); }, deadline));
  events_.Publish(ServerEvent{.kind = ServerEvent::Kind::kDeviceReset,
                              .device = endpoint->name(),
                              .reason = "reset by the control plane"});
  return absl::OkStatus();
}

std::shared_ptr<DeviceEndpoint> Server::FindDevice(std::string_view device) const {
  absl::MutexLock lock(&mu_);
  for (const auto& e : endpoints_) {
    if (e->name() == device || e->socket_path() == device) return e;
  }
  return nullptr;
}

std::vector<std::shared_ptr<DeviceEndpoint>> Server::devices() const {
  absl::MutexLock lock(&mu_);
  return endpoints_;
}

const DeviceEndpoint& Server::endpoint(size_t i) const {
  absl::MutexLock lock(&mu_);
  return *endpoints_[i];
}

absl::Status Server::Start() {
  {
    absl::MutexLock membership(&membership_mu_);
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("server already started");
    if (stopped_) return absl::FailedPreconditionError("server stopped");
    // Registrations before Start() are allowed by the reactor.
    for (auto& endpoint : endpoints_) VFU_RETURN_IF_ERROR(endpoint->StartOnIoThread());
    started_ = true;
    reactor_->Start();
    for (auto& endpoint : endpoints_) {
      VFU_LOG(kInfo, "serving ", endpoint->socket_path());
    }
  }
  if (!options_.control.socket_path.empty()) {
    absl::StatusOr<std::unique_ptr<ControlPlane>> control =
        GetControlPlaneFactory()(*this, options_.control);
    if (!control.ok()) return control.status();
    control_plane_ = std::move(*control);
  }
  return absl::OkStatus();
}

void Server::ShutDownEndpoints(const std::vector<std::shared_ptr<DeviceEndpoint>>& endpoints) {
  if (endpoints.empty()) return;
  // Every endpoint disconnects its client on the IO thread; wait until
  // each reports that its connection is gone.
  absl::BlockingCounter remaining(static_cast<int>(endpoints.size()));
  reactor_->Post([&endpoints, &remaining] {
    for (const auto& endpoint : endpoints) {
      endpoint->ShutdownOnIoThread([&remaining] { remaining.DecrementCount(); });
    }
  });
  remaining.Wait();
}

void Server::Stop() {
  // First, so no request changes the devices from here on (its in-flight
  // requests finish, some of which may wait for membership_mu_).
  control_plane_.reset();
  absl::MutexLock membership(&membership_mu_);
  std::vector<std::shared_ptr<DeviceEndpoint>> endpoints;
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    started = started_;
    endpoints = endpoints_;
  }
  events_.Close();
  if (started) ShutDownEndpoints(endpoints);
  reactor_->Stop();
  pool_->Shutdown();
  endpoints.clear();
  absl::MutexLock lock(&mu_);
  endpoints_.clear();
}

}  // namespace vfu
