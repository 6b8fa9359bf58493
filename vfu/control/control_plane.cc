// The control plane a Server starts when ServerOptions::control names a
// socket: a ServerControlBackend behind the gRPC service. Linking this
// target (alwayslink) registers it with the Server (vfu/server/control_plane.h).
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/control/grpc_control_server.h"
#include "vfu/control/server_control_backend.h"
#include "vfu/server/control_plane.h"
#include "vfu/server/server.h"

namespace vfu::control {
namespace {

class GrpcControlPlane : public ControlPlane {
 public:
  explicit GrpcControlPlane(Server& server) : backend_(server) {}

  absl::Status Start(const ControlPlaneOptions& options) {
    std::string error;
    grpc_ = GrpcControlServer::Start(backend_, options.socket_path, options.socket_mode, &error);
    if (grpc_ == nullptr) return absl::UnavailableError(error);
    VFU_LOG(kInfo, "control plane at ", options.socket_path);
    return absl::OkStatus();
  }

 private:
  // Destroyed in reverse: the service stops before the backend goes.
  ServerControlBackend backend_;
  std::unique_ptr<GrpcControlServer> grpc_;
};

absl::StatusOr<std::unique_ptr<ControlPlane>> StartGrpcControlPlane(
    Server& server, const ControlPlaneOptions& options) {
  auto plane = std::make_unique<GrpcControlPlane>(server);
  if (absl::Status started = plane->Start(options); !started.ok()) return started;
  return std::unique_ptr<ControlPlane>(std::move(plane));
}

// Static registration: only binaries that link this target get a control
// plane.
const bool registered = [] {
  SetControlPlaneFactory(&StartGrpcControlPlane);
  return true;
}();

}  // namespace
}  // namespace vfu::control
