// serve_test_device: serves the end-to-end test device (served_device.h)
// at SOCKET until SIGINT or SIGTERM, for trying inspect by hand and for
// inspect_main_test.sh. Prints "serving SOCKET" once clients can connect.
//
//   bazel run //tools/inspect:serve_test_device -- /tmp/test.sock
#include <signal.h>

#include <cstdio>
#include <memory>

#include "tools/inspect/served_device.h"
#include "vfu/server/server.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: serve_test_device SOCKET\n");
    return 2;
  }
  // Blocked before any thread starts, so every thread inherits the mask and
  // sigwait below is the only taker.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  vfu::inspect::testing::CountingDevice device(vfu::inspect::testing::TestDeviceSpec());
  absl::StatusOr<std::unique_ptr<vfu::Server>> server = vfu::Server::Create();
  absl::Status status = server.ok() ? (*server)->AddDevice(argv[1], device) : server.status();
  if (status.ok()) status = (*server)->Start();
  if (!status.ok()) {
    std::fprintf(stderr, "serve_test_device: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("serving %s\n", argv[1]);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  (*server)->Stop();
  return 0;
}
