// PRP walking: turns a command's PRP1/PRP2 and transfer length into the
// client memory ranges the data lives in, reading PRP lists (chained across
// list pages) through a caller-supplied reader. Pure: no client memory is
// touched except through the reader, so it is fuzzed on its own.
//
//   std::vector<DataSegment> segments;
//   uint16_t status = WalkPrps(sqe.prp1, sqe.prp2, bytes, page_size, reader, segments);
//   if (status != kSuccess) return status;   // e.g. kInvalidPrpOffset
//
// Rules (NVMe 1.4 section 4.3): PRP1 may start anywhere dword aligned in a
// page; PRP2 is ignored when the data fits PRP1's page, is the second data
// page (page aligned) when it fits two, and otherwise points to a PRP list
// (qword aligned, may start inside a page). Every list entry is a page
// aligned data page; when entries remain and a list page ends, its last entry
// points to the next list page (page aligned). Adjacent ranges are merged,
// so a physically contiguous buffer comes back as one segment.
//
// Bounded: `length` must not exceed kMaxTransferBytes (InvalidField
// otherwise), so a hostile list can make at most that many / page_size
// entries and list pages be read. Thread-compatible (no state).
#ifndef VFU_DEVICES_NVME_PRP_WALKER_H_
#define VFU_DEVICES_NVME_PRP_WALKER_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"

namespace vfu::nvme {

struct DataSegment {
  uint64_t iova;
  uint64_t length;
  friend bool operator==(const DataSegment&, const DataSegment&) = default;
};

// Reads `out.size()` bytes of client memory at `iova`; false when it cannot
// (the walk then fails with kDataTransferError).
using PrpListReader = absl::FunctionRef<bool(uint64_t iova, absl::Span<uint8_t> out)>;

// Appends the segments of a `length`-byte transfer to `segments` (cleared
// first). Returns kSuccess or an NVMe status: kInvalidField (length 0 or over
// the limit, a page size that is not a power of two >= 4 KiB),
// kInvalidPrpOffset (misaligned PRP1, PRP2, entry or list pointer),
// kDataTransferError (a list could not be read).
uint16_t WalkPrps(uint64_t prp1, uint64_t prp2, uint64_t length, uint64_t page_size,
                  PrpListReader read_list, std::vector<DataSegment>& segments);

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_PRP_WALKER_H_
