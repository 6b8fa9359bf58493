#include "vfu/wire/dirty_bitmap.h"

#include <bit>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {

absl::StatusOr<uint64_t> DirtyBitmapSize(uint64_t length, uint64_t page_size) {
  if (!std::has_single_bit(page_size)) {
    return WireError(EINVAL, absl::StrCat("dirty bitmap page size ", page_size,
                                          " is not a power of two"));
  }
  // Divide before rounding up: `length + page_size - 1` could wrap.
  uint64_t npages = length / page_size + (length % page_size != 0 ? 1 : 0);
  uint64_t words = npages / 64 + (npages % 64 != 0 ? 1 : 0);
  return words * 8;  // words <= 2^58, so this cannot wrap either.
}

}  // namespace vfu::wire
