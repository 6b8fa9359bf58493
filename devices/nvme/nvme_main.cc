// nvme: serves an NVMe controller (nvme_controller.h) over vfio-user whose
// namespaces are raw image files, until SIGINT or SIGTERM.
//
//   bazel run //devices/nvme -- --namespace=/var/lib/disk.img /tmp/nvme.sock
//   bazel run //devices/nvme -- --namespace=a.img --namespace=b.img --lba_size=4096 /tmp/nvme.sock
//
// Each --namespace adds one (NSID 1, 2, ... in order). With several socket
// paths, every controller serves the same files: give one path per set of
// files. Flags, signals and exit status: devices/common/device_server_main.h.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "devices/common/device_server_main.h"
#include "devices/nvme/nvme_controller.h"

ABSL_FLAG(std::vector<std::string>, namespace, {},
          "raw image file of a namespace; repeat (or separate with commas) for several");
ABSL_FLAG(uint32_t, lba_size, 512, "LBA size of every namespace: 512 or 4096");
ABSL_FLAG(uint32_t, io_threads, 2, "threads serving the I/O queues");

int main(int argc, char** argv) {
  return vfu::devices::DeviceServerMain(
      argc, argv,
      {.name = "nvme",
       .what = "an NVMe controller backed by image files (--namespace=FILE)",
       .make_device = []() -> std::unique_ptr<vfu::Device> {
         absl::StatusOr<std::unique_ptr<vfu::nvme::NvmeController>> controller =
             vfu::nvme::NvmeController::Create(absl::GetFlag(FLAGS_namespace),
                                               absl::GetFlag(FLAGS_lba_size),
                                               absl::GetFlag(FLAGS_io_threads));
         if (!controller.ok()) {
           std::fprintf(stderr, "nvme: %s\n", controller.status().ToString().c_str());
           return nullptr;
         }
         return *std::move(controller);
       }});
}
