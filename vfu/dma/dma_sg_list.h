// DmaSgList: a range of client memory resolved into segments, each kept
// alive for as long as the list exists.
//
// DmaMapTable::Translate builds one. Each segment lies in a single DMA
// mapping; a range that crosses adjacent mappings gets one segment per
// mapping, in address order. A segment's `host` points at its first byte in
// this process (fd-backed mapping), or is nullptr for fd-less memory, which
// only DMA_READ / DMA_WRITE messages reach.
//
//   VFU_ASSIGN_OR_RETURN(DmaSgList list,
//                        table.Translate(iova, len, DmaDirection::kWrite));
//   VFU_RETURN_IF_ERROR(list.Write(0, bytes));   // guarded copy, marks dirty
//
// Touching client memory. The client can shrink the file behind a mapping
// at any time, and then any access to the lost pages raises SIGBUS. Use the
// guarded methods (Read, Write, Copy, RunGuarded): a fault makes them return
// the DMA fault status (dma_fault.h) and reports it to the table, which has
// the client disconnected. A plain memcpy through `Segment::host` is only
// safe on memory the process itself controls (e.g. in tests).
//
// Lifetime: the list holds a reference on every mapping it covers. A
// DMA_UNMAP of one of them (and so the client's command stream) waits until
// the list is destroyed, so host pointers stay valid as long as the list.
// The wait is bounded (DmaMapLimits::pin_release_timeout): a list kept past
// it has its mappings revoked, its pointers then reach scratch memory, not
// the client's, until it is destroyed. Keep a list for one transfer; never
// keep one while waiting for the client, never unmap from a thread that
// holds one, and destroy every list before its table.
//
// Thread-compatible: one thread owns a list at a time. MarkDirty is const and
// lock-free.
#ifndef VFU_DMA_DMA_SG_LIST_H_
#define VFU_DMA_DMA_SG_LIST_H_

#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace vfu {

namespace dma_internal {
class DmaMapping;
}  // namespace dma_internal

class DmaMapTable;

// Which way the device moves bytes.
enum class DmaDirection {
  kRead,   // from client memory (the mapping needs READ)
  kWrite,  // into client memory (the mapping needs WRITE)
};

class DmaSgList {
 public:
  struct Segment {
    uint64_t iova;
    uint64_t length;
    // The segment's bytes in this process; nullptr for fd-less memory.
    uint8_t* host;
  };

  // An empty list: no segments, no references.
  DmaSgList() = default;
  DmaSgList(DmaSgList&& other) noexcept;
  DmaSgList& operator=(DmaSgList&& other) noexcept;
  DmaSgList(const DmaSgList&) = delete;
  DmaSgList& operator=(const DmaSgList&) = delete;
  ~DmaSgList();

  absl::Span<const Segment> segments() const { return segments_; }
  bool empty() const { return segments_.empty(); }
  // Total bytes over all segments.
  uint64_t length() const;
  // True when every segment has host memory (nothing needs messages).
  bool all_host() const;

  // Records that the device wrote [iova, iova + length) through host
  // pointers: the pages are reported dirty if DMA logging is on. Call it
  // after the bytes are written, so a report that clears the bit cannot miss
  // them. Parts outside the list's segments, and fd-less segments, are
  // ignored.
  void MarkDirty(uint64_t iova, uint64_t length) const;
  // MarkDirty over every segment.
  void MarkAllDirty() const;

  // Guarded copies (see Touching client memory above). `offset` counts
  // bytes from the start of the list. OutOfRange when [offset, offset + n)
  // is not inside the list, FailedPrecondition when it reaches an fd-less
  // segment (nothing is copied then), the DMA fault status when the memory
  // faulted (part may be copied). Write marks what it wrote dirty.
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> out) const;
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data) const;
  // Moves all of `from`'s bytes to `to` (same length(), segments cut
  // anywhere; memmove, as two IOVAs may alias one page of the client's file)
  // and marks `to` dirty. InvalidArgument when the lengths differ; otherwise
  // as above.
  static absl::Status Copy(const DmaSgList& from, const DmaSgList& to);
  // Runs fn(arg) with faults on this list's memory caught: for device code
  // that works on the pinned bytes in place. `fn` must follow the rules of
  // RunFaultGuarded (vfu/base/fault_guard.h): no destructors, no locks, no
  // allocation. A writer marks what it wrote dirty afterwards.
  absl::Status RunGuarded(void (*fn)(void*), void* arg) const;

  // Drops every reference now; the list becomes empty.
  void Release();

 private:
  friend class DmaMapTable;

  // Appends `segment`, which lies in `mapping`, and takes a reference on it.
  // The table calls this with its lock held.
  void Add(const Segment& segment, dma_internal::DmaMapping* mapping);
  // After a guarded access faulted at `address`: reports it to the mapping
  // whose segment holds it and returns true, or false when none does.
  bool ReportFaultAt(const void* address) const;
  // OutOfRange / FailedPrecondition for Read and Write (see there).
  absl::Status CheckHostRange(uint64_t offset, uint64_t n) const;
  // Reports a fault at `address` and returns the DMA fault status.
  absl::Status Fault(const char* what, const void* address) const;

  // Parallel arrays: mappings_[i] holds segments_[i]. Nearly every transfer
  // lies in one mapping, so the inline capacity avoids any allocation.
  absl::InlinedVector<Segment, 1> segments_;
  absl::InlinedVector<dma_internal::DmaMapping*, 1> mappings_;
};

}  // namespace vfu

#endif  // VFU_DMA_DMA_SG_LIST_H_
