// The well-behaved clients: every reply, interrupt and DMA byte checked.
//
//   good_region  scratchpad: random writes (some posted) read back, and the
//                device's DMA doorbell copying client memory (fd-backed or
//                fd-less) into BAR0, compared byte by byte
//   good_gpio    gpio in loopback: random OUTPUT toggles; INPUT, IRQ_STATUS
//                and exactly one MSI or INTx per toggle that changes a line
//   good_dma     dma_engine: copies between fd-backed and fd-less client
//                memory in all four combinations, random offsets and
//                lengths, the destination and its surroundings compared
#include "testing/soak/good_patterns.h"

#include <linux/vfio.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "devices/gpio/gpio_device.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "testing/soak/session_helpers.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::soak {
namespace {

// Operations per session: a session then reconnects, so well-behaved
// clients also exercise attach/detach next to the hostile ones.
constexpr int kOperationsPerSession = 200;

// Ends the session early when the run is over.
bool SessionOver(const SessionContext& context) { return absl::Now() >= context.session_deadline; }

class GoodRegion : public Pattern {
 public:
  std::string_view name() const override { return "good_region"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return false; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    using devices::ScratchpadDevice;
    // Source memory for the device's DMA: both kinds, at distinct IOVAs.
    constexpr uint64_t kFdIova = 0x100000, kMessageIova = 0x200000;
    constexpr uint64_t kMemory = 64 * 1024;
    // Declared before the client: memory the client serves must outlive it
    // (a copy may still be in flight when a failed check returns early).
    std::vector<uint8_t> plain(kMemory);
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    absl::StatusOr<std::unique_ptr<SharedMemory>> shared = SharedMemory::Create(kMemory);
    if (!shared.ok()) return stats.Fail("memfd: ", shared.status().ToString());
    if (absl::Status s = client.DmaMap(kFdIova, kMemory, wire::kDmaMapFlagRead, (*shared)->Share());
        !s.ok()) {
      return stats.Fail("DMA_MAP fd: ", s.ToString());
    }
    if (absl::Status s = client.DmaMapMemory(kMessageIova, absl::MakeSpan(plain)); !s.ok()) {
      return stats.Fail("DMA_MAP fd-less: ", s.ToString());
    }
    for (int op = 0; op < kOperationsPerSession && !SessionOver(context); ++op) {
      ++stats.operations;
      if (context.Uniform(0, 3) != 0) {
        // Region write (posted or not), then read back.
        const uint32_t count = static_cast<uint32_t>(context.Uniform(1, 512));
        const uint64_t offset = context.Uniform(0, ScratchpadDevice::kScratchSize - count);
        std::vector<uint8_t> data(count);
        FillRandom(context, absl::MakeSpan(data));
        if (absl::Status s = client.RegionWrite(0, offset, data, context.Uniform(0, 1) == 1);
            !s.ok()) {
          return stats.Fail("REGION_WRITE: ", s.ToString());
        }
        absl::StatusOr<std::vector<uint8_t>> back = client.RegionRead(0, offset, count);
        if (!back.ok()) return stats.Fail("REGION_READ: ", back.status().ToString());
        if (int64_t at = FirstDifference(*back, data); at >= 0) {
          return stats.Fail("REGION_READ at ", offset, " differs from the write at byte ", at);
        }
        stats.bytes_verified += count;
        continue;
      }
      // The doorbell: the device copies [source, +length) into BAR0 at 0.
      const bool through_fd = context.Uniform(0, 1) == 1;
      absl::Span<uint8_t> memory = through_fd ? (*shared)->bytes() : absl::MakeSpan(plain);
      const uint32_t length = static_cast<uint32_t>(context.Uniform(1, 2048));
      const uint64_t offset = context.Uniform(0, kMemory - length);
      FillRandom(context, memory.subspan(offset, length));
      const uint64_t iova = (through_fd ? kFdIova : kMessageIova) + offset;
      if (absl::Status s = Write64(client, 0, ScratchpadDevice::kRegSource, iova); !s.ok()) {
        return stats.Fail("program source: ", s.ToString());
      }
      if (absl::Status s = Write32(client, 0, ScratchpadDevice::kRegLength, length); !s.ok()) {
        return stats.Fail("program length: ", s.ToString());
      }
      if (absl::Status s = Write32(client, 0, ScratchpadDevice::kRegDoorbell, 1); !s.ok()) {
        return stats.Fail("doorbell: ", s.ToString());
      }
      // Each status read is a round trip in which the client also serves the
      // device's DMA_READ; the deadline only bounds a broken device.
      const absl::Time deadline = context.CallDeadline();
      absl::StatusOr<uint32_t> status;
      do {
        status = Read32(client, 0, ScratchpadDevice::kRegStatus);
      } while (status.ok() && *status == ScratchpadDevice::kBusy && absl::Now() < deadline);
      if (!status.ok()) return stats.Fail("status: ", status.status().ToString());
      if (*status != ScratchpadDevice::kDone) {
        return stats.Fail("scratchpad DMA of ", length, " bytes ended with status ", *status);
      }
      absl::StatusOr<std::vector<uint8_t>> copied = client.RegionRead(0, 0, length);
      if (!copied.ok()) return stats.Fail("REGION_READ: ", copied.status().ToString());
      if (int64_t at = FirstDifference(*copied, memory.subspan(offset, length)); at >= 0) {
        return stats.Fail("scratchpad DMA (", through_fd ? "fd" : "message", ") byte ", at,
                          " differs");
      }
      stats.bytes_verified += length;
    }
  }
};

class GoodGpio : public Pattern {
 public:
  std::string_view name() const override { return "good_gpio"; }
  DeviceKind device() const override { return DeviceKind::kGpio; }
  bool hostile() const override { return false; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    using devices::GpioDevice;
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    const bool msi = context.Uniform(0, 1) == 1;
    const uint32_t index = msi ? kMsiIrq : kIntxIrq;
    // Loopback, all lines outputs with interrupts, nothing pending.
    for (auto [reg, value] : {std::pair<uint64_t, uint32_t>{GpioDevice::kRegControl,
                                                            GpioDevice::kControlLoopback},
                              {GpioDevice::kRegDirection, 0xffff},
                              {GpioDevice::kRegIrqEnable, 0xffff},
                              {GpioDevice::kRegIrqStatus, 0xffff}}) {
      if (absl::Status s = Write32(client, 0, reg, value); !s.ok()) {
        return stats.Fail("setup write: ", s.ToString());
      }
    }
    UniqueFd irq = NewEventfd();
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(irq.get()));
    if (absl::Status s = client.SetIrqEventfds(index, 0, std::move(fds)); !s.ok()) {
      return stats.Fail("SET_IRQS: ", s.ToString());
    }
    absl::StatusOr<uint32_t> output = Read32(client, 0, GpioDevice::kRegOutput);
    if (!output.ok()) return stats.Fail("OUTPUT: ", output.status().ToString());
    uint16_t current = static_cast<uint16_t>(*output);
    DrainEventfd(irq);
    for (int op = 0; op < kOperationsPerSession && !SessionOver(context); ++op) {
      ++stats.operations;
      const uint16_t next = static_cast<uint16_t>(context.Uniform(0, 0xffff));
      const uint16_t changed = current ^ next;
      if (absl::Status s = Write32(client, 0, GpioDevice::kRegOutput, next); !s.ok()) {
        return stats.Fail("OUTPUT write: ", s.ToString());
      }
      current = next;
      absl::StatusOr<uint32_t> input = Read32(client, 0, GpioDevice::kRegInput);
      absl::StatusOr<uint32_t> status = Read32(client, 0, GpioDevice::kRegIrqStatus);
      if (!input.ok() || !status.ok()) return stats.Fail("register read failed");
      if (*input != next || *status != changed) {
        return stats.Fail("INPUT ", *input, " IRQ_STATUS ", *status, " after OUTPUT ", next,
                          " (expected ", changed, ")");
      }
      stats.bytes_verified += 8;
      // The device raises before the write's reply leaves, so the count is
      // complete by now: one raise for a change, none otherwise.
      const uint64_t raised =
          changed == 0 ? DrainEventfd(irq) : ReadEventfd(irq, context.CallDeadline()).value_or(0);
      if (raised != (changed != 0 ? 1u : 0u)) {
        return stats.Fail(msi ? "MSI" : "INTx", " raised ", raised, " times for change ",
                          changed);
      }
      if (absl::Status s = Write32(client, 0, GpioDevice::kRegIrqStatus, changed); !s.ok()) {
        return stats.Fail("IRQ_STATUS clear: ", s.ToString());
      }
      // INTx masks itself on delivery (VFIO): unmask it, as QEMU does at
      // the guest's end of interrupt, so the next change can raise it.
      if (!msi && changed != 0) {
        wire::SetIrqsRequest unmask;
        unmask.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
        unmask.index = kIntxIrq;
        unmask.start = 0;
        unmask.count = 1;
        if (absl::Status s = client.SetIrqs(unmask); !s.ok()) {
          return stats.Fail("INTx unmask: ", s.ToString());
        }
      }
    }
  }
};

