#include "vfu/dma/dma_sg_list.h"

#include <algorithm>
#include <utility>

#include "vfu/dma/dma_mapping.h"

namespace vfu {

DmaSgList::DmaSgList(DmaSgList&& other) noexcept
    : segments_(std::move(other.segments_)), mappings_(std::move(other.mappings_)) {
  // A moved-from InlinedVector keeps unspecified contents; the references
  // now belong to this list alone.
  other.segments_.clear();
  other.mappings_.clear();
}

DmaSgList& DmaSgList::operator=(DmaSgList&& other) noexcept {
  if (this != &other) {
    Release();
    segments_ = std::move(other.segments_);
    mappings_ = std::move(other.mappings_);
    other.segments_.clear();
    other.mappings_.clear();
  }
  return *this;
}

DmaSgList::~DmaSgList() { Release(); }

void DmaSgList::Release() {
  for (dma_internal::DmaMapping* mapping : mappings_) mapping->Unref();
  mappings_.clear();
  segments_.clear();
}

uint64_t DmaSgList::length() const {
  uint64_t total = 0;
  for (const Segment& s : segments_) total += s.length;
  return total;
}

bool DmaSgList::all_host() const {
  return std::all_of(segments_.begin(), segments_.end(),
                     [](const Segment& s) { return s.host != nullptr; });
}

void DmaSgList::MarkDirty(uint64_t iova, uint64_t length) const {
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i].host == nullptr) continue;
    // The mapping clips the range to itself; clip to the segment as well so
    // a caller cannot mark pages it never had access to.
    const uint64_t lo = std::max(iova, segments_[i].iova);
    const uint64_t seg_end = segments_[i].iova + segments_[i].length;
    const uint64_t end = iova + length < iova ? seg_end : std::min(iova + length, seg_end);
    if (lo < end) mappings_[i]->MarkDirty(lo, end - lo);
  }
}

void DmaSgList::MarkAllDirty() const {
  for (size_t i = 0; i < segments_.size(); ++i) {
    mappings_[i]->MarkDirty(segments_[i].iova, segments_[i].length);
  }
}

void DmaSgList::Add(const Segment& segment, dma_internal::DmaMapping* mapping) {
  mapping->Ref();
  segments_.push_back(segment);
  mappings_.push_back(mapping);
}

}  // namespace vfu
