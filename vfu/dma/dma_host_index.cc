#include "vfu/dma/dma_host_index.h"

#include <algorithm>
#include <utility>

namespace vfu::dma_internal {

DmaHostIndex::DmaHostIndex(std::vector<Entry> entries) : entries_(std::move(entries)) {}

const DmaHostIndex::Entry* DmaHostIndex::Find(uint64_t iova, uint64_t length,
                                              uint32_t need) const {
  if (length == 0) return nullptr;
  // The last entry starting at or before `iova`.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), iova,
                             [](uint64_t a, const Entry& e) { return a < e.iova; });
  if (it == entries_.begin()) return nullptr;
  const Entry& e = *std::prev(it);
  // `iova < e.end` first, so `e.end - iova` cannot wrap.
  if (iova >= e.end || length > e.end - iova || (e.flags & need) != need) return nullptr;
  return &e;
}

}  // namespace vfu::dma_internal
