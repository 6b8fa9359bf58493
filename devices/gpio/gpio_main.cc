// gpio: serves GPIO controllers (gpio_device.h) over vfio-user, one
// independent device per socket path, until SIGINT or SIGTERM.
//
//   bazel run //devices/gpio -- /tmp/gpio0.sock /tmp/gpio1.sock
//   bazel run //devices/gpio -- --socket_mode=0660 /run/vm1/gpio.sock
//
// Each socket serves one client at a time; a device keeps its state
// between clients. Flags, signals and exit status: see
// devices/common/device_server_main.h.
#include <memory>

#include "devices/common/device_server_main.h"
#include "devices/gpio/gpio_device.h"

int main(int argc, char** argv) {
  return vfu::devices::DeviceServerMain(
      argc, argv,
      {.name = "gpio",
       .what = "a 16-line GPIO controller",
       .make_device = [] { return std::make_unique<vfu::devices::GpioDevice>(); }});
}
