// Syscalls: the seam between vfu's socket code and the kernel.
//
// The transport calls recvmsg/sendmsg through this interface so tests can
// substitute a scripted fake (testing/fault) that returns EAGAIN, one byte at
// a time, or a truncated control message. PosixSyscalls is the real thing.
// Results are plain values, not Status: EAGAIN is routine on the hot path.
#ifndef VFU_BASE_SYSCALLS_H_
#define VFU_BASE_SYSCALLS_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

namespace vfu {

// What a call returned: `value` >= 0 on success, else -1 with `error` set.
struct SyscallResult {
  ssize_t value = 0;
  int error = 0;

  bool ok() const { return value >= 0; }
  bool would_block() const { return value < 0 && (error == EAGAIN || error == EWOULDBLOCK); }
};

class Syscalls {
 public:
  virtual ~Syscalls() = default;
  virtual SyscallResult RecvMsg(int fd, struct msghdr* msg, int flags) = 0;
  virtual SyscallResult SendMsg(int fd, const struct msghdr* msg, int flags) = 0;
};

// The kernel's calls, with EINTR retried.
class PosixSyscalls final : public Syscalls {
 public:
  SyscallResult RecvMsg(int fd, struct msghdr* msg, int flags) override;
  SyscallResult SendMsg(int fd, const struct msghdr* msg, int flags) override;

  // A process-wide instance (stateless, so shared safely by all threads).
  static PosixSyscalls& Instance();
};

}  // namespace vfu

#endif  // VFU_BASE_SYSCALLS_H_
