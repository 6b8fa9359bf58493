#include "vfu/server/unix_listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace vfu {
namespace {

absl::StatusOr<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path must be 1 to ", sizeof(addr.sun_path) - 1,
                     " bytes long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  absl::StatusOr<sockaddr_un> addr = MakeAddress(path);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return absl::ErrnoToStatus(errno, "socket");
  int r;
  do {
    r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  } while (r != 0 && errno == EINTR);
  if (r != 0) return absl::ErrnoToStatus(errno, absl::StrCat("connect to ", path));
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return absl::ErrnoToStatus(errno, "fcntl O_NONBLOCK");
  }
  return fd;
}

absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, mode_t mode) {
  absl::StatusOr<sockaddr_un> addr = MakeAddress(path);
  if (!addr.ok()) return addr.status();

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
    }
    // A socket file: live if someone accepts connections on it.
    absl::StatusOr<UniqueFd> probe = ConnectUnix(path);
    if (probe.ok()) {
      return absl::AlreadyExistsError(absl::StrCat("a server is already listening at ", path));
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return absl::ErrnoToStatus(errno, absl::StrCat("removing stale socket ", path));
    }
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return absl::ErrnoToStatus(errno, "socket");
  // bind() creates the file with the process umask; set the mode explicitly
  // before anyone can connect (listen() has not been called yet).
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind ", path));
  }
  if (::chmod(path.c_str(), mode) != 0) {
    absl::Status status = absl::ErrnoToStatus(errno, absl::StrCat("chmod ", path));
    ::unlink(path.c_str());
    return status;
  }
  if (::listen(fd.get(), 16) != 0) {
    absl::Status status = absl::ErrnoToStatus(errno, absl::StrCat("listen ", path));
    ::unlink(path.c_str());
    return status;
  }
  return fd;
}

void UnlinkSocketPath(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

}  // namespace vfu
