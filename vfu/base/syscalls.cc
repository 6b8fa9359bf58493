#include "vfu/base/syscalls.h"

#include <cerrno>

namespace vfu {

SyscallResult PosixSyscalls::RecvMsg(int fd, struct msghdr* msg, int flags) {
  ssize_t n;
  do {
    n = ::recvmsg(fd, msg, flags);
  } while (n < 0 && errno == EINTR);
  return {n, n < 0 ? errno : 0};
}

SyscallResult PosixSyscalls::SendMsg(int fd, const struct msghdr* msg, int flags) {
  ssize_t n;
  do {
    n = ::sendmsg(fd, msg, flags);
  } while (n < 0 && errno == EINTR);
  return {n, n < 0 ? errno : 0};
}

PosixSyscalls& PosixSyscalls::Instance() {
  static PosixSyscalls* instance = new PosixSyscalls;
  return *instance;
}

}  // namespace vfu
