#include "vfu/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace vfu {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) {
    // Linux releases the descriptor even when close() reports EINTR, so it
    // must not be retried.
    int saved_errno = errno;
    ::close(fd_);
    errno = saved_errno;
  }
  fd_ = fd;
}

UniqueFd DuplicateFd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

std::vector<int> RawFds(const std::vector<UniqueFd>& fds) {
  std::vector<int> raw;
  raw.reserve(fds.size());
  for (const UniqueFd& fd : fds) raw.push_back(fd.get());
  return raw;
}

}  // namespace vfu
