// ThreadedDriver: a vfu_ctx served by vfu's threaded Server (vfu extension
// flag VFU_FLAG_THREADED). vfu's IO thread reads and writes the socket and
// its workers run the callbacks, one command at a time; the caller's thread
// only learns of clients arriving and leaving:
//   vfu_attach_ctx()  returns 0 once a client has attached (waits for one,
//                     or EAGAIN with LIBVFIO_USER_FLAG_ATTACH_NB);
//   vfu_run_ctx()     0 while the client is served (blocking contexts wait
//                     until it leaves), then -1/ENOTCONN once it has left
//                     (the reset callback with VFU_RESET_LOST_CONN has run,
//                     on a worker);
//   vfu_get_poll_fd() an eventfd, readable while an arrival or departure
//                     waits to be reported by one of the two calls above.
// The socket is created by vfu_realize_ctx() (the Server's listener), not
// by vfu_create_ctx(). The quiesce callback is called (on a worker) where
// the engine quiesces the device; one that defers (EBUSY) holds that
// client's later commands until vfu_device_quiesced(), from any thread. The
// DMA unregister callback runs before the engine unmaps the range.
//
// Thread-safe: the caller's calls may race with the workers' hooks.
#ifndef VFU_CAPI_THREADED_DRIVER_H_
#define VFU_CAPI_THREADED_DRIVER_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/base/unique_fd.h"
#include "vfu/capi/callback_device.h"
#include "vfu/capi/context.h"
#include "vfu/capi/driver.h"
#include "vfu/device/device.h"
#include "vfu/server/server.h"

namespace vfu::capi {

class ThreadedDriver : public Driver {
 public:
  // Errors carry an errno (wire::ReplyErrno).
  static absl::StatusOr<std::unique_ptr<ThreadedDriver>> Create(vfu_ctx& ctx);
  // Stops the server (the client is detached) before the device goes.
  ~ThreadedDriver() override;

  absl::Status Realize() override;
  int Attach() override ABSL_LOCKS_EXCLUDED(mu_);
  int GetPollFd() const override { return event_fd_.get(); }
  int Run() override ABSL_LOCKS_EXCLUDED(mu_);
  int QuiesceDone(int quiesce_errno) override;
  CallbackDevice* device() override { return device_.get(); }
  absl::StatusOr<DmaSgList> Translate(uint64_t iova, uint64_t length,
                                      DmaDirection direction) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ReadMemory(uint64_t iova, absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteMemory(uint64_t iova, absl::Span<const uint8_t> data) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ThreadedDriver(vfu_ctx& ctx, UniqueFd event_fd);

  // Worker hooks (CallbackDevice::AttachHooks).
  void OnAttached(std::shared_ptr<DeviceContext> context) ABSL_LOCKS_EXCLUDED(mu_);
  void OnDetached() ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<DeviceContext> context() ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps event_fd_ readable exactly while an event waits to be reported.
  void UpdateEventFdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  vfu_ctx& ctx_;
  UniqueFd event_fd_;
  std::unique_ptr<CallbackDevice> device_;
  std::unique_ptr<Server> server_;

  absl::Mutex mu_;
  std::shared_ptr<DeviceContext> context_ ABSL_GUARDED_BY(mu_);
  // Clients attached and detached (worker side), and how many of each the
  // caller has been told about (vfu_attach_ctx / vfu_run_ctx).
  uint64_t attached_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t detached_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t attaches_reported_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t detaches_reported_ ABSL_GUARDED_BY(mu_) = 0;
  bool event_signalled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_THREADED_DRIVER_H_
