#include "vfu/engine/device_wait.h"

#include <utility>

namespace vfu {
namespace {

// Completes the wait with an error if the device drops its QuiesceDone
// without calling it.
class DoneGuard {
 public:
  explicit DoneGuard(std::shared_ptr<DeviceWait> wait) : wait_(std::move(wait)) {}
  DoneGuard(DoneGuard&& other) noexcept : wait_(std::move(other.wait_)) {}
  DoneGuard& operator=(DoneGuard&&) = delete;
  ~DoneGuard() {
    if (wait_) wait_->Complete(absl::InternalError("the device dropped its quiesce completion"));
  }

  void Complete(absl::Status status) {
    std::shared_ptr<DeviceWait> wait = std::move(wait_);
    if (wait) wait->Complete(std::move(status));
  }

 private:
  std::shared_ptr<DeviceWait> wait_;
};

}  // namespace

QuiesceDone DeviceWait::MakeDone(std::shared_ptr<DeviceWait> wait) {
  return [guard = DoneGuard(std::move(wait))](absl::Status status) mutable {
    guard.Complete(std::move(status));
  };
}

void DeviceWait::Complete(absl::Status status) {
  absl::AnyInvocable<void() &&> callback;
  {
    absl::MutexLock lock(&mu_);
    if (ready_) return;
    ready_ = true;
    status_ = std::move(status);
    callback = std::move(callback_);
  }
  if (callback) std::move(callback)();
}

bool DeviceWait::ready() const {
  absl::MutexLock lock(&mu_);
  return ready_;
}

absl::Status DeviceWait::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void DeviceWait::OnReady(absl::AnyInvocable<void() &&> callback) {
  {
    absl::MutexLock lock(&mu_);
    if (!ready_) {
      callback_ = std::move(callback);
      return;
    }
  }
  std::move(callback)();
}

void DeviceWait::DropCallback() {
  absl::AnyInvocable<void() &&> dropped;
  absl::MutexLock lock(&mu_);
  dropped = std::move(callback_);
  // Destroyed after the lock is released (declared first).
}

bool DeviceWait::WaitFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&ready_), timeout);
}

}  // namespace vfu
