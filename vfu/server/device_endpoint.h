// DeviceEndpoint: one device served at one socket path.
//
// Serves one client at a time and keeps the device between clients. A
// client is accepted only when the previous one is gone entirely: its
// connection closed, every command it sent run, its DMA handle revoked and
// the device detached. Until then the listening socket is not watched and
// new clients wait in the kernel's backlog; none is ever refused. A client
// that connects while another is attached waits there too (as libvfio-user
// users expect) and is served when the first leaves; that is logged once
// per attachment (the listener is watched once more after an accept, and
// disarmed when it reports a waiting client).
//
// When accept fails (EMFILE and the like), the listener is disarmed and a
// timer re-arms it after RuntimeOptions::accept_retry_delay, with a
// rate-limited log line: the level-triggered listener never spins.
//
// DMA: each connection hands the device its own DeviceContext
// (AttachmentContext), revoked at detach; the endpoint owns the DMA map
// table the client fills and the next client reuses.
//
// Statistics and events: the endpoint keeps its device's DeviceStatistics
// and hands them, the server's EventBus and the client's SO_PEERCRED
// identity to each connection (ConnectionObserver).
//
// Threads: the reactor handlers and the *OnIoThread methods run on the IO
// thread; clients_served(), statistics(), client() and RunOnDevice() on any
// thread.
#ifndef VFU_SERVER_DEVICE_ENDPOINT_H_
#define VFU_SERVER_DEVICE_ENDPOINT_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dispatch/worker_pool.h"
#include "vfu/engine/migration_engine.h"
#include "vfu/engine/session.h"
#include "vfu/reactor/reactor.h"
#include "vfu/server/connection.h"
#include "vfu/server/runtime_options.h"
#include "vfu/stats/device_statistics.h"
#include "vfu/stats/event_bus.h"
#include "vfu/stats/server_event.h"

namespace vfu {

class DeviceEndpoint : private Reactor::Handler {
 public:
  DeviceEndpoint(std::string socket_path, Device& device, Reactor& reactor, WorkerPool& pool,
                 SessionOptions session, RuntimeOptions runtime);
  // With a name for events (default: the socket path) and the bus they go
  // to (none: not published). `events` must outlive the endpoint.
  DeviceEndpoint(std::string socket_path, std::string name, Device& device, Reactor& reactor,
                 WorkerPool& pool, SessionOptions session, RuntimeOptions runtime,
                 EventBus* events);
  ~DeviceEndpoint() override;

  // Creates the listening socket (see ListenUnix). Any thread, before the
  // reactor starts or on the IO thread.
  absl::Status Listen(mode_t mode);
  absl::Status StartOnIoThread();

  // Stops accepting, disconnects the client. `done` runs on the IO thread
  // once no connection is left. IO thread.
  void ShutdownOnIoThread(std::function<void()> done);

  // Runs `task` on a worker with the device to itself: after the commands
  // the attached client already sent and before the next ones, or, with no
  // client, while new clients wait in the backlog. Returns its status, or
  // DeadlineExceeded if it has not finished by `deadline` (it still runs),
  // or Unavailable while shutting down. Any thread but the IO thread and
  // the device's own strand.
  absl::Status RunOnDevice(std::function<absl::Status(Device&)> task, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& socket_path() const { return socket_path_; }
  const std::string& name() const { return name_; }
  Device& device() const { return device_; }
  absl::Time added_at() const { return added_at_; }
  // Clients served so far (statistic).
  uint64_t clients_served() const { return clients_served_.load(std::memory_order_relaxed); }
  const DeviceStatistics& statistics() const { return statistics_; }
  // The attached client, if any.
  std::optional<ClientIdentity> client() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The accept-retry timer's handler.
  class RetryTimerHandler : public Reactor::Handler {
   public:
    explicit RetryTimerHandler(DeviceEndpoint* owner) : owner_(owner) {}
    void OnReady(uint32_t events) override { owner_->OnRetryTimer(); }

   private:
    DeviceEndpoint* owner_;
  };

  // The listening socket is readable: a client waits.
  void OnReady(uint32_t events) override;
  void OnRetryTimer();
  void ServeOnIoThread(UniqueFd client);
  // Accept failed with `error`: disarm the listener, retry later.
  void BackOffOnIoThread(int error);
  void WatchListenerOnIoThread(bool watch);
  void OnConnectionFinished(Connection* connection);
  // Whether a new client may be accepted now (no client, no device task,
  // not shutting down).
  bool MayAcceptOnIoThread() const;
  // RunOnDevice's work: `run` on a worker, or `cancel` (on the IO thread)
  // when the endpoint shuts down first.
  struct DeviceTask {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  void StartDeviceTaskOnIoThread(DeviceTask task);
  void CancelDeviceTasksOnIoThread();
  std::shared_ptr<Connection> current() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string socket_path_;
  const std::string name_;
  Device& device_;
  EventBus* const events_;
  const absl::Time added_at_ = absl::Now();
  DeviceStatistics statistics_;
  Reactor& reactor_;
  WorkerPool& pool_;
  // Fixed once constructed (it points at migration_).
  SessionOptions session_options_;
  const RuntimeOptions runtime_options_;
  // IO thread only.
  UniqueFd listen_fd_;
  UniqueFd retry_timer_;
  RetryTimerHandler retry_handler_{this};
  bool listener_watched_ = false;
  bool shutting_down_ = false;
  // The current attachment has logged its waiting client.
  bool waiting_client_logged_ = false;
  std::function<void()> shutdown_done_;
  // A RunOnDevice task runs on a worker with no client attached; nothing
  // is accepted meanwhile.
  bool device_task_running_ = false;
  // RunOnDevice tasks that arrived while a client was being torn down:
  // run once it is gone.
  std::vector<DeviceTask> deferred_device_tasks_;

  mutable absl::Mutex mu_;
  // The client being served or torn down, if any. Written on the IO thread;
  // read there and (through current()) anywhere.
  std::shared_ptr<Connection> connection_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> clients_served_{0};
  // The client's DMA mappings (filled by its Session, used by its
  // AttachmentContext on any thread).
  DmaMapTable dma_table_;
  // The device's migration state, kept from one client to the next.
  MigrationEngine migration_;
};

}  // namespace vfu

#endif  // VFU_SERVER_DEVICE_ENDPOINT_H_
