#include "vfu/dma/dma_address_space.h"

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

// Linux's default vm.max_map_count.
constexpr uint64_t kDefaultMaxMapCount = 65530;
// QEMU refuses a server's max_dma_maps above this.
constexpr uint64_t kMaxAdvertisedMaps = 65535;

uint64_t ReadMaxMapCount() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  uint64_t value = 0;
  if (in >> value && value > 0) return value;
  return kDefaultMaxMapCount;
}

// Adds `amount` to `counter` unless that would pass `limit`.
bool TryAdd(std::atomic<uint64_t>& counter, uint64_t amount, uint64_t limit) {
  uint64_t current = counter.load(std::memory_order_relaxed);
  do {
    if (current > limit || amount > limit - current) return false;
  } while (!counter.compare_exchange_weak(current, current + amount, std::memory_order_relaxed));
  return true;
}

}  // namespace

uint64_t DmaMapBudgetFor(uint64_t max_map_count) {
  const uint64_t keep = std::max<uint64_t>(max_map_count / 4, 1024);
  return max_map_count > keep ? max_map_count - keep : 0;
}

uint32_t DefaultMaxDmaMaps() {
  static const uint32_t maps = static_cast<uint32_t>(
      std::min(DmaMapBudgetFor(ReadMaxMapCount()), kMaxAdvertisedMaps));
  return maps;
}

DmaAddressSpaceBudget::DmaAddressSpaceBudget(uint64_t max_maps, uint64_t max_bytes)
    : max_maps_(max_maps), max_bytes_(max_bytes) {}

DmaAddressSpaceBudget& DmaAddressSpaceBudget::Process() {
  static DmaAddressSpaceBudget* const budget =
      new DmaAddressSpaceBudget(DmaMapBudgetFor(ReadMaxMapCount()), kDefaultProcessDmaBytes);
  return *budget;
}

void DmaAddressSpaceBudget::set_limits(uint64_t max_maps, uint64_t max_bytes) {
  max_maps_.store(max_maps, std::memory_order_relaxed);
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
}

absl::Status DmaAddressSpaceBudget::Reserve(uint64_t bytes) {
  const uint64_t max_maps = max_maps_.load(std::memory_order_relaxed);
  const uint64_t max_bytes = max_bytes_.load(std::memory_order_relaxed);
  if (!TryAdd(maps_, 1, max_maps)) {
    return wire::WireError(EINVAL, absl::StrCat("the process holds its limit of ", max_maps,
                                                " DMA mappings (all clients together)"));
  }
  if (!TryAdd(bytes_, bytes, max_bytes)) {
    maps_.fetch_sub(1, std::memory_order_relaxed);
    return wire::WireError(
        ENOSPC, absl::StrCat("0x", absl::Hex(bytes), " more bytes of DMA mappings would pass the "
                             "process's limit of 0x", absl::Hex(max_bytes),
                             " (all clients together)"));
  }
  return absl::OkStatus();
}

void DmaAddressSpaceBudget::Release(uint64_t bytes) {
  bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  maps_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace vfu
