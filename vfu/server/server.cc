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
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Reactor> reactor, Reactor::Create());
  return std::unique_ptr<Server>(new Server(std::move(options), std::move(reactor)));
}

Server::Server(ServerOptions options, std::unique_ptr<Reactor> reactor)
    : options_(std::move(options)),
      reactor_(std::move(reactor)),
      pool_(std::make_unique<WorkerPool>(
          options_.worker_threads,
          WorkerPool::PollOptions{.idle_spin = options_.runtime.worker_idle_spin,
                                  .backoff = options_.runtime.poll_backoff})) {
  reactor_->set_poll_backoff(options_.runtime.poll_backoff);
}

Server::~Server() { Stop(); }

absl::Status Server::AddDevice(const std::string& socket_path, Device& device,
                               DeviceOptions options) {
  if (started_) return absl::FailedPreconditionError("AddDevice after Start");
  if (absl::Status valid = device.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device for ", socket_path, " is invalid: ", valid.message()));
  }
  RuntimeOptions runtime = options_.runtime;
  if (options.dma_layout) runtime.dma_layout = *options.dma_layout;
  auto endpoint = std::make_unique<DeviceEndpoint>(
      socket_path, device, *reactor_, *pool_, SessionOptions{.version = options_.version},
      runtime);
  VFU_RETURN_IF_ERROR(endpoint->Listen(options.socket_mode));
  endpoints_.push_back(std::move(endpoint));
  return absl::OkStatus();
}

absl::Status Server::Start() {
  if (started_) return absl::FailedPreconditionError("server already started");
  // Registrations before Start() are allowed by the reactor.
  for (auto& endpoint : endpoints_) VFU_RETURN_IF_ERROR(endpoint->StartOnIoThread());
  started_ = true;
  reactor_->Start();
  for (auto& endpoint : endpoints_) {
    VFU_LOG(kInfo, "serving ", endpoint->socket_path());
  }
  return absl::OkStatus();
}

void Server::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (started_) {
    // Every endpoint disconnects its client on the IO thread; wait until
    // each reports that its connection is gone.
    absl::BlockingCounter remaining(static_cast<int>(endpoints_.size()));
    reactor_->Post([this, &remaining] {
      for (auto& endpoint : endpoints_) {
        endpoint->ShutdownOnIoThread([&remaining] { remaining.DecrementCount(); });
      }
    });
    if (!endpoints_.empty()) remaining.Wait();
  }
  reactor_->Stop();
  pool_->Shutdown();
  endpoints_.clear();
}

}  // namespace vfu
