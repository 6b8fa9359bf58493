#include "vfu/stats/device_statistics.h"

namespace vfu {

DeviceStatistics::Snapshot DeviceStatistics::snapshot() const {
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  Snapshot s;
  for (size_t code = 0; code < kCommandSlots; ++code) {
    const CommandCounters& c = commands_[code];
    if (load(c.count) == 0) continue;
    s.commands.push_back(CommandSnapshot{.command = static_cast<uint32_t>(code),
                                         .count = load(c.count),
                                         .errors = load(c.errors),
                                         .latency = c.latency.snapshot()});
  }
  for (size_t e = 0; e < kErrnoSlots; ++e) {
    if (uint64_t n = load(errnos_[e]); n != 0) {
      s.errors.push_back(ErrnoSnapshot{.errno_value = static_cast<uint32_t>(e), .count = n});
    }
  }
  s.region_bytes_read = load(region_bytes_read_);
  s.region_bytes_written = load(region_bytes_written_);
  s.dma_mapped_bytes_read = load(dma_mapped_bytes_read_);
  s.dma_mapped_bytes_written = load(dma_mapped_bytes_written_);
  s.dma_message_bytes_read = load(dma_message_bytes_read_);
  s.dma_message_bytes_written = load(dma_message_bytes_written_);
  s.dma_messages = load(dma_messages_);
  s.interrupts_raised = load(interrupts_raised_);
  s.interrupts_coalesced = load(interrupts_coalesced_);
  s.backpressure_reply_episodes = load(backpressure_reply_episodes_);
  s.backpressure_command_episodes = load(backpressure_command_episodes_);
  s.clients_connected = load(clients_connected_);
  s.clients_served = load(clients_served_);
  s.clients_refused = load(clients_refused_);
  return s;
}

}  // namespace vfu
