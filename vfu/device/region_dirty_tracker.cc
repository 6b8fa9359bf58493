#include "vfu/device/region_dirty_tracker.h"

#include <algorithm>
#include <cstring>

namespace vfu {

RegionDirtyTracker::RegionDirtyTracker(absl::Span<const uint8_t> memory)
    : memory_(memory),
      shadow_(memory.size()),
      sent_((memory.size() + kPageSize - 1) / kPageSize, false) {}

uint64_t RegionDirtyTracker::PageBytes(uint64_t page) const {
  return std::min<uint64_t>(kPageSize, memory_.size() - page * kPageSize);
}

bool RegionDirtyTracker::PageDirty(uint64_t page) const {
  if (!sent_[page]) return true;
  const uint64_t offset = page * kPageSize;
  return std::memcmp(memory_.data() + offset, shadow_.data() + offset, PageBytes(page)) != 0;
}

std::optional<RegionDirtyTracker::Run> RegionDirtyTracker::NextDirtyRun(uint64_t* cursor,
                                                                        size_t max_bytes) {
  const uint64_t pages = sent_.size();
  uint64_t page = *cursor / kPageSize;
  while (page < pages && !PageDirty(page)) ++page;
  if (page >= pages) {
    *cursor = memory_.size();
    return std::nullopt;
  }
  Run run{.offset = page * kPageSize};
  const uint64_t max_pages = std::max<uint64_t>(1, max_bytes / kPageSize);
  uint64_t end = page;
  while (end < pages && end - page < max_pages && PageDirty(end)) {
    // Shadow first, then send the shadow: see the header.
    const uint64_t offset = end * kPageSize;
    std::memcpy(shadow_.data() + offset, memory_.data() + offset, PageBytes(end));
    sent_[end] = true;
    ++end;
  }
  const uint64_t end_offset = std::min<uint64_t>(end * kPageSize, memory_.size());
  run.data.assign(reinterpret_cast<const char*>(shadow_.data() + run.offset),
                  end_offset - run.offset);
  *cursor = end_offset;
  return run;
}

uint64_t RegionDirtyTracker::DirtyBytes() const {
  uint64_t bytes = 0;
  for (uint64_t page = 0; page < sent_.size(); ++page) {
    if (PageDirty(page)) bytes += PageBytes(page);
  }
  return bytes;
}

}  // namespace vfu
