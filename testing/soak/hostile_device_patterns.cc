// Hostile clients that misuse the device commands themselves:
//
//   posted_then_close  NO_REPLY REGION_WRITEs, then close at once; the next
//                      client must read every one of them back
//   saturated_eventfd  a blocking eventfd whose counter is full, installed
//                      by SET_IRQS as the GPIO's MSI or INTx trigger, then
//                      line toggles; every REGION_WRITE must still get its
//                      reply (the server must not block on the client's fd)
#include "testing/soak/hostile_device_patterns.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "devices/gpio/gpio_device.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "testing/soak/session_helpers.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::soak {
namespace {

class PostedThenClose : public Pattern {
 public:
  std::string_view name() const override { return "posted_then_close"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    using devices::ScratchpadDevice;
    // Distinct 8-byte slots of the scratch memory, random values.
    std::vector<uint64_t> slots(ScratchpadDevice::kScratchSize / 8);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), *context.rng);
    slots.resize(context.Uniform(1, 64));
    std::vector<uint64_t> values(slots.size());
    {
      absl::StatusOr<std::unique_ptr<Client>> writer =
          ConnectClient(context, stats, absl::Seconds(30));
      if (!writer.ok()) return stats.Fail("connect: ", writer.status().ToString());
      for (size_t i = 0; i < slots.size(); ++i) {
        values[i] = (*context.rng)();
        if (absl::Status s = Write64(**writer, 0, slots[i] * 8, values[i], /*posted=*/true);
            !s.ok()) {
          return stats.Fail("posted REGION_WRITE: ", s.ToString());
        }
        ++stats.operations;
      }
      // The writer closes here, its writes possibly not yet run.
    }
    absl::StatusOr<std::unique_ptr<Client>> reader =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!reader.ok()) return stats.Fail("reconnect: ", reader.status().ToString());
    for (size_t i = 0; i < slots.size(); ++i) {
      absl::StatusOr<std::vector<uint8_t>> bytes = (*reader)->RegionRead(0, slots[i] * 8, 8);
      if (!bytes.ok() || bytes->size() != 8) return stats.Fail("REGION_READ failed");
      uint64_t value;
      std::memcpy(&value, bytes->data(), 8);
      if (value != values[i]) {
        return stats.Fail("posted write ", i + 1, " of ", slots.size(), " at ", slots[i] * 8,
                          " lost when its client closed");
      }
      stats.bytes_verified += 8;
    }
  }
};

class SaturatedEventfd : public Pattern {
 public:
  std::string_view name() const override { return "saturated_eventfd"; }
  DeviceKind device() const override { return DeviceKind::kGpio; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    using devices::GpioDevice;
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    for (auto [reg, value] : {std::pair<uint64_t, uint32_t>{GpioDevice::kRegControl,
                                                            GpioDevice::kControlLoopback},
                              {GpioDevice::kRegDirection, 0xffff},
                              {GpioDevice::kRegIrqEnable, 0xffff},
                              {GpioDevice::kRegIrqStatus, 0xffff}}) {
      if (absl::Status s = Write32(client, 0, reg, value); !s.ok()) {
        return stats.Fail("setup write: ", s.ToString());
      }
    }
    // Blocking, and one short of its maximum count: any further write by
    // the server blocks (unless it makes its own writes non-blocking).
    UniqueFd full = NewEventfd(/*blocking=*/true);
    const uint64_t almost_max = 0xfffffffffffffffeull;
    if (::write(full.get(), &almost_max, sizeof almost_max) != sizeof almost_max) {
      return stats.Fail("could not fill the eventfd");
    }
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(full.get()));
    const uint32_t index = context.Uniform(0, 1) == 1 ? kMsiIrq : kIntxIrq;
    if (absl::Status s = client.SetIrqEventfds(index, 0, std::move(fds)); !s.ok()) {
      return stats.Fail("SET_IRQS: ", s.ToString());
    }
    absl::StatusOr<uint32_t> output = Read32(client, 0, GpioDevice::kRegOutput);
    if (!output.ok()) return stats.Fail("OUTPUT: ", output.status().ToString());
    uint32_t current = *output;
    for (int toggle = 0; toggle < 4; ++toggle) {
      ++stats.operations;
      current ^= 1u << context.Uniform(0, 15);
      if (absl::Status s = Write32(client, 0, GpioDevice::kRegOutput, current); !s.ok()) {
        return stats.Fail("a toggle raising ", index == kMsiIrq ? "MSI" : "INTx",
                          " on a full blocking eventfd got no reply: ", s.ToString());
      }
      // Clear the status so that the next toggle raises again.
      if (absl::Status s = Write32(client, 0, GpioDevice::kRegIrqStatus, 0xffff); !s.ok()) {
        return stats.Fail("IRQ_STATUS clear: ", s.ToString());
      }
    }
  }
};

}  // namespace

std::vector<std::unique_ptr<Pattern>> HostileDevicePatterns() {
  std::vector<std::unique_ptr<Pattern>> patterns;
  patterns.push_back(std::make_unique<PostedThenClose>());
  patterns.push_back(std::make_unique<SaturatedEventfd>());
  return patterns;
}

}  // namespace vfu::soak
