// The main() every device under devices/ shares: serve one independent
// device per socket path given on the command line, in one Server, until
// SIGINT or SIGTERM, then disconnect the clients, remove the sockets and
// exit 0.
//
//   int main(int argc, char** argv) {
//     return vfu::devices::DeviceServerMain(
//         argc, argv, {.name = "gpio", .what = "a 16-line GPIO controller",
//                      .make_device = [] { return std::make_unique<GpioDevice>(); }});
//   }
//
// Flags: --socket_mode=0600 (octal permissions of the socket files),
// --control=PATH and --control_mode=0600 (the control plane's socket; see
// tools/vfuctl), --help. Every binary takes --control, but only binaries
// that link :device_server_main_with_control can serve it (the others do
// not link gRPC, and refuse the flag with exit status 1).
// Exit status: 0 after a signal, 1 when serving fails (e.g. a path that
// cannot be listened on), 2 for a malformed command line. Logs go to stderr
// (VFU_LOG_LEVEL=debug|info|warning|error sets how much).
#ifndef VFU_DEVICES_COMMON_DEVICE_SERVER_MAIN_H_
#define VFU_DEVICES_COMMON_DEVICE_SERVER_MAIN_H_

#include <functional>
#include <memory>
#include <string>

#include "vfu/device/device.h"

namespace vfu::devices {

struct DeviceServer {
  // The binary's name, prefixing its messages.
  std::string name;
  // What it serves, for --help: "Serves <what> over vfio-user ...".
  std::string what;
  // Makes one device; called once per socket path, after the flags are
  // parsed. Null when it cannot (it says why on stderr): exit status 1.
  std::function<std::unique_ptr<Device>()> make_device;
};

int DeviceServerMain(int argc, char** argv, const DeviceServer& server);

}  // namespace vfu::devices

#endif  // VFU_DEVICES_COMMON_DEVICE_SERVER_MAIN_H_
