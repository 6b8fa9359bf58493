#include "vfu/server/device_endpoint.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
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
      dma_table_(runtime.dma_limits),
      migration_(device) {
  session_options_.migration = &migration_;
  session_options_.detach_quiesce_timeout = runtime_options_.quiesce_wait_after_disconnect;
  // A client whose memory faults under a DMA copy (it shrank the file behind
  // a mapping) is disconnected: its memory can no longer be trusted.
  dma_table_.set_fault_handler([this](uint64_t iova, uint64_t length) {
    std::shared_ptr<Connection> connection = current();
    if (connection == nullptr) return;
    reactor_.Post(
        [connection] { connection->CloseOnIoThread("client memory faulted during DMA"); });
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
  // Created now: when accept fails with EMFILE there is no fd left for it.
  retry_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!retry_timer_) return absl::ErrnoToStatus(errno, "timerfd_create");
  VFU_RETURN_IF_ERROR(reactor_.Watch(retry_timer_.get(), EPOLLIN, &retry_handler_));
  VFU_RETURN_IF_ERROR(reactor_.Watch(listen_fd_.get(), EPOLLIN, this));
  listener_watched_ = true;
  return absl::OkStatus();
}

void DeviceEndpoint::WatchListenerOnIoThread(bool watch) {
  if (watch == listener_watched_ || !listen_fd_) return;
  listener_watched_ = watch;
  absl::Status status = reactor_.Modify(listen_fd_.get(), watch ? uint32_t{EPOLLIN} : 0u);
  if (!status.ok()) VFU_LOG(kError, socket_path_, ": epoll modify: ", status.message());
}

void DeviceEndpoint::OnReady(uint32_t) {
  if (shutting_down_) return;
  if (current() != nullptr) {
    // Watched once more after the accept only to notice this: the client
    // waits in the backlog until the attached one is gone.
    if (!waiting_client_logged_) {
      waiting_client_logged_ = true;
      VFU_LOG(kInfo, socket_path_,
              ": a client is waiting; it is served once the attached one has left");
    }
    WatchListenerOnIoThread(false);
    return;
  }
  UniqueFd client;
  do {
    client = UniqueFd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  } while (!client && (errno == EINTR || errno == ECONNABORTED));
  if (!client) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    BackOffOnIoThread(errno);
    return;
  }
  ServeOnIoThread(std::move(client));
}

void DeviceEndpoint::BackOffOnIoThread(int error) {
  VFU_LOG_RATE_LIMITED(kError, socket_path_, ": accept: ", std::strerror(error), "; retrying in ",
                       absl::FormatDuration(runtime_options_.accept_retry_delay));
  WatchListenerOnIoThread(false);
  struct itimerspec spec = {};
  spec.it_value = absl::ToTimespec(runtime_options_.accept_retry_delay);
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  if (::timerfd_settime(retry_timer_.get(), 0, &spec, nullptr) != 0) {
    // Without the timer, retrying at once beats never accepting again.
    VFU_LOG(kError, socket_path_, ": timerfd_settime: ", std::strerror(errno));
    WatchListenerOnIoThread(true);
  }
}

void DeviceEndpoint::OnRetryTimer() {
  uint64_t expirations;
  while (::read(retry_timer_.get(), &expirations, sizeof expirations) > 0) {
  }
  if (!shutting_down_ && current() == nullptr) WatchListenerOnIoThread(true);
}

void DeviceEndpoint::ServeOnIoThread(UniqueFd client) {
  Connection::Environment env{
      .reactor = &reactor_,
      .pool = &pool_,
      .device = &device_,
      .dma = &dma_table_,
      .session = session_options_,
      .runtime = runtime_options_,
      .name = socket_path_,
      .on_finished = [this](Connection* c) { OnConnectionFinished(c); },
  };
  auto connection = std::make_shared<Connection>(std::move(client), std::move(env));
  {
    absl::MutexLock lock(&mu_);
    connection_ = connection;
  }
  clients_served_.fetch_add(1, std::memory_order_relaxed);
  // Stays watched to notice (once) a client that connects meanwhile.
  waiting_client_logged_ = false;
  VFU_LOG_RATE_LIMITED(kInfo, socket_path_, ": client connected");
  absl::Status status = connection->StartOnIoThread();
  if (!status.ok()) {
    VFU_LOG(kError, socket_path_, ": cannot serve client: ", status.message());
    // The strand still runs its final task; the connection stays current
    // until then.
    connection->CloseOnIoThread("setup failed");
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
  if (shutting_down_) {
    if (shutdown_done_) {
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      done();
    }
    return;
  }
  // Teardown is complete: the next client may come (level-triggered, so a
  // client already waiting is accepted on the next loop iteration).
  WatchListenerOnIoThread(true);
}

void DeviceEndpoint::ShutdownOnIoThread(std::function<void()> done) {
  shutting_down_ = true;
  if (listen_fd_) {
    reactor_.Unwatch(listen_fd_.get());
    listen_fd_.reset();
    listener_watched_ = false;
    UnlinkSocketPath(socket_path_);
  }
  if (retry_timer_) {
    reactor_.Unwatch(retry_timer_.get());
    retry_timer_.reset();
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

}  // namespace vfu
