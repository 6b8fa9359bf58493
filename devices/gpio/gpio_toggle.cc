// gpio_toggle: drives a GPIO device (devices/gpio) through vfio-user alone
// and shows an interrupt arriving. It installs an eventfd for MSI vector 0,
// enables the line's interrupt, switches the device to loopback and drives
// the line through OUTPUT, so the input change raises MSI, then waits for
// the eventfd and acknowledges the status bit.
//
//   gpio_toggle [--line=N] SOCKET_PATH
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "devices/gpio/gpio_device.h"
#include "vfu/base/status_macros.h"
#include "vfu/client/client.h"

ABSL_FLAG(int, line, 3, "GPIO line to toggle (0-15)");

namespace vfu::devices {
namespace {

absl::StatusOr<uint32_t> ReadRegister(Client& client, uint64_t offset) {
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, client.RegionRead(0, offset, 4));
  return static_cast<uint32_t>(bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24);
}

absl::Status WriteRegister(Client& client, uint64_t offset, uint32_t value) {
  const uint8_t bytes[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                            static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
  return client.RegionWrite(0, offset, bytes);
}

absl::Status Toggle(const std::string& socket, int line) {
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(socket));
  std::printf("connected to %s\n", socket.c_str());

  UniqueFd interrupt(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!interrupt) return absl::InternalError("eventfd");
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(interrupt.get()));
  VFU_RETURN_IF_ERROR(client->SetIrqEventfds(/*MSI*/ 1, 0, std::move(fds)));
  std::printf("SET_IRQS: eventfd installed for MSI vector 0\n");

  const uint32_t bit = 1u << line;
  VFU_RETURN_IF_ERROR(WriteRegister(*client, GpioDevice::kRegIrqStatus, 0xffff));
  VFU_RETURN_IF_ERROR(WriteRegister(*client, GpioDevice::kRegIrqEnable, bit));
  VFU_RETURN_IF_ERROR(WriteRegister(*client, GpioDevice::kRegControl, 1));  // loopback
  VFU_ASSIGN_OR_RETURN(const uint32_t before, ReadRegister(*client, GpioDevice::kRegInput));
  std::printf("IRQ_ENABLE = 0x%04x, loopback on, INPUT = 0x%04x\n", bit, before);

  const absl::Time start = absl::Now();
  VFU_RETURN_IF_ERROR(WriteRegister(*client, GpioDevice::kRegOutput, before ^ bit));
  std::printf("OUTPUT line %d -> %d\n", line, (before & bit) ? 0 : 1);
  struct pollfd p = {interrupt.get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return absl::DeadlineExceededError("no interrupt within 5 s");
  uint64_t count = 0;
  if (::read(interrupt.get(), &count, sizeof count) != sizeof count) {
    return absl::InternalError("reading the eventfd");
  }
  std::printf("interrupt: MSI vector 0 fired (count %llu) %lld us after the write\n",
              static_cast<unsigned long long>(count),
              static_cast<long long>(absl::ToInt64Microseconds(absl::Now() - start)));

  VFU_ASSIGN_OR_RETURN(const uint32_t status, ReadRegister(*client, GpioDevice::kRegIrqStatus));
  VFU_ASSIGN_OR_RETURN(const uint32_t after, ReadRegister(*client, GpioDevice::kRegInput));
  std::printf("IRQ_STATUS = 0x%04x, INPUT = 0x%04x\n", status, after);
  VFU_RETURN_IF_ERROR(WriteRegister(*client, GpioDevice::kRegIrqStatus, status));
  VFU_ASSIGN_OR_RETURN(const uint32_t cleared, ReadRegister(*client, GpioDevice::kRegIrqStatus));
  std::printf("acknowledged: IRQ_STATUS = 0x%04x\n", cleared);
  return (status & bit) != 0 && cleared == 0
             ? absl::OkStatus()
             : absl::InternalError("the status bit did not behave");
}

}  // namespace
}  // namespace vfu::devices

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("gpio_toggle [--line=N] SOCKET_PATH");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const int line = absl::GetFlag(FLAGS_line);
  if (args.size() != 2 || line < 0 || line >= vfu::devices::GpioDevice::kNumLines) {
    std::fprintf(stderr, "usage: gpio_toggle [--line=0..15] SOCKET_PATH\n");
    return 2;
  }
  absl::Status status = vfu::devices::Toggle(args[1], line);
  if (!status.ok()) {
    std::fprintf(stderr, "gpio_toggle: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
