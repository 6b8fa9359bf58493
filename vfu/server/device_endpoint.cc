#include "vfu/server/device_endpoint.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/engine/message_dma.h"
#include "vfu/server/unix_listener.h"

namespace vfu {

DeviceEndpoint::DeviceEndpoint(std::string socket_path, Device& device, Reactor& reactor,
                               WorkerPool& pool, SessionOptions session,
                               RuntimeOptions runtime)
    : socket_path_(std::move(socket_path)),
      device_(device),
      reactor_(reactor),
      pool_(pool),
      session_options_(std::move(session)),
      runtime_options_(runtime),
      dma_table_(DmaMapLimits{}),
      dma_memory_(dma_table_, *this) {
  // A client whose memory faults under a DMA copy (it shrank the file behind
  // a mapping) is disconnected: its memory can no longer be trusted.
  dma_table_.set_fault_handler([this](uint64_t iova, uint64_t length) {
    std::shared_ptr<Connection> connection = current();
    if (connection == nullptr) return;
    VFU_LOG(kWarning, socket_path_, ": DMA to [0x", absl::Hex(iova), ", +0x", absl::Hex(length),
            ") faulted; disconnecting the client");
    reactor_.Post([connection] { connection->CloseOnIoThread("client memory faulted during DMA"); });
  });
}

DeviceEndpoint::~DeviceEndpoint() {
  if (listen_fd_) UnlinkSocketPath(socket_path_);
}

absl::Status DeviceEndpoint::Listen(mode_t mode) {
  absl::StatusOr<UniqueFd> fd = ListenUnix(socket_path_, mode);
  if (!fd.ok()) return fd.status();
  listen_fd_ = std::move(*fd);
  return absl::OkStatus();
}

absl::Status DeviceEndpoint::StartOnIoThread() {
  return reactor_.Watch(listen_fd_.get(), EPOLLIN, this);
}

void DeviceEndpoint::OnReady(uint32_t) {
  while (true) {
    UniqueFd client(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      VFU_LOG(kError, socket_path_, ": accept: ", std::strerror(errno));
      return;
    }
    if (shutting_down_) continue;  // closes it
    if (current() != nullptr) {
      VFU_LOG(kWarning, socket_path_,
              ": refusing a second client while one is attached");
      continue;
    }
    Connection::Environment env{
        .reactor = &reactor_,
        .pool = &pool_,
        .device = &device_,
        .context = this,
        .dma = &dma_table_,
        .session = session_options_,
        .runtime = runtime_options_,
        .name = socket_path_,
        .on_finished = [this](Connection* c) { OnConnectionFinished(c); },
    };
    auto connection = std::make_shared<Connection>(std::move(client), std::move(env));
    absl::Status status = connection->StartOnIoThread();
    if (!status.ok()) {
      VFU_LOG(kError, socket_path_, ": cannot serve client: ", status.message());
      connection->CloseOnIoThread("setup failed");
      // The strand still runs its final task; keep the connection until then.
    }
    clients_served_.fetch_add(1, std::memory_order_relaxed);
    VFU_LOG(kInfo, socket_path_, ": client connected");
    absl::MutexLock lock(&mu_);
    connection_ = std::move(connection);
  }
}

void DeviceEndpoint::OnConnectionFinished(Connection* connection) {
  // The strand queued its last item; let it return before the connection
  // can be destroyed (here, or by a DMA caller dropping the last reference).
  connection->WaitIdle();
  std::shared_ptr<Connection> released;
  {
    absl::MutexLock lock(&mu_);
    if (connection_.get() == connection) released = std::move(connection_);
  }
  released.reset();
  if (shutting_down_ && shutdown_done_) {
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    done();
  }
}

void DeviceEndpoint::ShutdownOnIoThread(std::function<void()> done) {
  shutting_down_ = true;
  if (listen_fd_) {
    reactor_.Unwatch(listen_fd_.get());
    listen_fd_.reset();
    UnlinkSocketPath(socket_path_);
  }
  std::shared_ptr<Connection> connection = current();
  if (connection == nullptr) {
    done();
    return;
  }
  shutdown_done_ = std::move(done);
  connection->CloseOnIoThread("server shutting down");
}

std::shared_ptr<Connection> DeviceEndpoint::current() const {
  absl::MutexLock lock(&mu_);
  return connection_;
}

absl::StatusOr<std::shared_ptr<Connection>> DeviceEndpoint::AttachedClient() const {
  std::shared_ptr<Connection> connection = current();
  if (connection == nullptr || connection->closed()) {
    return absl::UnavailableError("no client attached");
  }
  return connection;
}

absl::Status DeviceEndpoint::DmaRead(uint64_t iova, absl::Span<uint8_t> out) {
  return dma_memory_.Read(iova, out);
}

absl::Status DeviceEndpoint::DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) {
  return dma_memory_.Write(iova, data);
}

absl::StatusOr<DmaSgList> DeviceEndpoint::DmaPin(uint64_t iova, uint64_t length,
                                                 DmaDirection direction) {
  return dma_memory_.Pin(iova, length, direction);
}

absl::Status DeviceEndpoint::Read(uint64_t iova, absl::Span<uint8_t> out) {
  VFU_ASSIGN_OR_RETURN(std::shared_ptr<Connection> connection, AttachedClient());
  return DmaReadViaMessages(*connection, connection->dma_config(), iova, out);
}

absl::Status DeviceEndpoint::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  VFU_ASSIGN_OR_RETURN(std::shared_ptr<Connection> connection, AttachedClient());
  return DmaWriteViaMessages(*connection, connection->dma_config(), iova, data);
}

}  // namespace vfu
