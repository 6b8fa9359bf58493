// DmaAddressSpaceBudget: how many DMA mappings (and how many bytes of them)
// this process can hold, shared by every device and client it serves.
//
// Each fd-backed DMA_MAP is an mmap: one entry of the kernel's per-process
// map table, and address space for its whole size even when the client's
// file is sparse. Neither is unlimited: past vm.max_map_count mappings, or
// once the 128 TiB of user address space is spoken for, mmap fails, and so
// does the next malloc or thread stack anywhere in the server, which then
// aborts. Several devices that each allow max_dma_maps mappings could get
// there together, so every table reserves from one process-wide budget
// before it maps, and refuses the DMA_MAP when the budget is spent.
//
//   VFU_RETURN_IF_ERROR(budget.Reserve(bytes));   // EINVAL / ENOSPC WireError
//   ...
//   budget.Release(bytes);                        // once munmapped
//
// Thread-safe, lock-free.
#ifndef VFU_DMA_DMA_ADDRESS_SPACE_H_
#define VFU_DMA_DMA_ADDRESS_SPACE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"

namespace vfu {

// The process-wide byte budget by default: half of x86-64's 128 TiB of user
// address space, leaving the rest to the heap, stacks, libraries and a
// sanitizer's shadow memory.
inline constexpr uint64_t kDefaultProcessDmaBytes = uint64_t{64} << 40;

// How many of `max_map_count` (vm.max_map_count) mappings DMA may take: all
// but a quarter (at least 1024) kept for everything else the process maps.
uint64_t DmaMapBudgetFor(uint64_t max_map_count);

// What a server advertises as max_dma_maps unless told otherwise: the
// process's map budget (from /proc/sys/vm/max_map_count, 65530 when it
// cannot be read), at most 65535 (what QEMU accepts).
uint32_t DefaultMaxDmaMaps();

class DmaAddressSpaceBudget {
 public:
  DmaAddressSpaceBudget(uint64_t max_maps, uint64_t max_bytes);

  // The process's budget: DmaMapBudgetFor(vm.max_map_count) mappings and
  // kDefaultProcessDmaBytes bytes, until set_limits changes them.
  static DmaAddressSpaceBudget& Process();

  DmaAddressSpaceBudget(const DmaAddressSpaceBudget&) = delete;
  DmaAddressSpaceBudget& operator=(const DmaAddressSpaceBudget&) = delete;

  // Changes the limits; what is reserved stays (a lower limit only refuses
  // later reservations).
  void set_limits(uint64_t max_maps, uint64_t max_bytes);

  // Reserves one mapping of `bytes`, or nothing: EINVAL when the mapping
  // count is spent (the protocol's "beyond the mapping limit"), ENOSPC when
  // the bytes are (both WireError).
  absl::Status Reserve(uint64_t bytes);
  // Returns what one Reserve(bytes) took.
  void Release(uint64_t bytes);

  uint64_t maps() const { return maps_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> max_maps_;
  std::atomic<uint64_t> max_bytes_;
  std::atomic<uint64_t> maps_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace vfu

#endif  // VFU_DMA_DMA_ADDRESS_SPACE_H_
