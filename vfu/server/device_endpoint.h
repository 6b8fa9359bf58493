// DeviceEndpoint: one device served at one socket path.
//
// Accepts one client at a time (a second one is refused with a log line
// while the first is attached), runs each client's connection, and keeps
// the device between clients. It is also the device's DeviceContext: DMA
// goes straight through memory the client shared with an fd, and as
// DMA_READ/DMA_WRITE messages to the attached client otherwise.
//
// Threads: the reactor handler and the *OnIoThread methods run on the IO
// thread; DmaRead/DmaWrite on any thread.
#ifndef VFU_SERVER_DEVICE_ENDPOINT_H_
#define VFU_SERVER_DEVICE_ENDPOINT_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/dispatch/worker_pool.h"
#include "vfu/engine/session.h"
#include "vfu/reactor/reactor.h"
#include "vfu/server/connection.h"
#include "vfu/server/runtime_options.h"

namespace vfu {

class DeviceEndpoint : public DeviceContext,
                       private Reactor::Handler,
                       private MessageDmaPath {
 public:
  DeviceEndpoint(std::string socket_path, Device& device, Reactor& reactor, WorkerPool& pool,
                 SessionOptions session, RuntimeOptions runtime);
  ~DeviceEndpoint() override;

  // Creates the listening socket (see ListenUnix). Any thread, before the
  // reactor starts or on the IO thread.
  absl::Status Listen(mode_t mode);
  absl::Status StartOnIoThread();

  // Stops accepting, disconnects the client. `done` runs on the IO thread
  // once no connection is left. IO thread.
  void ShutdownOnIoThread(std::function<void()> done);

  // DeviceContext.
  absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) override;
  absl::StatusOr<DmaSgList> DmaPin(uint64_t iova, uint64_t length,
                                   DmaDirection direction) override;

  const std::string& socket_path() const { return socket_path_; }
  // Clients served so far (statistic).
  uint64_t clients_served() const { return clients_served_.load(std::memory_order_relaxed); }

 private:
  void OnReady(uint32_t events) override;
  // MessageDmaPath: fd-less client memory, through the attached client.
  absl::Status Read(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data) override;
  void OnConnectionFinished(Connection* connection);
  std::shared_ptr<Connection> current() const ABSL_LOCKS_EXCLUDED(mu_);
  // The client DMA goes to, kept alive for the caller; Unavailable if none.
  absl::StatusOr<std::shared_ptr<Connection>> AttachedClient() const;

  const std::string socket_path_;
  Device& device_;
  Reactor& reactor_;
  WorkerPool& pool_;
  const SessionOptions session_options_;
  const RuntimeOptions runtime_options_;
  // IO thread only.
  UniqueFd listen_fd_;
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;

  mutable absl::Mutex mu_;
  // The attached client, if any. Written on the IO thread, read by DMA
  // callers on any thread.
  std::shared_ptr<Connection> connection_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> clients_served_{0};
  // The client's DMA mappings (filled by its Session, used by any thread).
  DmaMapTable dma_table_;
  DmaMemory dma_memory_;
};

}  // namespace vfu

#endif  // VFU_SERVER_DEVICE_ENDPOINT_H_
