// DeviceStatistics: the always-on counters of one served device, kept by
// the runtime and read by the control plane (proto/control.proto,
// DeviceStats, documents each one).
//
//   DeviceStatistics stats;
//   stats.RecordCommand(9 /*REGION_READ*/, latency_ns, /*error_errno=*/0);
//   DeviceStatistics::Snapshot s = stats.snapshot();
//
// Cost: a few relaxed atomic increments per command on counters no other
// device shares, and no lock. Memory is fixed (about 10 KiB per device).
// Building with --define=vfu_stats=off compiles every Record* call out
// (VFU_STATS_DISABLED), which is how tools/bench measures what they cost.
//
// Thread safety: every method from any thread. A snapshot is not atomic
// as a whole: counters read while commands run may be one command apart.
#ifndef VFU_STATS_DEVICE_STATISTICS_H_
#define VFU_STATS_DEVICE_STATISTICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vfu/stats/latency_histogram.h"

namespace vfu {

// False when statistics are compiled out (--define=vfu_stats=off).
#ifdef VFU_STATS_DISABLED
inline constexpr bool kStatisticsEnabled = false;
#else
inline constexpr bool kStatisticsEnabled = true;
#endif

class DeviceStatistics {
 public:
  // Command codes 0..kCommandSlots-2 have their own counters; any other
  // code shares the last slot (reported as code kOtherCommand).
  static constexpr size_t kCommandSlots = 32;
  static constexpr uint32_t kOtherCommand = kCommandSlots - 1;
  // Errnos below this have their own counter; the rest share the last.
  static constexpr size_t kErrnoSlots = 160;

  struct CommandSnapshot {
    uint32_t command = 0;
    uint64_t count = 0;
    uint64_t errors = 0;
    LatencyHistogram::Snapshot latency;
  };
  struct ErrnoSnapshot {
    uint32_t errno_value = 0;  // kErrnoSlots - 1: that or larger
    uint64_t count = 0;
  };
  struct Snapshot {
    // Only commands seen at least once, by code; likewise errnos.
    std::vector<CommandSnapshot> commands;
    std::vector<ErrnoSnapshot> errors;
    uint64_t region_bytes_read = 0;
    uint64_t region_bytes_written = 0;
    uint64_t dma_mapped_bytes_read = 0;
    uint64_t dma_mapped_bytes_written = 0;
    uint64_t dma_message_bytes_read = 0;
    uint64_t dma_message_bytes_written = 0;
    uint64_t dma_messages = 0;
    uint64_t interrupts_raised = 0;
    uint64_t interrupts_coalesced = 0;
    uint64_t backpressure_reply_episodes = 0;
    uint64_t backpressure_command_episodes = 0;
    uint64_t clients_connected = 0;
    uint64_t clients_served = 0;
    uint64_t clients_refused = 0;
  };

  // One command handled: its code, how long it took, and the errno of its
  // error reply (0 for success or no reply).
  void RecordCommand(uint16_t command, uint64_t latency_ns, uint32_t error_errno) {
    if constexpr (!kStatisticsEnabled) return;
    CommandCounters& c = commands_[command < kOtherCommand ? command : kOtherCommand];
    Bump(c.count);
    c.latency.Record(latency_ns);
    if (error_errno != 0) {
      Bump(c.errors);
      Bump(errnos_[error_errno < kErrnoSlots ? error_errno : kErrnoSlots - 1]);
    }
  }
  void RecordRegionBytes(uint64_t read, uint64_t written) {
    Add(region_bytes_read_, read);
    Add(region_bytes_written_, written);
  }
  // DMA copied through the client's mapped memory.
  void RecordMappedDma(bool write, uint64_t bytes) {
    Add(write ? dma_mapped_bytes_written_ : dma_mapped_bytes_read_, bytes);
  }
  // DMA carried by DMA_READ/DMA_WRITE messages.
  void RecordMessageDma(bool write, uint64_t bytes, uint64_t messages) {
    Add(write ? dma_message_bytes_written_ : dma_message_bytes_read_, bytes);
    Add(dma_messages_, messages);
  }
  void RecordInterrupt(bool coalesced) { Bump(coalesced ? interrupts_coalesced_ : interrupts_raised_); }
  void RecordReplyBackPressure() { Bump(backpressure_reply_episodes_); }
  void RecordCommandBackPressure() { Bump(backpressure_command_episodes_); }
  void RecordClientConnected() { Bump(clients_connected_); }
  void RecordClientServed() { Bump(clients_served_); }
  void RecordClientRefused() { Bump(clients_refused_); }

  Snapshot snapshot() const;

 private:
  struct CommandCounters {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> errors{0};
    LatencyHistogram latency;
  };

  static void Bump(std::atomic<uint64_t>& counter) { Add(counter, 1); }
  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    if constexpr (kStatisticsEnabled) counter.fetch_add(n, std::memory_order_relaxed);
  }

  std::array<CommandCounters, kCommandSlots> commands_;
  std::array<std::atomic<uint64_t>, kErrnoSlots> errnos_{};
  std::atomic<uint64_t> region_bytes_read_{0};
  std::atomic<uint64_t> region_bytes_written_{0};
  std::atomic<uint64_t> dma_mapped_bytes_read_{0};
  std::atomic<uint64_t> dma_mapped_bytes_written_{0};
  std::atomic<uint64_t> dma_message_bytes_read_{0};
  std::atomic<uint64_t> dma_message_bytes_written_{0};
  std::atomic<uint64_t> dma_messages_{0};
  std::atomic<uint64_t> interrupts_raised_{0};
  std::atomic<uint64_t> interrupts_coalesced_{0};
  std::atomic<uint64_t> backpressure_reply_episodes_{0};
  std::atomic<uint64_t> backpressure_command_episodes_{0};
  std::atomic<uint64_t> clients_connected_{0};
  std::atomic<uint64_t> clients_served_{0};
  std::atomic<uint64_t> clients_refused_{0};
};

}  // namespace vfu

#endif  // VFU_STATS_DEVICE_STATISTICS_H_
