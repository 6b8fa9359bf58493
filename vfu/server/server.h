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
// Thread safety: AddDevice() before Start(); Start() and Stop() from one
// controlling thread, never from a device hook.
#ifndef VFU_SERVER_SERVER_H_
#define VFU_SERVER_SERVER_H_

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/device/device.h"
#include "vfu/dispatch/worker_pool.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/engine/session.h"
#include "vfu/reactor/reactor.h"
#include "vfu/server/device_endpoint.h"
#include "vfu/server/runtime_options.h"

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
};

struct DeviceOptions {
  // Permissions of the socket file: who may connect.
  mode_t socket_mode = 0600;
  // Layout of this device's DMA_READ/DMA_WRITE messages, when its clients
  // differ from the server's default (e.g. a device served to QEMU, whose
  // layout differs from the spec's, PROTOCOL.md 4.10).
  std::optional<wire::DmaTransferLayout> dma_layout;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerOptions options = {});
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves `device` at `socket_path` (see ListenUnix for how an existing
  // file is treated). Before Start().
  absl::Status AddDevice(const std::string& socket_path, Device& device,
                         DeviceOptions options = {});

  // Starts the IO thread; clients can connect from now on.
  absl::Status Start();

  // Disconnects every client, removes the sockets, stops the threads.
  // Commands a client sent before that still run, in order, with their
  // replies dropped (a bounded amount: what the runtime had read, at most
  // about RuntimeOptions::max_queued_commands plus one read's worth); DMA
  // they or device threads attempt fails at once with Unavailable. Then
  // every device is detached, its DMA handles revoked: a device thread that
  // keeps one gets Unavailable from it, never freed memory. Idempotent.
  void Stop();

  // For benchmarks and tests.
  Reactor& reactor() { return *reactor_; }
  WorkerPool& pool() { return *pool_; }
  const DeviceEndpoint& endpoint(size_t i) const { return *endpoints_[i]; }

 private:
  Server(ServerOptions options, std::unique_ptr<Reactor> reactor);

  ServerOptions options_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<DeviceEndpoint>> endpoints_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace vfu

#endif  // VFU_SERVER_SERVER_H_
