#include "vfu/server/device_endpoint.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/server/unix_listener.h"

namespace vfu {
DeviceEndpoint::DeviceEndpoint(std::string socket_path, Device& device, Reactor& reactor,
                               WorkerPool& pool, SessionOptions session,
                               RuntimeOptions runtime)
    : DeviceEndpoint(socket_path, socket_path, device, reactor, pool, std::move(session), runtime,
                     /*events=*/nullptr) {}

DeviceEndpoint::DeviceEndpoint(std::string socket_path, std::string name, Device& device,
                               Reactor& reactor, WorkerPool& pool, SessionOptions session,
                               RuntimeOptions runtime, EventBus* events)
    : socket_path_(std::move(socket_path)),
      name_(name.empty() ? socket_path_ : std::move(name)),
      device_(device),
      events_(events),
      reactor_(reactor),
      pool_(pool),
      session_options_(std::move(session)),
      runtime_options_(runtime),
      dma_table_(runtime.dma_limits),
      migration_(device, [this](MigrationState from, MigrationState to) {
        if (events_ == nullptr) return;
        events_->Publish(ServerEvent{
            .kind = ServerEvent::Kind::kMigrationStateChanged,
            .device = name_,
            .reason = absl::StrCat(MigrationStateName(from), " -> ", MigrationStateName(to)),
            .migration_state = static_cast<uint32_t>(to)});
      }) {
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

bool DeviceEndpoint::MayAcceptOnIoThread() const {
  return !shutting_down_ && !device_task_running_ && current() == nullptr;
}

void DeviceEndpoint::OnReady(uint32_t) {
  if (shutting_down_) return;
  if (device_task_running_) {
    WatchListenerOnIoThread(false);
    return;
  }
  if (current() != nullptr) {
    // Watched once more after the accept only to notice this: the client
    // waits in the backlog until the attached one is gone.
    if (!waiting_client_logged_) {
      waiting_client_logged_ = true;
      // Clients can make this happen at will (reconnect storms): rate-limited.
      VFU_LOG_RATE_LIMITED(kInfo, socket_path_,
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
  if (MayAcceptOnIoThread()) WatchListenerOnIoThread(true);
}

void DeviceEndpoint::ServeOnIoThread(UniqueFd client) {
  ConnectionReporting reporting{.stats = runtime_options_.statistics ? &statistics_ : nullptr,
                                .events = events_,
                                .device = name_};
  reporting.client.connected_at = absl::Now();
  struct ucred peer = {};
  socklen_t peer_size = sizeof peer;
  if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) == 0) {
    reporting.client.pid = peer.pid;
    reporting.client.uid = peer.uid;
    reporting.client.gid = peer.gid;
  }
  Connection::Environment env{
      .reactor = &reactor_,
      .pool = &pool_,
      .device = &device_,
      .dma = &dma_table_,
      .session = session_options_,
      .runtime = runtime_options_,
      .name = socket_path_,
      .on_finished = [this](Connection* c) { OnConnectionFinished(c); },
      .reporting = std::move(reporting),
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
  if (!deferred_device_tasks_.empty() && !shutting_down_) {
    // RunOnDevice calls that came during the teardown; the first one
    // starts now, the rest follow it (StartDeviceTaskOnIoThread).
    std::vector<DeviceTask> tasks = std::move(deferred_device_tasks_);
    deferred_device_tasks_.clear();
    for (auto& task : tasks) StartDeviceTaskOnIoThread(std::move(task));
    return;
  }
  if (shutting_down_) {
    CancelDeviceTasksOnIoThread();
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
    if (device_task_running_) {
      // Finished when the task is (StartDeviceTaskOnIoThread).
      shutdown_done_ = std::move(done);
      return;
    }
    CancelDeviceTasksOnIoThread();
    done();
    return;
  }
  shutdown_done_ = std::move(done);
  connection->CloseOnIoThread("server shutting down");
}

absl::Status DeviceEndpoint::RunOnDevice(std::function<absl::Status(Device&)> task,
                                         absl::Time deadline) {
  // Shared with the task, which may outlive this call (deadline).
  struct Outcome {
    absl::Notification handed_off;
    absl::Notification done;
    absl::Status status;
  };
  auto outcome = std::make_shared<Outcome>();
  DeviceTask device_task{
      .run =
          [this, outcome, task = std::move(task)] {
            outcome->status = task(device_);
            outcome->done.Notify();
          },
      .cancel =
          [outcome] {
            outcome->status = absl::UnavailableError("the device is being removed");
            outcome->done.Notify();
          },
  };
  reactor_.Post([this, outcome, device_task = std::move(device_task)]() mutable {
    if (shutting_down_) {
      device_task.cancel();
    } else {
      StartDeviceTaskOnIoThread(std::move(device_task));
    }
    outcome->handed_off.Notify();
  });
  // The IO thread never blocks, so the hand-off is prompt; waiting for it
  // keeps `this` alive for the posted closure, whatever the deadline.
  outcome->handed_off.WaitForNotification();
  if (!outcome->done.WaitForNotificationWithDeadline(deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat(name_, ": the device did not get to the request in time (it still will)"));
  }
  return outcome->status;
}

void DeviceEndpoint::StartDeviceTaskOnIoThread(DeviceTask task) {
  std::shared_ptr<Connection> connection = current();
  if (connection != nullptr && !connection->closed()) {
    // In order with the client's commands, on its strand (which runs it
    // even if the client leaves meanwhile).
    connection->PostToStrandOnIoThread(std::move(task.run));
    return;
  }
  if (connection != nullptr || device_task_running_) {
    // A client is being torn down, or another task runs: after it.
    deferred_device_tasks_.push_back(std::move(task));
    return;
  }
  device_task_running_ = true;
  WatchListenerOnIoThread(false);
  pool_.Submit([this, run = std::move(task.run)] {
    run();
    reactor_.Post([this] {
      device_task_running_ = false;
      if (!deferred_device_tasks_.empty() && !shutting_down_) {
        DeviceTask next = std::move(deferred_device_tasks_.front());
        deferred_device_tasks_.erase(deferred_device_tasks_.begin());
        StartDeviceTaskOnIoThread(std::move(next));
        return;
      }
      if (shutting_down_) {
        CancelDeviceTasksOnIoThread();
        if (shutdown_done_) {
          auto done = std::move(shutdown_done_);
          shutdown_done_ = nullptr;
          done();
        }
        return;
      }
      if (MayAcceptOnIoThread()) WatchListenerOnIoThread(true);
    });
  });
}

void DeviceEndpoint::CancelDeviceTasksOnIoThread() {
  std::vector<DeviceTask> tasks = std::move(deferred_device_tasks_);
  deferred_device_tasks_.clear();
  for (DeviceTask& task : tasks) task.cancel();
}

std::optional<ClientIdentity> DeviceEndpoint::client() const {
  std::shared_ptr<Connection> connection = current();
  if (connection == nullptr) return std::nullopt;
  return connection->observer().client();
}

std::shared_ptr<Connection> DeviceEndpoint::current() const {
  absl::MutexLock lock(&mu_);
  return connection_;
}

}  // namespace vfu
