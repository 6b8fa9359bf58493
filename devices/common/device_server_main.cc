#include "devices/common/device_server_main.h"

#include <signal.h>
#include <sys/types.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vfu/base/log.h"
#include "vfu/vfu.h"

ABSL_FLAG(std::string, socket_mode, "0600",
          "permissions of the socket files, in octal: who may connect (e.g. 0660 for a "
          "VMM running as another user of the same group)");

ABSL_FLAG(std::string, control, "",
          "serve the control plane (vfu.control.v1 over gRPC; see tools/vfuctl) at this UNIX "
          "socket path; needs a binary linked with //devices/common:device_server_main_with_control");
ABSL_FLAG(std::string, control_mode, "0600",
          "permissions of the control socket, in octal: whoever can connect controls every "
          "device of this server");

namespace vfu::devices {
namespace {

// "0660" -> 0660; nullopt unless it is octal permission bits.
std::optional<mode_t> ParseMode(const std::string& text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  mode_t mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<mode_t>(c - '0');
  }
  if (mode > 0777) return std::nullopt;
  return mode;
}

absl::Status Serve(const DeviceServer& spec, const std::vector<std::string>& paths,
                   mode_t socket_mode, const ControlPlaneOptions& control,
                   const sigset_t& stop_signals) {
  // Devices outlive the server: declared first, destroyed last.
  std::vector<std::unique_ptr<Device>> devices;
  ServerOptions server_options;
  server_options.control = control;
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Create(server_options));
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& path = paths[i];
    devices.push_back(spec.make_device());
    if (devices.back() == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": the device could not be made"));
    }
    DeviceOptions options;
    options.socket_mode = socket_mode;
    // The control plane's name: the binary's, numbered when it serves more.
    options.name = paths.size() == 1 ? spec.name : absl::StrCat(spec.name, i);
    absl::Status added = server->AddDevice(path, *devices.back(), options);
    if (!added.ok()) {
      return absl::Status(added.code(), absl::StrCat(path, ": ", added.message()));
    }
  }
  VFU_RETURN_IF_ERROR(server->Start());
  VFU_LOG(kInfo, spec.name, ": serving ", paths.size(), " device(s) at ",
          absl::StrJoin(paths, ", "));

  int signal_number = 0;
  if (int error = ::sigwait(&stop_signals, &signal_number); error != 0) {
    server->Stop();
    return absl::ErrnoToStatus(error, "sigwait");
  }
  VFU_LOG(kInfo, spec.name, ": ", ::strsignal(signal_number), ", stopping");
  server->Stop();
  VFU_LOG(kInfo, spec.name, ": stopped, sockets removed");
  return absl::OkStatus();
}

}  // namespace

int DeviceServerMain(int argc, char** argv, const DeviceServer& spec) {
  const std::string usage = absl::StrCat(
      "Serves ", spec.what, " over vfio-user at each SOCKET_PATH,\n",
      "one independent device per path, until SIGINT or SIGTERM.\n\n", "Usage: ", spec.name,
      " [--socket_mode=0600] [--control=PATH [--control_mode=0600]] SOCKET_PATH "
      "[SOCKET_PATH...]");
  absl::SetProgramUsageMessage(usage);
  // --help lists the flags of this file and of the binary's own main
  // (named *_main.cc), not those of the libraries linked in.
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "device_server_main.cc") || absl::EndsWith(file, "_main.cc");
  };
  absl::SetFlagsUsageConfig(config);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> paths(args.begin() + 1, args.end());
  const char* name = spec.name.c_str();
  if (paths.empty()) {
    std::fprintf(stderr, "%s\n", usage.c_str());
    return 2;
  }
  if (std::set<std::string>(paths.begin(), paths.end()).size() != paths.size()) {
    std::fprintf(stderr, "%s: a socket path appears twice\n", name);
    return 2;
  }
  const std::optional<mode_t> socket_mode = ParseMode(absl::GetFlag(FLAGS_socket_mode));
  if (!socket_mode) {
    std::fprintf(stderr, "%s: --socket_mode wants octal permissions such as 0600, not \"%s\"\n",
                 name, absl::GetFlag(FLAGS_socket_mode).c_str());
    return 2;
  }

  const std::optional<mode_t> control_mode = ParseMode(absl::GetFlag(FLAGS_control_mode));
  if (!control_mode) {
    std::fprintf(stderr, "%s: --control_mode wants octal permissions such as 0600, not \"%s\"\n",
                 name, absl::GetFlag(FLAGS_control_mode).c_str());
    return 2;
  }
  const ControlPlaneOptions control{.socket_path = absl::GetFlag(FLAGS_control),
                                    .socket_mode = *control_mode};
  if (!control.socket_path.empty() &&
      std::set<std::string>(paths.begin(), paths.end()).count(control.socket_path) != 0) {
    std::fprintf(stderr, "%s: --control names a device socket\n", name);
    return 2;
  }

  // Blocked before the server starts its threads, so they inherit the mask
  // and the signals wait for sigwait() instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (int error = ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); error != 0) {
    std::fprintf(stderr, "%s: pthread_sigmask: %s\n", name, std::strerror(error));
    return 1;
  }

  absl::Status status = Serve(spec, paths, *socket_mode, control, stop_signals);
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace vfu::devices
