// DmaHostIndex: where each fd-backed DMA mapping lives in this process, as
// an immutable sorted array (internal to vfu/dma).
//
// DmaMapTable publishes a new index whenever its fd-backed mappings change
// and retires the old one after an RCU grace period (vfu/base/rcu.h). A
// device thread copying to or from client memory looks its range up here
// inside a read section: no lock, no reference count, nothing written to
// memory other threads read, which is what makes a 4 KiB copy cost about
// what its memcpy does. A mapping an index names stays mapped until every
// section that could have found it has ended.
#ifndef VFU_DMA_DMA_HOST_INDEX_H_
#define VFU_DMA_DMA_HOST_INDEX_H_

#include <cstdint>
#include <vector>

namespace vfu::dma_internal {

class DmaMapping;

class DmaHostIndex {
 public:
  struct Entry {
    uint64_t iova;
    uint64_t end;  // exclusive; never wraps
    uint8_t* host;
    uint32_t flags;  // wire::kDmaMapFlagRead / kDmaMapFlagWrite
    const DmaMapping* mapping;
  };

  // `entries` sorted by iova, not overlapping.
  explicit DmaHostIndex(std::vector<Entry> entries);

  // The entry holding all of [iova, iova + length) and allowing every flag
  // in `need`; nullptr when none does (the range is unmapped, fd-less,
  // crosses mappings, wraps, or lacks the access) or length is 0.
  const Entry* Find(uint64_t iova, uint64_t length, uint32_t need) const;

  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace vfu::dma_internal

#endif  // VFU_DMA_DMA_HOST_INDEX_H_