class GoodDma : public Pattern {
 public:
  std::string_view name() const override { return "good_dma"; }
  DeviceKind device() const override { return DeviceKind::kDmaEngine; }
  bool hostile() const override { return false; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    namespace de = devices::dma_engine;
    const uint64_t size = context.scale.client_memory_bytes;
    constexpr uint64_t kFdIova = 1ull << 32, kMessageIova = 2ull << 32;
    // Declared before the client: memory the client serves must outlive it
    // (a copy may still be in flight when a failed check returns early).
    std::vector<uint8_t> plain(size);
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    absl::StatusOr<std::unique_ptr<SharedMemory>> shared = SharedMemory::Create(size);
    if (!shared.ok()) return stats.Fail("memfd: ", shared.status().ToString());
    if (absl::Status s = client.DmaMap(kFdIova, size,
                                       wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                                       (*shared)->Share());
        !s.ok()) {
      return stats.Fail("DMA_MAP fd: ", s.ToString());
    }
    if (absl::Status s = client.DmaMapMemory(kMessageIova, absl::MakeSpan(plain)); !s.ok()) {
      return stats.Fail("DMA_MAP fd-less: ", s.ToString());
    }
    const uint32_t channel = static_cast<uint32_t>(context.Uniform(0, de::kNumChannels - 1));
    UniqueFd irq = NewEventfd();
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(irq.get()));
    if (absl::Status s = client.SetIrqEventfds(kMsixIrq, channel, std::move(fds)); !s.ok()) {
      return stats.Fail("SET_IRQS: ", s.ToString());
    }
    // DMA_READ/DMA_WRITE of fd-less memory are served while we wait for the
    // interrupt.
    if (absl::Status s = client.StartServingThread(); !s.ok()) {
      return stats.Fail("serving thread: ", s.ToString());
    }
    absl::Span<uint8_t> memories[2] = {(*shared)->bytes(), absl::MakeSpan(plain)};
    const uint64_t iovas[2] = {kFdIova, kMessageIova};
    for (int op = 0; op < kOperationsPerSession / 10 && !SessionOver(context); ++op) {
      ++stats.operations;
      const int from = static_cast<int>(context.Uniform(0, 1));
      const int to = static_cast<int>(context.Uniform(0, 1));
      const uint32_t length =
          static_cast<uint32_t>(context.Uniform(1, context.scale.max_copy_bytes));
      // Source in the lower half, destination in the upper: never overlapping.
      const uint64_t half = size / 2;
      const uint64_t source = context.Uniform(0, half - length);
      const uint64_t destination = half + context.Uniform(0, half - length);
      FillRandom(context, memories[from].subspan(source, length));
      // The destination and a guard on each side hold a known filler.
      const uint64_t guard_start = destination - std::min<uint64_t>(destination - half, 64);
      const uint64_t guard_end = std::min<uint64_t>(size, destination + length + 64);
      const uint8_t filler = static_cast<uint8_t>(context.Uniform(0, 255));
      std::memset(memories[to].data() + guard_start, filler, guard_end - guard_start);
      absl::Status programmed = Write64(client, 0, de::ChannelRegister(channel, de::kRegSourceLo),
                                        iovas[from] + source);
      if (programmed.ok()) {
        programmed = Write64(client, 0, de::ChannelRegister(channel, de::kRegDestinationLo),
                             iovas[to] + destination);
      }
      if (programmed.ok()) {
        programmed = Write32(client, 0, de::ChannelRegister(channel, de::kRegLength), length);
      }
      if (programmed.ok()) {
        programmed = Write32(client, 0, de::ChannelRegister(channel, de::kRegDoorbell),
                             de::kDoorbellStart);
      }
      if (!programmed.ok()) return stats.Fail("program channel: ", programmed.ToString());
      if (!ReadEventfd(irq, context.CallDeadline()).has_value()) {
        return stats.Fail("no completion interrupt for a copy of ", length, " bytes");
      }
      // Reading STATUS also orders us after the serving thread's writes.
      absl::StatusOr<uint32_t> status =
          Read32(client, 0, de::ChannelRegister(channel, de::kRegStatus));
      if (!status.ok()) return stats.Fail("STATUS: ", status.status().ToString());
      if (*status != de::kStatusDone) {
        absl::StatusOr<uint32_t> error =
            Read32(client, 0, de::ChannelRegister(channel, de::kRegError));
        return stats.Fail("copy ", from, "->", to, " of ", length, " bytes ended with status ",
                          *status, " error ", error.value_or(0xffffffff));
      }
      absl::Span<const uint8_t> written = memories[to].subspan(destination, length);
      if (int64_t at = FirstDifference(written, memories[from].subspan(source, length));
          at >= 0) {
        return stats.Fail("copy ", from, "->", to, " of ", length, " bytes: byte ", at,
                          " differs");
      }
      for (uint64_t i = guard_start; i < guard_end; ++i) {
        if ((i < destination || i >= destination + length) && memories[to][i] != filler) {
          return stats.Fail("copy ", from, "->", to, " wrote outside its destination at ", i);
        }
      }
      stats.bytes_verified += length;
    }
    client.StopServingThread();
  }
};

}  // namespace

std::vector<std::unique_ptr<Pattern>> GoodPatterns() {
  std::vector<std::unique_ptr<Pattern>> patterns;
  patterns.push_back(std::make_unique<GoodRegion>());
  patterns.push_back(std::make_unique<GoodGpio>());
  patterns.push_back(std::make_unique<GoodDma>());
  return patterns;
}

}  // namespace vfu::soak
