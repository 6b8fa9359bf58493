// GpioTest: a GpioDevice served by a real Server and driven by the client
// library, all in one process, for the end-to-end tests of the device; plus
// eventfd helpers for watching its interrupts.
#ifndef VFU_DEVICES_GPIO_GPIO_TEST_FIXTURE_H_
#define VFU_DEVICES_GPIO_GPIO_TEST_FIXTURE_H_

#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "devices/gpio/gpio_device.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu::devices {

// How long a test waits for an interrupt that should come. Interrupts are
// raised before the call that causes them returns, so this only bounds a
// broken device; checks that nothing came use a zero timeout.
inline constexpr int kInterruptTimeoutMs = 5000;

// How long Reconnect() retries: only bounds a server that never lets go.
inline constexpr absl::Duration kReconnectTimeout = absl::Seconds(20);

// A fresh non-blocking eventfd, or an invalid one (the test then fails).
inline UniqueFd NewEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid()) << "eventfd: " << std::strerror(errno);
  return fd;
}

// Waits up to `timeout_ms` for `fd` to be signalled and consumes it: the
// counter (how many raises it collected), or nullopt if none came.
inline std::optional<uint64_t> ReadEventfd(const UniqueFd& fd, int timeout_ms) {
  pollfd p = {.fd = fd.get(), .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  uint64_t count = 0;
  if (::read(fd.get(), &count, sizeof count) != sizeof count) return std::nullopt;
  return count;
}

class GpioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, Server::Create());
    ASSERT_OK(server_->AddDevice(socket_path(), device_));
    ASSERT_OK(server_->Start());
    ASSERT_OK_AND_ASSIGN(client_, Client::Connect(socket_path()));
  }
  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Stop();
  }

  std::string socket_path() const { return dir_.File("gpio.sock"); }

  // Replaces the client. The server refuses a new client until it has
  // noticed that the old one left, so this retries while refused, for as
  // long as that may take on a loaded machine (a count of attempts would
  // assume a speed).
  void Reconnect() {
    client_.reset();
    const absl::Time deadline = absl::Now() + kReconnectTimeout;
    absl::Status last;
    do {
      absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(socket_path());
      if (client.ok()) {
        client_ = *std::move(client);
        return;
      }
      last = client.status();
      std::this_thread::yield();
    } while (absl::Now() < deadline);
    FAIL() << "the server kept refusing a new client: " << last;
  }

  uint32_t Read32(uint64_t offset) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client_->RegionRead(0, offset, 4);
    EXPECT_OK(bytes);
    uint32_t value = 0;
    if (bytes.ok() && bytes->size() == 4) std::memcpy(&value, bytes->data(), 4);
    return value;
  }
  void Write32(uint64_t offset, uint32_t value) {
    std::vector<uint8_t> bytes(4);
    std::memcpy(bytes.data(), &value, 4);
    EXPECT_OK(client_->RegionWrite(0, offset, bytes));
  }

  // Installs a new eventfd as the trigger of vector 0 of IRQ index
  // `index`; returns the test's end of it.
  UniqueFd Watch(uint32_t index) {
    UniqueFd fd = NewEventfd();
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(fd.get()));
    EXPECT_OK(client_->SetIrqEventfds(index, 0, std::move(fds)));
    return fd;
  }

  // SET_IRQS MASK / UNMASK of vector 0 of `index`.
  absl::Status SetMasked(uint32_t index, bool masked) {
    wire::SetIrqsRequest request;
    request.flags = VFIO_IRQ_SET_DATA_NONE |
                    (masked ? VFIO_IRQ_SET_ACTION_MASK : VFIO_IRQ_SET_ACTION_UNMASK);
    request.index = index;
    request.start = 0;
    request.count = 1;
    return client_->SetIrqs(request);
  }

  testing::ScopedTempDir dir_;
  GpioDevice device_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_GPIO_GPIO_TEST_FIXTURE_H_
