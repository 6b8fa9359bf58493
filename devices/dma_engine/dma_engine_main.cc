// dma_engine: serves DMA copy engines (dma_engine_device.h) over vfio-user, one
// independent device per socket path, until SIGINT or SIGTERM.
//
//   bazel run //devices/dma_engine -- /tmp/dma0.sock /tmp/dma1.sock
//   bazel run //devices/dma_engine -- --socket_mode=0660 /run/vm1/dma.sock
//
// Each socket serves one client at a time, one after another; a device keeps
// its state between clients. On SIGINT or SIGTERM the server disconnects
// its clients, removes the sockets and exits 0. Logs go to stderr
// (VFU_LOG_LEVEL=debug|info|warning|error sets how much).
#include <signal.h>
#include <sys/types.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "devices/dma_engine/dma_engine_device.h"
#include "vfu/base/log.h"
#include "vfu/vfu.h"

ABSL_FLAG(std::string, socket_mode, "0600",
          "permissions of the socket files, in octal: who may connect (e.g. 0660 for a "
          "VMM running as another user of the same group)");

namespace {

constexpr char kUsage[] =
    "Serves a 4-channel DMA copy engine over vfio-user at each SOCKET_PATH,\n"
    "one independent device per path, until SIGINT or SIGTERM.\n"
    "\n"
    "Usage: dma_engine [--socket_mode=0600] SOCKET_PATH [SOCKET_PATH...]";

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

absl::Status Serve(const std::vector<std::string>& paths, mode_t socket_mode,
                   const sigset_t& stop_signals) {
  // Devices outlive the server: declared first, destroyed last.
  std::vector<std::unique_ptr<vfu::devices::DmaEngineDevice>> devices;
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<vfu::Server> server, vfu::Server::Create());
  for (const std::string& path : paths) {
    devices.push_back(std::make_unique<vfu::devices::DmaEngineDevice>());
    vfu::DeviceOptions options;
    options.socket_mode = socket_mode;
    absl::Status added = server->AddDevice(path, *devices.back(), options);
    if (!added.ok()) {
      return absl::Status(added.code(), absl::StrCat(path, ": ", added.message()));
    }
  }
  VFU_RETURN_IF_ERROR(server->Start());
  VFU_LOG(kInfo, "dma_engine: serving ", paths.size(), " device(s) at ",
          absl::StrJoin(paths, ", "));

  int signal_number = 0;
  if (int error = ::sigwait(&stop_signals, &signal_number); error != 0) {
    server->Stop();
    return absl::ErrnoToStatus(error, "sigwait");
  }
  VFU_LOG(kInfo, "dma_engine: ", ::strsignal(signal_number), ", stopping");
  server->Stop();
  VFU_LOG(kInfo, "dma_engine: stopped, sockets removed");
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> paths(args.begin() + 1, args.end());
  if (paths.empty()) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  if (std::set<std::string>(paths.begin(), paths.end()).size() != paths.size()) {
    std::fprintf(stderr, "dma_engine: a socket path appears twice\n");
    return 2;
  }
  const std::optional<mode_t> socket_mode = ParseMode(absl::GetFlag(FLAGS_socket_mode));
  if (!socket_mode) {
    std::fprintf(stderr,
                 "dma_engine: --socket_mode wants octal permissions such as 0600, not \"%s\"\n",
                 absl::GetFlag(FLAGS_socket_mode).c_str());
    return 2;
  }

  // Blocked before the server starts its threads, so they inherit the mask
  // and the signals wait for sigwait() instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (int error = ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); error != 0) {
    std::fprintf(stderr, "dma_engine: pthread_sigmask: %s\n", std::strerror(error));
    return 1;
  }

  absl::Status status = Serve(paths, *socket_mode, stop_signals);
  if (!status.ok()) {
    std::fprintf(stderr, "dma_engine: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
