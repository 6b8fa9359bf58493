// Server: serves any number of devices, each at its own UNIX socket path,
// from one IO thread and one pool of worker threads.
//
//   auto server = vfu::Server::Create({.worker_threads = 2});
//   VFU_RETURN_IF_ERROR((*server)->AddDevice("/run/gpio.sock", gpio));
//   VFU_RETURN_IF_ERROR((*server)->Start());
//   ...
//   (*server)->Stop();   // disconnects clients, removes the sockets
//
// The IO thread owns every socket and never runs device code; device hooks
// run on the workers, one command at a time per device, in arrival order.
// Devices must outlive the server (or at least Stop()).
//
// Devices can also come and go while the server runs (AddDevice() and
// RemoveDevice() after Start(), as the control plane does): other devices
// and their clients are not disturbed.
//
// Observability: every device keeps DeviceStatistics, and the server
// publishes events (clients attached, detached, refused; resets; devices
// added and removed; rate-limited protocol errors) to its EventBus. With
// ServerOptions::control set, Start() also starts the control-plane service
// (vfu/server/control_plane.h; the binary must link //vfu/control).
//
// Thread safety: Start() and Stop() from one controlling thread, never from
// a device hook. AddDevice(), RemoveDevice(), ResetDevice(), FindDevice()
// and devices() from any thread but the IO thread and device hooks,
// concurrently with each other.
#ifndef VFU_SERVER_SERVER_H_
#define VFU_SERVER_SERVER_H_

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/device/device.h"
#include "vfu/dispatch/worker_pool.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/engine/session.h"
#include "vfu/reactor/reactor.h"
#include "vfu/server/control_plane.h"
#include "vfu/server/device_endpoint.h"
#include "vfu/server/runtime_options.h"
#include "vfu/stats/event_bus.h"

namespace vfu {

// What a server offers in VERSION negotiation unless told otherwise: the
// protocol defaults, plus twin-socket mode and REGION_WRITE_MULTI (both
// granted only to clients that ask), and as max_dma_maps what the process
// can map (DefaultMaxDmaMaps(): vm.max_map_count less headroom, 49148 with
// Linux's default count, not the protocol's 65535).
inline wire::ServerVersionPolicy DefaultVersionPolicy() {
  wire::ServerVersionPolicy policy;
  policy.max_dma_maps = DefaultMaxDmaMaps();
  policy.twin_socket = true;
  policy.write_multiple = true;
  return policy;
}

struct ServerOptions {
  // Threads running device code. A device hook blocked on DMA holds one.
  size_t worker_threads = 2;
  // VERSION negotiation: what the server offers every client.
  wire::ServerVersionPolicy version = DefaultVersionPolicy();
  RuntimeOptions runtime;
  // The control-plane service; off unless a socket path is given.
  ControlPlaneOptions control;
  // Events kept for the control plane's feeds (EventBus's bound).
  size_t event_buffer = EventBus::kDefaultCapacity;
};

struct DeviceOptions {
  // The device's name in the control plane and its events; unique within
  // the server. Empty: the socket path.
  std::string name;
  // Permissions of the socket file: who may connect.
  mode_t socket_mode = 0600;
  // Layout of this device's DMA_READ/DMA_WRITE messages, when its clients
  // differ from the server's default (e.g. a device served to QEMU, whose
  // layout differs from the spec's, PROTOCOL.md 4.10).
  std::optional<wire::DmaTransferLayout> dma_layout;
  // Per-command statistics for this device (RuntimeOptions::statistics);
  // off only if either says so.
  bool statistics = true;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerOptions options = {});
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves `device` at `socket_path` (see ListenUnix for how an existing
  // file is treated). Before Start(), or while running: the device is
  // served from when this returns. AlreadyExists for a path or name in use.
  absl::Status AddDevice(const std::string& socket_path, Device& device,
                         DeviceOptions options = {}) ABSL_LOCKS_EXCLUDED(membership_mu_, mu_);

  // Stops serving the device named `device` (its name or socket path): its
  // client, if any, is disconnected as by Stop() (commands it sent run, the
  // device is detached), then the socket is removed. When this returns the
  // server no longer uses the device. NotFound for an unknown device.
  absl::Status RemoveDevice(std::string_view device) ABSL_LOCKS_EXCLUDED(membership_mu_, mu_);

  // Resets the device (Device::Reset) as a client's DEVICE_RESET would, in
  // order with its client's commands (DeviceEndpoint::RunOnDevice).
  absl::Status ResetDevice(std::string_view device, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // The device named `device` (name or socket path), or null.
  std::shared_ptr<DeviceEndpoint> FindDevice(std::string_view device) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Every device, in the order added.
  std::vector<std::shared_ptr<DeviceEndpoint>> devices() const ABSL_LOCKS_EXCLUDED(mu_);

  EventBus& events() { return events_; }
  absl::Time started_at() const { return created_at_; }

  // Starts the IO thread; clients can connect from now on. Then the
  // control plane, if configured.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(membership_mu_, mu_);

  // Disconnects every client, removes the sockets, stops the threads.
  // Commands a client sent before that still run, in order, with their
  // replies dropped (a bounded amount: what the runtime had read, at most
  // about RuntimeOptions::max_queued_commands plus one read's worth); DMA
  // they or device threads attempt fails at once with Unavailable. Then
  // every device is detached, its DMA handles revoked: a device thread that
  // keeps one gets Unavailable from it, never freed memory. Idempotent.
  // The control plane stops first.
  void Stop() ABSL_LOCKS_EXCLUDED(membership_mu_, mu_);

  // For benchmarks and tests.
  Reactor& reactor() { return *reactor_; }
  WorkerPool& pool() { return *pool_; }
  const DeviceEndpoint& endpoint(size_t i) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Server(ServerOptions options, std::unique_ptr<Reactor> reactor);

  // Runs ShutdownOnIoThread for each of `endpoints` and waits until all
  // are done. The reactor must be running.
  void ShutDownEndpoints(const std::vector<std::shared_ptr<DeviceEndpoint>>& endpoints);

  const ServerOptions options_;
  const absl::Time created_at_ = absl::Now();
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<WorkerPool> pool_;
  EventBus events_;
  // Serializes changes to the set of devices, Start() and Stop() (held
  // while they wait for the IO thread, which never takes it).
  absl::Mutex membership_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<DeviceEndpoint>> endpoints_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Controlling thread only (Start/Stop).
  std::unique_ptr<ControlPlane> control_plane_;
};

}  // namespace vfu

#endif  // VFU_SERVER_SERVER_H_
