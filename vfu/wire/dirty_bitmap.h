// Dirty page bitmaps (PROTOCOL.md section 7): the size rule shared by the
// legacy DMA_UNMAP GET_DIRTY_BITMAP reply and DEVICE_FEATURE
// DMA_LOGGING_REPORT.
//
// A bitmap covering `length` bytes of IO virtual address space at
// `page_size` granularity holds one bit per page, packed into whole u64
// words:
//
//   npages = ceil(length / page_size)
//   bytes  = 8 * ceil(npages / 64)
//
// Page p (= (addr - iova) / page_size) is bit p % 64 of word p / 64, words in
// host byte order; bits past npages are zero.
#ifndef VFU_WIRE_DIRTY_BITMAP_H_
#define VFU_WIRE_DIRTY_BITMAP_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace vfu::wire {

// Size in bytes of the bitmap for `length` bytes at `page_size` granularity.
// `page_size` must be a power of two (section 10 row 29: EINVAL otherwise).
// Never overflows: the result is at most 2^61 (length 2^64 - 1, page size 1).
// A zero `length` gives 0; whether a range may be empty is the caller's call.
absl::StatusOr<uint64_t> DirtyBitmapSize(uint64_t length, uint64_t page_size);

}  // namespace vfu::wire

#endif  // VFU_WIRE_DIRTY_BITMAP_H_
