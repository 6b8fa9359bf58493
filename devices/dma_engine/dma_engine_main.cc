// dma_engine: serves DMA copy engines (dma_engine_device.h) over vfio-user, one
// independent device per socket path, until SIGINT or SIGTERM.
//
//   bazel run //devices/dma_engine -- /tmp/dma0.sock /tmp/dma1.sock
//   bazel run //devices/dma_engine -- --socket_mode=0660 /run/vm1/dma.sock
//
// Each socket serves one client at a time; a device keeps its state
// between clients. Flags, signals and exit status: see
// devices/common/device_server_main.h.
#include <memory>

#include "devices/common/device_server_main.h"
#include "devices/dma_engine/dma_engine_device.h"

int main(int argc, char** argv) {
  return vfu::devices::DeviceServerMain(
      argc, argv,
      {.name = "dma_engine",
       .what = "a 4-channel DMA copy engine",
       .make_device = [] { return std::make_unique<vfu::devices::DmaEngineDevice>(); }});
}
