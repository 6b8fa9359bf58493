#include "vfu/dma/dma_sg_list.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/fault_guard.h"
#include "vfu/dma/dma_fault.h"
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

namespace {

// Walks the parts of bytes [offset, offset + n) of `segments`, calling
// part(segment, offset in it, length, bytes before it) for each; stops at
// the first false and returns it.
template <typename Part>
bool ForEachPart(absl::Span<const DmaSgList::Segment> segments, uint64_t offset, uint64_t n,
                 Part part) {
  uint64_t done = 0;
  for (const DmaSgList::Segment& s : segments) {
    if (done == n) break;
    if (offset >= s.length) {
      offset -= s.length;
      continue;
    }
    const uint64_t len = std::min(s.length - offset, n - done);
    if (!part(s, offset, len, done)) return false;
    done += len;
    offset = 0;
  }
  return true;
}

}  // namespace

absl::Status DmaSgList::CheckHostRange(uint64_t offset, uint64_t n) const {
  const uint64_t total = length();
  if (offset > total || n > total - offset) {
    return absl::OutOfRangeError(absl::StrCat("DMA list access of [", offset, ", +", n,
                                              ") beyond its ", total, " bytes"));
  }
  const bool all_host =
      ForEachPart(segments_, offset, n,
                  [](const Segment& s, uint64_t, uint64_t, uint64_t) { return s.host != nullptr; });
  if (!all_host) {
    return absl::FailedPreconditionError(
        "DMA list access reaches fd-less memory, which only DMA_READ/DMA_WRITE messages reach");
  }
  return absl::OkStatus();
}

absl::Status DmaSgList::Fault(const char* what, const void* address) const {
  ReportFaultAt(address);
  const uint64_t iova = segments_.empty() ? 0 : segments_.front().iova;
  return DmaFaultError(what, iova, length());
}

absl::Status DmaSgList::Read(uint64_t offset, absl::Span<uint8_t> out) const {
  if (absl::Status s = CheckHostRange(offset, out.size()); !s.ok()) return s;
  void* where = nullptr;
  const bool ok = ForEachPart(
      segments_, offset, out.size(), [&](const Segment& s, uint64_t at, uint64_t n, uint64_t done) {
        return GuardedMemcpy(out.data() + done, s.host + at, n, &where);
      });
  return ok ? absl::OkStatus() : Fault("DMA read", where);
}

absl::Status DmaSgList::Write(uint64_t offset, absl::Span<const uint8_t> data) const {
  if (absl::Status s = CheckHostRange(offset, data.size()); !s.ok()) return s;
  void* where = nullptr;
  const bool ok = ForEachPart(
      segments_, offset, data.size(), [&](const Segment& s, uint64_t at, uint64_t n, uint64_t done) {
        if (!GuardedMemcpy(s.host + at, data.data() + done, n, &where)) return false;
        // After the bytes are in place (see MarkDirty).
        MarkDirty(s.iova + at, n);
        return true;
      });
  return ok ? absl::OkStatus() : Fault("DMA write", where);
}

absl::Status DmaSgList::Copy(const DmaSgList& from, const DmaSgList& to) {
  const uint64_t total = from.length();
  if (to.length() != total) {
    return absl::InvalidArgumentError(
        absl::StrCat("DMA list copy of ", total, " bytes into ", to.length()));
  }
  if (absl::Status s = from.CheckHostRange(0, total); !s.ok()) return s;
  if (absl::Status s = to.CheckHostRange(0, total); !s.ok()) return s;
  void* where = nullptr;
  // For each destination part, the source parts that fill it.
  const bool ok = ForEachPart(
      to.segments_, 0, total, [&](const Segment& d, uint64_t d_at, uint64_t n, uint64_t done) {
        return ForEachPart(from.segments_, done, n,
                           [&](const Segment& s, uint64_t s_at, uint64_t m, uint64_t sub) {
                             return GuardedMemmove(d.host + d_at + sub, s.host + s_at, m, &where);
                           });
      });
  if (!ok) {
    if (!from.ReportFaultAt(where)) to.ReportFaultAt(where);
    const uint64_t iova = from.segments_.empty() ? 0 : from.segments_.front().iova;
    return DmaFaultError("DMA copy", iova, total);
  }
  to.MarkAllDirty();
  return absl::OkStatus();
}

absl::Status DmaSgList::RunGuarded(void (*fn)(void*), void* arg) const {
  void* where = nullptr;
  if (RunFaultGuarded(fn, arg, &where)) return absl::OkStatus();
  return Fault("DMA access", where);
}

bool DmaSgList::ReportFaultAt(const void* address) const {
  // Compared as integers: the pointers belong to unrelated objects.
  const uintptr_t at = reinterpret_cast<uintptr_t>(address);
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    const uintptr_t lo = reinterpret_cast<uintptr_t>(s.host);
    if (s.host != nullptr && at >= lo && at - lo < s.length) {
      mappings_[i]->ReportFault(s.iova, s.length);
      return true;
    }
  }
  return false;
}

void DmaSgList::Add(const Segment& segment, dma_internal::DmaMapping* mapping) {
  mapping->Ref();
  segments_.push_back(segment);
  mappings_.push_back(mapping);
}

}  // namespace vfu
