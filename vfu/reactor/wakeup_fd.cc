#include "vfu/reactor/wakeup_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>

namespace vfu {

absl::StatusOr<WakeupFd> WakeupFd::Create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "eventfd");
  return WakeupFd(std::move(fd));
}

absl::Status WakeupFd::Wake() const {
  const uint64_t one = 1;
  while (true) {
    ssize_t n = ::write(fd_.get(), &one, sizeof(one));
    if (n == sizeof(one)) return absl::OkStatus();
    if (n < 0 && errno == EINTR) continue;
    // The counter is at its maximum: the fd is readable already.
    if (n < 0 && errno == EAGAIN) return absl::OkStatus();
    // An eventfd write is all or nothing; a short count cannot happen.
    return absl::ErrnoToStatus(errno, "write(eventfd)");
  }
}

absl::Status WakeupFd::Drain() const {
  uint64_t count;
  while (true) {
    // Without EFD_SEMAPHORE one read returns the whole count and zeroes it.
    ssize_t n = ::read(fd_.get(), &count, sizeof(count));
    if (n == sizeof(count)) return absl::OkStatus();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return absl::OkStatus();
    return absl::ErrnoToStatus(errno, "read(eventfd)");
  }
}

}  // namespace vfu
