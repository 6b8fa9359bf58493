// soak_server: every sample device served by one vfu::Server, for the soak
// test (testing/soak/soak_runner.h), which runs it as a child process so
// that a crash, a hang or a leak of the server is observed from outside.
//
//   soak_server [--max_write_stall_ms=N] KIND:SOCKET_PATH [KIND:SOCKET_PATH...]
//
// KIND is gpio, dma_engine, scratchpad or nvme; each argument is one device
// instance at its own socket. An nvme instance is an NvmeController (default
// LBA size and I/O threads) over an 8 MiB image file of its own, created in a
// temporary directory that is removed at exit; the image's fd is open from
// before "ready", so it is part of the baseline the soak measures. The server prints "ready" once it serves, then
// obeys one command per line on stdin, answering each with one line:
//   measure  -> "fds=N rss_kb=N"   (after returning freed heap to the system)
//   stop     -> "stopped stop_us=N fds=N rss_kb=N", then exits 0
// End of input counts as "stop".
#include <malloc.h>
#include <unistd.h>

#include <fcntl.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "devices/dma_engine/dma_engine_device.h"
#include "devices/gpio/gpio_device.h"
#include "devices/nvme/nvme_controller.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "testing/soak/process_figures.h"
#include "testing/temp_dir.h"
#include "vfu/base/unique_fd.h"
#include "vfu/vfu.h"

ABSL_FLAG(int, max_write_stall_ms, 2000,
          "RuntimeOptions::max_write_stall: how long a client that reads no replies keeps its "
          "connection");

namespace vfu::soak {
namespace {

// Size of each nvme instance's namespace image (testing/soak/nvme_patterns.h
// relies on it).
constexpr off_t kNvmeImageBytes = 8 << 20;

// An NvmeController over a fresh, zero-filled image `path`; nullptr (and a
// message) when it cannot be made.
std::unique_ptr<Device> MakeNvme(const std::string& path) {
  {
    UniqueFd image(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!image.valid() || ::ftruncate(image.get(), kNvmeImageBytes) != 0) {
      std::cerr << "soak_server: cannot create " << path << "\n";
      return nullptr;
    }
  }
  absl::StatusOr<std::unique_ptr<nvme::NvmeController>> controller =
      nvme::NvmeController::Create({path}, /*lba_size=*/512);
  if (!controller.ok()) {
    std::cerr << "soak_server: " << controller.status() << "\n";
    return nullptr;
  }
  return *std::move(controller);
}

std::unique_ptr<Device> MakeDevice(const std::string& kind, const testing::ScopedTempDir& images,
                                   size_t index) {
  if (kind == "gpio") return std::make_unique<devices::GpioDevice>();
  if (kind == "dma_engine") return std::make_unique<devices::DmaEngineDevice>();
  if (kind == "scratchpad") return std::make_unique<devices::ScratchpadDevice>();
  if (kind == "nvme") return MakeNvme(images.File(absl::StrCat("nvme", index, ".img")));
  return nullptr;
}

std::string FiguresLine() {
  ::malloc_trim(0);
  const ProcessFigures figures = MeasureProcess(::getpid());
  return absl::StrCat("fds=", figures.fds, " rss_kb=", figures.rss_kb);
}

int Main(const std::vector<char*>& args) {
  // The nvme images' directory outlives the devices that hold them open.
  const testing::ScopedTempDir images("vfu-soak-nvme");
  // Devices outlive the server: declared first, destroyed last.
  std::vector<std::unique_ptr<Device>> devices;
  ServerOptions options;
  options.runtime.max_write_stall = absl::Milliseconds(absl::GetFlag(FLAGS_max_write_stall_ms));
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(options);
  if (!server.ok()) {
    std::cerr << "soak_server: " << server.status() << "\n";
    return 1;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    std::vector<std::string> parts = absl::StrSplit(args[i], absl::MaxSplits(':', 1));
    if (parts.size() != 2 || (devices.push_back(MakeDevice(parts[0], images, i)), devices.back() == nullptr)) {
      std::cerr << "soak_server: expected KIND:SOCKET_PATH, got " << args[i] << "\n";
      return 2;
    }
    if (absl::Status added = (*server)->AddDevice(parts[1], *devices.back()); !added.ok()) {
      std::cerr << "soak_server: " << parts[1] << ": " << added << "\n";
      return 1;
    }
  }
  if (absl::Status started = (*server)->Start(); !started.ok()) {
    std::cerr << "soak_server: " << started << "\n";
    return 1;
  }
  std::cout << "ready" << std::endl;
  std::string command;
  while (std::getline(std::cin, command) && command != "stop") {
    if (command == "measure") {
      std::cout << FiguresLine() << std::endl;
    } else {
      std::cout << "unknown command" << std::endl;
    }
  }
  const absl::Time start = absl::Now();
  (*server)->Stop();
  const int64_t stop_us = absl::ToInt64Microseconds(absl::Now() - start);
  server->reset();
  std::cout << "stopped stop_us=" << stop_us << " " << FiguresLine() << std::endl;
  return 0;
}

}  // namespace
}  // namespace vfu::soak

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return vfu::soak::Main(args);
}
