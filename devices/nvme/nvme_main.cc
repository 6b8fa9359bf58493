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

// Abseil keeps only the last of a repeated flag: merge every --namespace
// into one comma-separated flag, in order, before the flags are parsed.
std::vector<char*> MergeNamespaceFlags(int argc, char** argv, std::string& merged) {
  std::vector<char*> args = {argv[0]};
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      args.insert(args.end(), argv + i, argv + argc);
      break;
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    if (name != "--namespace" && name != "-namespace") {
      args.push_back(argv[i]);
    } else if (equals != std::string::npos) {
      values.push_back(arg.substr(equals + 1));
    } else if (i + 1 < argc) {
      values.push_back(argv[++i]);
    }
  }
  if (!values.empty()) {
    merged = "--namespace=";
    for (size_t i = 0; i < values.size(); ++i) merged += (i > 0 ? "," : "") + values[i];
    args.insert(args.begin() + 1, merged.data());
  }
  return args;
}

int main(int argc, char** argv) {
  std::string merged;
  std::vector<char*> args = MergeNamespaceFlags(argc, argv, merged);
  args.push_back(nullptr);
  return vfu::devices::DeviceServerMain(
      static_cast<int>(args.size() - 1), args.data(),
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
