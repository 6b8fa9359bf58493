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
#include "absl/types/span.h"

namespace vfu::dma_internal {

// Granularity of the dirty log. DMA logging page sizes are powers of two of
// at least this size; reports at another page size are derived from it.
inline constexpr uint64_t kDirtyPageShift = 12;
inline constexpr uint64_t kDirtyPageSize = uint64_t{1} << kDirtyPageShift;

class DmaMapping {
 public:
  // [iova, iova + size) must not wrap. `host` is where `iova` lives in this
  // process, or nullptr for an fd-less mapping. [mmap_base, mmap_base +
  // mmap_length) is unmapped on destruction (nothing when mmap_base is
  // nullptr). `logging` is the owning table's "dirty logging is on" flag and
  // outlives the mapping.
  DmaMapping(uint64_t iova, uint64_t size, uint32_t flags, uint8_t* host, void* mmap_base,
             size_t mmap_length, const std::atomic<bool>* logging);
  ~DmaMapping();

  DmaMapping(const DmaMapping&) = delete;
  DmaMapping& operator=(const DmaMapping&) = delete;

  uint64_t iova() const { return iova_; }
  uint64_t size() const { return size_; }
  uint64_t end() const { return iova_ + size_; }  // exclusive; never wraps
  uint32_t flags() const { return flags_; }
  uint8_t* host() const { return host_; }
  bool fd_backed() const { return host_ != nullptr; }

  // Adds a reference. Only while the mapping is still in the table's index
  // and the caller holds the table lock (shared is enough).
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; any thread.
  void Unref();
  // Drops the table's own reference, after the mapping left the index, and
  // returns once no other reference is left. Called once.
  void DropTableReferenceAndWait();

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

  // The table's reference plus one per DmaSgList entry.
  std::atomic<int64_t> refs_{1};
  // Set by DropTableReferenceAndWait before it drops the table's reference;
  // the thread whose Unref takes the count to zero notifies it. The
  // acquire-release decrements order the write before that read.
  absl::Notification* drained_ = nullptr;

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
