// WakeupFd: an eventfd another thread writes to wake a thread blocked in
// epoll_wait (the counterpart of grpc's wakeup_fd_eventfd).
//
//   VFU_ASSIGN_OR_RETURN(WakeupFd wakeup, WakeupFd::Create());
//   epoll_ctl(epfd, EPOLL_CTL_ADD, wakeup.fd(), ...);  // EPOLLIN
//   wakeup.Wake();   // any thread: the fd becomes readable
//   wakeup.Drain();  // the waiting thread: the fd is no longer readable
//
// Wakes coalesce: any number of Wake() calls before a Drain() make the fd
// readable once. Wake() and Drain() are thread-safe (they are single
// syscalls on a kernel counter); construction, moving and destruction are
// not, and the fd must outlive every thread that may still call Wake(). The
// fd is non-blocking and close-on-exec.
#ifndef VFU_REACTOR_WAKEUP_FD_H_
#define VFU_REACTOR_WAKEUP_FD_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/base/unique_fd.h"

namespace vfu {

class WakeupFd {
 public:
  // Creates the eventfd; fails only if the kernel refuses one (e.g. EMFILE).
  static absl::StatusOr<WakeupFd> Create();

  WakeupFd(WakeupFd&&) = default;
  WakeupFd& operator=(WakeupFd&&) = default;

  // Makes fd() readable. A saturated counter (EAGAIN) already means
  // "readable", so it is not an error; any other failure is returned.
  absl::Status Wake() const;

  // Resets the counter so fd() is no longer readable. Draining an idle fd
  // (EAGAIN) is not an error.
  absl::Status Drain() const;

  // The fd to watch for EPOLLIN. Owned by this object.
  int fd() const { return fd_.get(); }

 private:
  explicit WakeupFd(UniqueFd fd) : fd_(std::move(fd)) {}

  UniqueFd fd_;
};

}  // namespace vfu

#endif  // VFU_REACTOR_WAKEUP_FD_H_
