// ControlPlane: the hook through which a Server starts the control-plane
// service (vfu/control/) without depending on it.
//
// The service is gRPC, which device binaries that do not ask for it must
// not link. So the Server only knows this interface: a binary that links
// //vfu/control:control_plane registers a factory at start-up, and a
// Server whose ServerOptions::control names a socket calls it in Start().
// Without the factory, such a Server fails to start (FailedPrecondition),
// never silently serves without its control plane.
//
// Thread safety: SetControlPlaneFactory() from static initialization or
// before any Server starts.
#ifndef VFU_SERVER_CONTROL_PLANE_H_
#define VFU_SERVER_CONTROL_PLANE_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace vfu {

class Server;

struct ControlPlaneOptions {
  // UNIX socket of the service; empty: no control plane.
  std::string socket_path;
  // Permissions of the socket file: whoever can connect controls every
  // device of the server.
  mode_t socket_mode = 0600;
};

// A running control plane. Destroying it stops it: in-flight requests
// finish (event feeds end), no new ones start, the socket is removed.
class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
};

// Starts the service for `server` (already started). Called by Server.
using ControlPlaneFactory = absl::StatusOr<std::unique_ptr<ControlPlane>> (*)(
    Server& server, const ControlPlaneOptions& options);

void SetControlPlaneFactory(ControlPlaneFactory factory);
ControlPlaneFactory GetControlPlaneFactory();

}  // namespace vfu

#endif  // VFU_SERVER_CONTROL_PLANE_H_
