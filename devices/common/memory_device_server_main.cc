// A device server for tests of the shared main(): serves 64 KiB memory
// devices (testing/memory_device.h).
#include <memory>

#include "devices/common/device_server_main.h"
#include "testing/memory_device.h"

int main(int argc, char** argv) {
  return vfu::devices::DeviceServerMain(
      argc, argv,
      {.name = "memory",
       .what = "a 64 KiB memory device (for tests)",
       .make_device = [] { return std::make_unique<vfu::testing::MemoryDevice>(64 * 1024); }});
}
