// DmaMapping: one range of client memory shared with DMA_MAP, as seen by the
// table that finds it and by the device threads that use it. Internal to
// vfu/dma: DmaMapTable creates and retires mappings, DmaSgList holds
// references to them.
//
// Lifetime. A mapping starts with one reference, the table's own. Translate
// adds one per DmaSgList while it holds the table lock, so the count never
// climbs back from zero. To retire a mapping the table first removes it from
// its index (no new references), then DropTableReferenceAndWait() drops the
// table's reference and blocks until the last DmaSgList lets go; only then is
// the memory unmapped, so no copy ever runs on unmapped memory.
//
// Revocation. The wait is bounded: a device thread that keeps a DmaSgList
// across a detach must not hang the detach (or Server::Stop) forever. When
// the bound passes, Revoke() replaces the client's pages in place with
// private anonymous memory of the same size and protection (mmap MAP_FIXED):
// the client's file is released at once, the late holder reads zeros and
// writes scratch, and its pointers never dangle. Abandon() then hands the
// mapping to its last reference, whose Unref frees it and the scratch.
// A revoked mapping no longer marks dirty pages or reports faults, so it
// never touches its table, which may be gone by then.
//
// Dirty log. One bit per 4 KiB page of IOVA space the mapping touches, pages
// numbered from address 0 (bit for page `iova >> 12`), so mappings aligned to
// less than 4 KiB still get whole pages. MarkDirty sets bits from any thread
// without a lock; TakeDirty reads and clears them. Only fd-backed mappings
// log: writes to fd-less memory travel as DMA_WRITE messages, which the
// client sees and tracks itself (PROTOCOL.md section 7).
#ifndef VFU_DMA_DMA_MAPPING_H_
#define VFU_DMA_DMA_MAPPING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace vfu {
class DmaAddressSpaceBudget;
}  // namespace vfu

namespace vfu::dma_internal {

// Granularity of the dirty log. DMA logging page sizes are powers of two of
// at least this size; reports at another page size are derived from it.
inline constexpr uint64_t kDirtyPageShift = 12;
inline constexpr uint64_t kDirtyPageSize = uint64_t{1} << kDirtyPageShift;

// Where a mapping reports that its memory faulted under a guarded access
// (the owning table).
class DmaFaultReporter {
 public:
  virtual void ReportFault(uint64_t iova, uint64_t length) const = 0;

 protected:
  ~DmaFaultReporter() = default;
};

class DmaMapping {
 public:
  // [iova, iova + size) must not wrap. `host` is where `iova` lives in this
  // process, or nullptr for an fd-less mapping. [mmap_base, mmap_base +
  // mmap_length) is unmapped on destruction (nothing when mmap_base is
  // nullptr), and mmap_length bytes go back to `budget` (when given, which
  // outlives the mapping). `logging` is the owning table's "dirty logging is on" flag and
  // `faults` its fault reporter; both outlive the mapping while it is not
  // revoked.
  DmaMapping(uint64_t iova, uint64_t size, uint32_t flags, uint8_t* host, void* mmap_base,
             size_t mmap_length, const std::atomic<bool>* logging,
             const DmaFaultReporter* faults, DmaAddressSpaceBudget* budget = nullptr);
  ~DmaMapping();

  DmaMapping(const DmaMapping&) = delete;
  DmaMapping& operator=(const DmaMapping&) = delete;

  uint64_t iova() const { return iova_; }
  uint64_t size() const { return size_; }
  uint64_t end() const { return iova_ + size_; }  // exclusive; never wraps
  uint32_t flags() const { return flags_; }
  uint8_t* host() const { return host_; }
  size_t mmap_length() const { return mmap_length_; }
  bool fd_backed() const { return host_ != nullptr; }

  // Adds a reference. Only while the mapping is still in the table's index
  // and the caller holds the table lock (shared is enough).
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; any thread.
  void Unref();
  // Drops the table's own reference, after the mapping left the index, and
  // waits up to `timeout` for the other references to go. True when none is
  // left (the caller may free the mapping); false when some holder outlived
  // the timeout: the caller revokes the mapping, may still read its dirty
  // bitmap, and then must Abandon() it instead of freeing it. Called once.
  bool DropTableReferenceAndWait(absl::Duration timeout);

  // Replaces the client's pages with scratch memory (see Revocation above).
  // After a DropTableReferenceAndWait that returned false. Returns false if
  // the kernel refused, in which case the client's pages stay mapped (and
  // guarded accesses to them stay safe).
  bool Revoke();
  bool revoked() const { return revoked_.load(std::memory_order_acquire); }

  // Gives up the caller's ownership of a mapping whose DropTableReferenceAndWait
  // returned false: the last DmaSgList to let go frees it (or the caller's
  // thread here, if that already happened).
  static void Abandon(std::unique_ptr<DmaMapping> mapping);

  // Called by a guarded access that faulted inside this mapping: tells the
  // table (unless revoked).
  void ReportFault(uint64_t iova, uint64_t length) const;

  // Allocates the dirty bitmap, or clears it when a previous logging period
  // left one. No-op for fd-less mappings. Called with the table lock held
  // exclusively, which is what keeps it from racing TakeDirty.
  void StartDirtyLog();

  // Marks the pages of [iova, iova + length) that lie in this mapping dirty,
  // if logging is on. Any thread, lock-free.
  void MarkDirty(uint64_t iova, uint64_t length) const;

  // Read-and-clear for a report of [report_iova, report_iova + report_length)
  // (no wrap) at `page_size` (a power of two): sets bit p of `report_words`
  // (u64 words, section 7 layout) when any dirty 4 KiB page of this mapping
  // overlaps report page p. Clears the bits of the 4 KiB pages that lie
  // wholly inside the report range; a page only partly inside stays dirty so
  // that its other part is reported later (over-reporting is safe, losing a
  // write is not). Never runs concurrently with StartDirtyLog.
  void TakeDirty(uint64_t report_iova, uint64_t report_length, uint64_t page_size,
                 absl::Span<uint64_t> report_words) const;

 private:
  const uint64_t iova_;
  const uint64_t size_;
  const uint32_t flags_;
  uint8_t* const host_;
  void* const mmap_base_;
  const size_t mmap_length_;
  const std::atomic<bool>* const logging_;
  const DmaFaultReporter* const faults_;
  DmaAddressSpaceBudget* const budget_;

  // The table's reference plus one per DmaSgList entry.
  std::atomic<int64_t> refs_{1};
  // Notified by the Unref that takes the count to zero. A member, not the
  // waiter's, because a waiter that timed out is gone by then (the
  // notification's destructor waits for a Notify() in progress).
  absl::Notification drained_;
  // Who frees the mapping after a timed-out wait: the table's Abandon() and
  // the last Unref each add one; whoever comes second frees it.
  std::atomic<int> handoff_{0};
  // Set by Revoke(); from then on nothing reaches the table.
  std::atomic<bool> revoked_{false};

  // Dirty log: dirty_words_ u64 words covering 4 KiB pages first_page_
  // onwards. The array is created once (StartDirtyLog, under the table's
  // exclusive lock) and freed with the mapping; `dirty_` publishes it to
  // MarkDirty, which reads it without any lock.
  const uint64_t first_page_;
  const size_t dirty_words_;
  std::unique_ptr<std::atomic<uint64_t>[]> dirty_storage_;
  std::atomic<std::atomic<uint64_t>*> dirty_{nullptr};
};

}  // namespace vfu::dma_internal

#endif  // VFU_DMA_DMA_MAPPING_H_
