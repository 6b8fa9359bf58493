// GrpcControlServer: the vfu.control.v1 service (proto/control.proto) on a
// UNIX socket, answering from a ControlBackend.
//
//   std::string error;
//   std::unique_ptr<GrpcControlServer> server =
//       GrpcControlServer::Start(backend, "/run/vfu/control.sock", 0600, &error);
//   ...
//   server.reset();   // stops: feeds end, in-flight requests finish
//
// The socket appears at its path with `socket_mode` already set: it is
// bound in a private directory beside it, chmod()ed, then renamed into
// place (gRPC creates it with the umask's mode). A stale file at the path
// is replaced. At most kMaxEventFeeds WatchEvents streams at
// once; more get RESOURCE_EXHAUSTED. SaveState, LoadState and
// SetMigrationState answer UNIMPLEMENTED (device migration has not landed).
//
// Abseil-free: this header includes no gRPC or Abseil header, so both
// sides of the seam can include it.
//
// Thread safety: Start() and the destructor from one thread; `backend`
// must outlive the server.
#ifndef VFU_CONTROL_GRPC_CONTROL_SERVER_H_
#define VFU_CONTROL_GRPC_CONTROL_SERVER_H_

#include <memory>
#include <string>

#include "vfu/control/control_backend.h"

namespace vfu::control {

class GrpcControlServer {
 public:
  static constexpr int kMaxEventFeeds = 16;
  // How often an idle event feed looks for cancellation and shutdown.
  static constexpr int kFeedPollMs = 200;

  // Nullptr and `error` set when the socket cannot be served.
  static std::unique_ptr<GrpcControlServer> Start(ControlBackend& backend,
                                                  const std::string& socket_path,
                                                  unsigned socket_mode, std::string* error);
  ~GrpcControlServer();

  const std::string& socket_path() const;

 private:
  struct State;
  explicit GrpcControlServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace vfu::control

#endif  // VFU_CONTROL_GRPC_CONTROL_SERVER_H_
