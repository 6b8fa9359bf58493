// DeviceWait: a command's wait for the device to finish quiescing.
//
// The engine hands the device a QuiesceDone made by MakeDone(); the device
// completes it now or later, from any thread. The runtime learns of the
// completion through OnReady() without holding a thread, and may wait for
// it with a bound (WaitFor) once the client is gone.
//
// A QuiesceDone the device destroys without calling completes the wait
// with an Internal error, so a device bug fails the command instead of
// hanging its client. A second completion is impossible (the callable is
// consumed).
//
// Thread-safe.
#ifndef VFU_ENGINE_DEVICE_WAIT_H_
#define VFU_ENGINE_DEVICE_WAIT_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/device/device.h"

namespace vfu {

class DeviceWait {
 public:
  // The completion to hand the device for `wait`.
  static QuiesceDone MakeDone(std::shared_ptr<DeviceWait> wait);

  // Records the device's answer (the first one) and runs the OnReady
  // callback, if any, on this thread.
  void Complete(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  bool ready() const ABSL_LOCKS_EXCLUDED(mu_);
  // The device's answer. Requires ready().
  absl::Status status() const ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `callback` once the device has answered: at once, on this thread,
  // if it already has, otherwise on the thread that completes. At most one
  // callback.
  void OnReady(absl::AnyInvocable<void() &&> callback) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the callback (it will not run): the waiter gave up.
  void DropCallback() ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until the device answers or `timeout` passes; true if it
  // answered.
  bool WaitFor(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  absl::AnyInvocable<void() &&> callback_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu

#endif  // VFU_ENGINE_DEVICE_WAIT_H_
