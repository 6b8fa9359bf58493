// Listening UNIX-domain stream sockets at a filesystem path.
//
// ListenUnix() refuses a path a live server still answers on, removes a
// stale socket file left by a crashed one, and creates the socket with the
// requested permissions (access control is the socket file's mode, so the
// default is owner-only). The caller unlinks the path when done
// (UnlinkSocketPath), as the protocol expects a backend to clean up.
#ifndef VFU_SERVER_UNIX_LISTENER_H_
#define VFU_SERVER_UNIX_LISTENER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "vfu/base/unique_fd.h"

namespace vfu {

// Returns a non-blocking, close-on-exec listening socket bound to `path`.
//   AlreadyExists       another process is serving at `path`
//   FailedPrecondition  `path` exists and is not a socket
//   InvalidArgument     `path` is too long for a socket address
absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, mode_t mode = 0600);

// Removes the socket file at `path` if it is a socket.
void UnlinkSocketPath(const std::string& path);

// Connects to the server at `path` (blocking connect, then non-blocking).
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path);

}  // namespace vfu

#endif  // VFU_SERVER_UNIX_LISTENER_H_
