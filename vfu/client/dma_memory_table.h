// DmaMemoryTable: the client memory a server may reach through DMA_READ and
// DMA_WRITE messages (PROTOCOL.md 4.10), indexed by IO virtual address.
//
// A VMM registers each range of guest memory it shares without an fd (and,
// since the specification wants DMA messages served for fd-backed memory
// too, its fd-backed ranges as well). The table only records where the bytes
// live; it never owns them.
//
//   table.Add(0x10000, absl::MakeSpan(ram), kDmaMapFlagRead | kDmaMapFlagWrite);
//   VFU_RETURN_IF_ERROR(table.Write(0x10010, bytes));   // a DMA_WRITE
//
// An access may span several registrations as long as they are contiguous
// in IOVA space. Errors carry the errno the DMA reply must carry (see
// wire::ReplyErrno): EFAULT for an address range not (entirely) registered,
// EPERM for an access the registration does not allow. A failed access
// touches no byte.
//
// Thread-compatible. Client guards its table with its own mutex.
#ifndef VFU_CLIENT_DMA_MEMORY_TABLE_H_
#define VFU_CLIENT_DMA_MEMORY_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu {

class DmaMemoryTable {
 public:
  // Registers `memory` at IOVA [iova, iova + memory.size()). `device_access`
  // is what the server may do, in DMA_MAP flag bits: wire::kDmaMapFlagRead
  // (serve DMA_READ) and/or wire::kDmaMapFlagWrite (serve DMA_WRITE). The
  // memory must stay valid until it is removed or the table destroyed.
  // Errors: InvalidArgument for an empty range, one that wraps around 2^64 or
  // unknown access bits; AlreadyExists (EEXIST) when it overlaps a
  // registered range.
  absl::Status Add(uint64_t iova, absl::Span<uint8_t> memory, uint32_t device_access);

  // Unregisters the range that starts at `iova`. NotFound if none does.
  absl::Status Remove(uint64_t iova);

  // Unregisters every range lying entirely inside [iova, iova + size);
  // returns how many. Ranges straddling the boundary stay.
  size_t RemoveWithin(uint64_t iova, uint64_t size);

  void Clear() { ranges_.clear(); }
  size_t size() const { return ranges_.size(); }
  bool empty() const { return ranges_.empty(); }

  // The `count` bytes at `iova`, for a DMA_READ. When one registration holds
  // them all the result points straight into that memory; otherwise they are
  // gathered into `scratch` and the result points there. Either way it is
  // valid until the table or `scratch` changes. count 0 is an empty view.
  absl::StatusOr<absl::Span<const uint8_t>> Read(uint64_t iova, uint64_t count,
                                                 std::vector<uint8_t>& scratch) const;

  // The `count` bytes at `iova`, for a DMA_READ, as views of the registered
  // memory: appends one span per registration they cross, in IOVA order
  // (nothing for count 0), so they can be sent without a copy. Appends
  // nothing on error. The views are valid until the table changes.
  absl::Status ReadViews(uint64_t iova, uint64_t count,
                         absl::InlinedVector<absl::Span<const uint8_t>, 2>& views) const;

  // Copies `data` to `iova`, for a DMA_WRITE. All or nothing.
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data);

 private:
  struct Range {
    uint8_t* data;
    uint64_t size;
    uint32_t access;
  };
  using RangeMap = std::map<uint64_t, Range>;  // keyed by start IOVA

  // Checks that [iova, iova + count) is registered, contiguously, with
  // `access`, and returns the range holding `iova` (count > 0).
  absl::StatusOr<RangeMap::const_iterator> Covering(uint64_t iova, uint64_t count,
                                                    uint32_t access) const;

  RangeMap ranges_;
};

}  // namespace vfu

#endif  // VFU_CLIENT_DMA_MEMORY_TABLE_H_
