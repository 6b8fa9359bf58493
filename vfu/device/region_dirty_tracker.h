// RegionDirtyTracker: which pages of a memory-backed region changed since
// they were last sent in a migration stream, for pre-copy rounds.
//
// The region's memory is shared with the client (it may mmap it) and with
// device threads, so no write goes through code we could instrument. The
// tracker keeps a shadow copy of every page as it was sent: a page is dirty
// when it was never sent or differs from its shadow (memcmp). A page is
// copied into the shadow first and the shadow is what goes into the stream,
// so a write racing the copy leaves memory different from the shadow and
// the page is sent again in the next round; the final (stop-copy) round,
// with device and client stopped, therefore converges to the memory's
// contents. Cost: one shadow of the region while a migration is being saved
// (freed with the tracker) and one memcmp pass per round: exact, where
// page hashes could miss a change and write protection would need the
// client's mapping.
//
// Thread-compatible: one saver uses it.
#ifndef VFU_DEVICE_REGION_DIRTY_TRACKER_H_
#define VFU_DEVICE_REGION_DIRTY_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace vfu {

class RegionDirtyTracker {
 public:
  static constexpr uint64_t kPageSize = 4096;

  // Every page starts dirty (never sent). `memory` must outlive the tracker.
  explicit RegionDirtyTracker(absl::Span<const uint8_t> memory);

  // A run of consecutive dirty pages, now recorded as sent.
  struct Run {
    uint64_t offset = 0;
    std::string data;  // whole pages, the last one cut at the region's end
  };

  // The first run of dirty pages at or after `*cursor` (page aligned), at
  // most `max_bytes` long (at least one page); advances `*cursor` past it.
  // nullopt when no page from `*cursor` on is dirty (`*cursor` then at the
  // end).
  std::optional<Run> NextDirtyRun(uint64_t* cursor, size_t max_bytes);

  // Bytes of dirty pages now (a full scan).
  uint64_t DirtyBytes() const;

  uint64_t size() const { return memory_.size(); }

 private:
  bool PageDirty(uint64_t page) const;
  uint64_t PageBytes(uint64_t page) const;

  absl::Span<const uint8_t> memory_;
  std::vector<uint8_t> shadow_;
  std::vector<bool> sent_;  // per page
};

}  // namespace vfu

#endif  // VFU_DEVICE_REGION_DIRTY_TRACKER_H_
