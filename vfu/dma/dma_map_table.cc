#include "vfu/dma/dma_map_table.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/fault_guard.h"
#include "vfu/base/log.h"
#include "vfu/base/rcu.h"
#include "vfu/dma/dma_host_index.h"
#include "vfu/dma/dma_mapping.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

using dma_internal::DmaFaultReporter;
using dma_internal::DmaHostIndex;
using dma_internal::DmaMapping;

constexpr uint32_t kMapFlags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
constexpr uint32_t kUnmapFlags = wire::kDmaUnmapFlagGetDirtyBitmap | wire::kDmaUnmapFlagAll;
// QEMU's largest dirty bitmap (`migration.max_bitmap_size`): a report needing
// more is a client error, and refusing it keeps a request from making us
// allocate gigabytes.
constexpr uint64_t kMaxReportBitmapBytes = uint64_t{256} << 20;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string Range(uint64_t iova, uint64_t size) {
  return absl::StrCat("[0x", absl::Hex(iova), ", +0x", absl::Hex(size), ")");
}

DmaRange RangeOf(const DmaMapping& m) {
  return DmaRange{.iova = m.iova(), .size = m.size(), .flags = m.flags(), .mapped = m.fd_backed()};
}

// Frees an index once no RCU section can still be reading it.
void RetireHostIndex(std::unique_ptr<const DmaHostIndex> old) {
  if (old == nullptr) return;
  RcuSynchronize();
  old.reset();
}

// A refusal a client can repeat at will: logged, but not once per message.
absl::Status Refuse(absl::Status status) {
  VFU_LOG_RATE_LIMITED(kWarning, "DMA_MAP refused: ", status.message());
  return status;
}

// The section 7 byte layout of `words`.
std::vector<uint8_t> ToBytes(const std::vector<uint64_t>& words) {
  std::vector<uint8_t> bytes(words.size() * sizeof(uint64_t));
  if (!bytes.empty()) std::memcpy(bytes.data(), words.data(), bytes.size());
  return bytes;
}

}  // namespace

DmaMapTable::DmaMapTable(DmaMapLimits limits, DmaAddressSpaceBudget* budget)
    : budget_(budget != nullptr ? *budget : DmaAddressSpaceBudget::Process()) {
  set_limits(limits);
}

DmaMapTable::~DmaMapTable() { UnmapAll(); }

void DmaMapTable::set_limits(const DmaMapLimits& limits) {
  VFU_CHECK(limits.page_sizes != 0, "DmaMapLimits::page_sizes must name a page size");
  absl::MutexLock lock(&mu_);
  limits_ = limits;
}

DmaMapLimits DmaMapTable::limits() const {
  absl::ReaderMutexLock lock(&mu_);
  return limits_;
}

void DmaMapTable::set_fault_handler(DmaFaultHandler handler) {
  absl::MutexLock lock(&fault_mu_);
  fault_handler_ = std::move(handler);
}

size_t DmaMapTable::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return mappings_.size();
}

uint64_t DmaMapTable::mapped_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return mapped_bytes_;
}

void DmaMapTable::ReportFault(uint64_t iova, uint64_t length) const {
  VFU_LOG_RATE_LIMITED(kWarning, "DMA access to [0x", absl::Hex(iova), ", +0x",
                absl::Hex(length), ") faulted: the client shrank the file behind its mapping");
  DmaFaultHandler handler;
  {
    absl::MutexLock lock(&fault_mu_);
    handler = fault_handler_;
  }
  if (handler) handler(iova, length);
}

bool DmaMapTable::DrainOrRevoke(DmaMapping& mapping, absl::Time deadline) const {
  if (mapping.DropTableReferenceAndWait(deadline - absl::Now())) return true;
  const absl::Duration timeout = limits().pin_release_timeout;
  const bool revoked = mapping.Revoke();
  VFU_LOG(kWarning, "DMA unmap of ", Range(mapping.iova(), mapping.size()),
          ": a device thread still holds it after ", absl::FormatDuration(timeout),
          revoked ? "; its pages are now scratch memory, the client's file is released"
                  : "; revoking it failed, the client's pages stay mapped until it lets go");
  return false;
}

void DmaMapTable::Retire(std::vector<std::unique_ptr<DmaMapping>>& mappings) const {
  // One deadline for all: a holder of many mappings costs one timeout.
  const absl::Time deadline = absl::Now() + limits().pin_release_timeout;
  for (std::unique_ptr<DmaMapping>& m : mappings) {
    if (DrainOrRevoke(*m, deadline)) {
      m.reset();
    } else {
      DmaMapping::Abandon(std::move(m));
    }
  }
}

absl::Status DmaMapTable::CheckInsertableLocked(uint64_t iova, uint64_t size,
                                                 uint64_t mmap_length) const {
  if (mappings_.size() >= limits_.max_maps) {
    return Refuse(wire::WireError(
        EINVAL, absl::StrCat("DMA_MAP beyond the limit of ", limits_.max_maps, " mappings")));
  }
  if (mmap_length > limits_.max_total_bytes ||
      mapped_bytes_ > limits_.max_total_bytes - mmap_length) {
    return Refuse(wire::WireError(
        ENOSPC, absl::StrCat("DMA_MAP of 0x", absl::Hex(mmap_length), " bytes would pass the "
                             "client's limit of 0x", absl::Hex(limits_.max_total_bytes),
                             " bytes mapped (0x", absl::Hex(mapped_bytes_), " already)")));
  }
  // The only candidates are the last mapping starting at or before `iova`
  // and the first one starting after it.
  auto next = mappings_.upper_bound(iova);
  if (next != mappings_.end() && next->first < iova + size) {
    return wire::WireError(EEXIST, absl::StrCat("DMA_MAP ", Range(iova, size), " overlaps ",
                                                Range(next->first, next->second->size())));
  }
  if (next != mappings_.begin()) {
    const DmaMapping& prev = *std::prev(next)->second;
    if (prev.end() > iova) {
      return wire::WireError(EEXIST, absl::StrCat("DMA_MAP ", Range(iova, size), " overlaps ",
                                                  Range(prev.iova(), prev.size())));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DmaRange> DmaMapTable::Map(const wire::DmaMapRequest& request, UniqueFd fd) {
  const uint64_t iova = request.addr;
  const uint64_t size = request.size;
  if ((request.flags & ~kMapFlags) != 0) {
    return wire::WireError(EINVAL, absl::StrCat("DMA_MAP with unknown flags 0x",
                                                absl::Hex(request.flags & ~kMapFlags)));
  }
  if ((request.flags & kMapFlags) == 0) {
    return wire::WireError(EINVAL, "DMA_MAP allowing neither READ nor WRITE");
  }
  if (size == 0) return wire::WireError(EINVAL, "DMA_MAP of size 0");
  // `iova + size == 2^64` counts as wrapping too: every end stays representable.
  if (iova + size < iova) {
    return wire::WireError(EINVAL, absl::StrCat("DMA_MAP ", Range(iova, size), " wraps"));
  }
  if (fd.valid() && request.offset + size < request.offset) {
    return wire::WireError(EINVAL, "DMA_MAP file range wraps");
  }

  // mmap wants a host-page-aligned offset; pgsizes may allow less. The
  // mapping takes whole host pages of address space.
  const uint64_t host_page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t delta = fd.valid() ? request.offset & (host_page - 1) : 0;
  size_t mmap_length = 0;
  {
    // Cheap checks first, so a doomed request costs no mmap. They are
    // repeated under the exclusive lock below, where they count.
    absl::ReaderMutexLock lock(&mu_);
    const uint64_t page = limits_.page_sizes & (~limits_.page_sizes + 1);  // smallest
    const uint64_t offset = fd.valid() ? request.offset : 0;
    if (((iova | size | offset) & (page - 1)) != 0) {
      return wire::WireError(
          EINVAL, absl::StrCat("DMA_MAP ", Range(iova, size), " offset 0x", absl::Hex(offset),
                               " not aligned to 0x", absl::Hex(page)));
    }
    if (size > limits_.max_map_size) {
      return wire::WireError(
          ENOSPC, absl::StrCat("DMA_MAP of 0x", absl::Hex(size), " bytes is above the limit of 0x",
                               absl::Hex(limits_.max_map_size)));
    }
    // Cannot wrap: size is at most max_map_size, far below 2^64.
    if (fd.valid()) {
      mmap_length = static_cast<size_t>((size + delta + host_page - 1) & ~(host_page - 1));
    }
    if (absl::Status s = CheckInsertableLocked(iova, size, mmap_length); !s.ok()) return s;
  }

  uint8_t* host = nullptr;
  void* mmap_base = nullptr;
  DmaAddressSpaceBudget* budget = nullptr;
  if (fd.valid()) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      return wire::WireError(errno, absl::StrCat("DMA_MAP fstat: ", std::strerror(errno)));
    }
    if (S_ISREG(st.st_mode) && (request.offset > static_cast<uint64_t>(st.st_size) ||
                                size > static_cast<uint64_t>(st.st_size) - request.offset)) {
      return wire::WireError(
          EINVAL, absl::StrCat("DMA_MAP ", Range(request.offset, size),
                               " lies beyond the end of its file (", st.st_size, " bytes)"));
    }
    // The process's share is taken before the mmap, so that all clients
    // together never map more than the process can hold.
    if (absl::Status s = budget_.Reserve(mmap_length); !s.ok()) {
      return Refuse(wire::WireError(wire::ReplyErrno(s),
                                    absl::StrCat("DMA_MAP ", Range(iova, size), ": ", s.message())));
    }
    int prot = 0;
    if (request.flags & wire::kDmaMapFlagRead) prot |= PROT_READ;
    if (request.flags & wire::kDmaMapFlagWrite) prot |= PROT_WRITE;
    void* base = ::mmap(nullptr, mmap_length, prot, MAP_SHARED, fd.get(),
                        static_cast<off_t>(request.offset - delta));
    if (base == MAP_FAILED) {
      const int error = errno;
      budget_.Release(mmap_length);
      return wire::WireError(
          error, absl::StrCat("DMA_MAP mmap of ", Range(iova, size), ": ", std::strerror(error)));
    }
    mmap_base = base;
    host = static_cast<uint8_t*>(base) + delta;
    budget = &budget_;
  }
  // From here the mapping owns the mmap and the budget reservation.
  auto mapping = std::make_unique<DmaMapping>(iova, size, request.flags, host, mmap_base,
                                              mmap_length, &logging_,
                                              static_cast<const DmaFaultReporter*>(this), budget);

  const DmaRange range = RangeOf(*mapping);
  std::unique_ptr<const DmaHostIndex> old_index;
  {
    absl::MutexLock lock(&mu_);
    // On failure `mapping` unmaps the memory again; nobody saw it.
    if (absl::Status s = CheckInsertableLocked(iova, size, mmap_length); !s.ok()) return s;
    if (logging_page_size_ != 0) mapping->StartDirtyLog();
    mapped_bytes_ += mmap_length;
    mappings_.emplace(iova, std::move(mapping));
    if (range.mapped) old_index = PublishHostIndexLocked();
  }
  RetireHostIndex(std::move(old_index));
  return range;
}

absl::StatusOr<std::vector<DmaRange>> DmaMapTable::Unmap(const wire::DmaUnmapRequest& request,
                                                         std::vector<uint8_t>* dirty_bitmap_out) {
  if ((request.flags & ~kUnmapFlags) != 0) {
    return wire::WireError(EINVAL, absl::StrCat("DMA_UNMAP with unknown flags 0x",
                                                absl::Hex(request.flags & ~kUnmapFlags)));
  }
  const bool want_bitmap = (request.flags & wire::kDmaUnmapFlagGetDirtyBitmap) != 0;
  std::vector<DmaRange> ranges;

  if ((request.flags & wire::kDmaUnmapFlagAll) != 0) {
    if (want_bitmap) return wire::WireError(EINVAL, "DMA_UNMAP ALL with GET_DIRTY_BITMAP");
    if (request.addr != 0 || request.size != 0) {
      return wire::WireError(EINVAL, "DMA_UNMAP ALL with a non-zero addr or size");
    }
    std::vector<std::unique_ptr<DmaMapping>> removed;
    std::unique_ptr<const DmaHostIndex> old_index;
    {
      absl::MutexLock lock(&mu_);
      removed = ExtractAllLocked();
      old_index = PublishHostIndexLocked();
    }
    for (const auto& m : removed) ranges.push_back(RangeOf(*m));
    // Copies on the fast path end with the grace period, the others with
    // their references.
    RetireHostIndex(std::move(old_index));
    Retire(removed);
    return ranges;
  }

  if (want_bitmap && (!request.bitmap.has_value() || dirty_bitmap_out == nullptr)) {
    return wire::WireError(EINVAL, "DMA_UNMAP GET_DIRTY_BITMAP without a bitmap");
  }
  std::unique_ptr<DmaMapping> mapping;
  std::unique_ptr<const DmaHostIndex> old_index;
  {
    absl::MutexLock lock(&mu_);
    auto it = mappings_.find(request.addr);
    if (it == mappings_.end() || it->second->size() != request.size) {
      return wire::WireError(ENOENT, absl::StrCat("DMA_UNMAP ", Range(request.addr, request.size),
                                                  " matches no mapping"));
    }
    if (want_bitmap) {
      // All checked before anything changes, so a refused request unmaps
      // nothing.
      const wire::DmaUnmapBitmap& bitmap = *request.bitmap;
      if (logging_page_size_ == 0) {
        return wire::WireError(EINVAL, "DMA_UNMAP GET_DIRTY_BITMAP while not logging");
      }
      if (bitmap.pgsize != logging_page_size_) {
        return wire::WireError(EINVAL,
                               absl::StrCat("DMA_UNMAP bitmap page size ", bitmap.pgsize,
                                            " is not the logging page size ", logging_page_size_));
      }
      absl::StatusOr<uint64_t> expected = wire::DirtyBitmapSize(request.size, bitmap.pgsize);
      if (!expected.ok() || *expected != bitmap.size) {
        return wire::WireError(EINVAL,
                               absl::StrCat("DMA_UNMAP bitmap of ", bitmap.size, " bytes for ",
                                            Range(request.addr, request.size)));
      }
      if (!it->second->fd_backed()) {
        return wire::WireError(EINVAL, "DMA_UNMAP GET_DIRTY_BITMAP of an fd-less mapping");
      }
    }
    mapping = std::move(it->second);
    mappings_.erase(it);
    mapped_bytes_ -= mapping->mmap_length();
    if (mapping->fd_backed()) old_index = PublishHostIndexLocked();
  }
  ranges.push_back(RangeOf(*mapping));
  // After the grace period and the drain every device write to the mapping
  // is done and marked.
  RetireHostIndex(std::move(old_index));
  const bool drained = DrainOrRevoke(*mapping, absl::Now() + limits().pin_release_timeout);
  if (want_bitmap) {
    // After a revocation, the late holder's writes go to scratch memory and
    // are no longer marked: the bitmap is complete for the client's pages.
    std::vector<uint64_t> words(request.bitmap->size / sizeof(uint64_t));
    mapping->TakeDirty(mapping->iova(), mapping->size(), request.bitmap->pgsize,
                       absl::MakeSpan(words));
    *dirty_bitmap_out = ToBytes(words);
  }
  if (drained) {
    mapping.reset();
  } else {
    DmaMapping::Abandon(std::move(mapping));
  }
  return ranges;
}

void DmaMapTable::UnmapAll() {
  std::vector<std::unique_ptr<DmaMapping>> removed;
  std::unique_ptr<const DmaHostIndex> old_index;
  {
    absl::MutexLock lock(&mu_);
    removed = ExtractAllLocked();
    old_index = PublishHostIndexLocked();
    logging_page_size_ = 0;
    logging_.store(false, std::memory_order_release);
  }
  RetireHostIndex(std::move(old_index));
  Retire(removed);
}

std::vector<std::unique_ptr<DmaMapping>> DmaMapTable::ExtractAllLocked() {
  std::vector<std::unique_ptr<DmaMapping>> removed;
  removed.reserve(mappings_.size());
  for (auto& [iova, mapping] : mappings_) removed.push_back(std::move(mapping));
  mappings_.clear();
  mapped_bytes_ = 0;
  return removed;
}

template <typename Access>
MappedAccess DmaMapTable::WithMappedHost(uint64_t iova, uint64_t length, uint32_t need,
                                         Access access) const {
  RcuReadSection section;
  const DmaHostIndex* index = host_index_.load(std::memory_order_acquire);
  const DmaHostIndex::Entry* e = index == nullptr ? nullptr : index->Find(iova, length, need);
  if (e == nullptr) return MappedAccess::kNotMapped;
  if (access(e->host + (iova - e->iova), *e->mapping)) return MappedAccess::kDone;
  // Still inside the section: the mapping is alive while it hears of it.
  e->mapping->ReportFault(iova, length);
  return MappedAccess::kFaulted;
}

std::unique_ptr<const DmaHostIndex> DmaMapTable::PublishHostIndexLocked() {
  std::vector<DmaHostIndex::Entry> entries;
  for (const auto& [iova, m] : mappings_) {
    if (!m->fd_backed()) continue;
    entries.push_back({.iova = m->iova(),
                       .end = m->end(),
                       .host = m->host(),
                       .flags = m->flags(),
                       .mapping = m.get()});
  }
  const DmaHostIndex* next = entries.empty() ? nullptr : new DmaHostIndex(std::move(entries));
  return std::unique_ptr<const DmaHostIndex>(
      host_index_.exchange(next, std::memory_order_acq_rel));
}

MappedAccess DmaMapTable::TryReadMapped(uint64_t iova, absl::Span<uint8_t> out) const {
  return WithMappedHost(iova, out.size(), wire::kDmaMapFlagRead,
                        [&](uint8_t* host, const DmaMapping&) {
                          return GuardedMemcpy(out.data(), host, out.size());
                        });
}

MappedAccess DmaMapTable::TryWriteMapped(uint64_t iova, absl::Span<const uint8_t> data) const {
  return WithMappedHost(iova, data.size(), wire::kDmaMapFlagWrite,
                        [&](uint8_t* host, const DmaMapping& mapping) {
                          if (!GuardedMemcpy(host, data.data(), data.size())) return false;
                          // Inside the section: an Unmap that returns the
                          // dirty bitmap reads it only after the grace
                          // period, so this mark is in it.
                          mapping.MarkDirty(iova, data.size());
                          return true;
                        });
}

absl::StatusOr<DmaSgList> DmaMapTable::Translate(uint64_t iova, uint64_t length,
                                                 DmaDirection dir) const {
  DmaSgList list;
  if (length == 0) return list;
  if (iova + length < iova) {
    return absl::NotFoundError(absl::StrCat("DMA ", Range(iova, length), " wraps"));
  }
  const uint64_t end = iova + length;
  const uint32_t need = dir == DmaDirection::kRead ? wire::kDmaMapFlagRead : wire::kDmaMapFlagWrite;

  // Held for the search only; the references in `list` keep the mappings
  // alive once it is released. On failure `list` drops what it took.
  absl::ReaderMutexLock lock(&mu_);
  auto it = mappings_.upper_bound(iova);
  if (it == mappings_.begin()) {
    return absl::NotFoundError(absl::StrCat("DMA ", Range(iova, length), " is not mapped"));
  }
  --it;
  uint64_t cursor = iova;
  while (true) {
    DmaMapping* m = it->second.get();
    if (m->end() <= cursor) {
      return absl::NotFoundError(
          absl::StrCat("DMA ", Range(iova, length), ": 0x", absl::Hex(cursor), " is not mapped"));
    }
    if ((m->flags() & need) == 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "DMA ", dir == DmaDirection::kRead ? "read" : "write", " of ", Range(iova, length),
          " in a mapping without ", dir == DmaDirection::kRead ? "READ" : "WRITE"));
    }
    const uint64_t segment_end = std::min(end, m->end());
    uint8_t* host = m->fd_backed() ? m->host() + (cursor - m->iova()) : nullptr;
    list.Add(DmaSgList::Segment{.iova = cursor, .length = segment_end - cursor, .host = host}, m);
    if (segment_end == end) return list;
    cursor = segment_end;
    ++it;
    if (it == mappings_.end() || it->first != cursor) {
      return absl::NotFoundError(
          absl::StrCat("DMA ", Range(iova, length), ": 0x", absl::Hex(cursor), " is not mapped"));
    }
  }
}

absl::Status DmaMapTable::StartLogging(const wire::DmaLoggingControl& control) {
  if (!IsPowerOfTwo(control.page_size) || control.page_size < dma_internal::kDirtyPageSize) {
    return wire::WireError(EINVAL, absl::StrCat("DMA logging page size ", control.page_size,
                                                " is not a power of two >= 4096"));
  }
  std::vector<wire::DmaLoggingRange> ranges = control.ranges;
  std::sort(ranges.begin(), ranges.end(),
            [](const auto& a, const auto& b) { return a.iova < b.iova; });
  for (size_t i = 0; i < ranges.size(); ++i) {
    const wire::DmaLoggingRange& r = ranges[i];
    if (r.length == 0 || r.iova + r.length < r.iova) {
      return wire::WireError(EINVAL, absl::StrCat("DMA logging range ", Range(r.iova, r.length),
                                                  " is empty or wraps"));
    }
    if (i > 0 && ranges[i - 1].iova + ranges[i - 1].length > r.iova) {
      return wire::WireError(
          EINVAL, absl::StrCat("DMA logging range ", Range(r.iova, r.length), " overlaps another"));
    }
  }

  absl::MutexLock lock(&mu_);
  if (logging_page_size_ != 0) {
    if (logging_page_size_ == control.page_size) return absl::OkStatus();
    return wire::WireError(
        EINVAL, absl::StrCat("DMA logging already on with page size ", logging_page_size_));
  }
  for (auto& [iova, mapping] : mappings_) mapping->StartDirtyLog();
  logging_page_size_ = control.page_size;
  // Release: the cleared (or new) bitmaps are in place before any device
  // thread sees logging on.
  logging_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status DmaMapTable::StopLogging() {
  absl::MutexLock lock(&mu_);
  // The bitmaps stay allocated: a device thread may be inside MarkDirty
  // right now. They are cleared on the next start and freed with their
  // mappings.
  logging_page_size_ = 0;
  logging_.store(false, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status DmaMapTable::Report(const wire::DmaLoggingReport& request,
                                 std::vector<uint8_t>& bitmap_out) {
  if (request.length == 0 || request.iova + request.length - 1 < request.iova) {
    return wire::WireError(
        EINVAL, absl::StrCat("DMA logging report of ", Range(request.iova, request.length)));
  }
  absl::StatusOr<uint64_t> bytes = wire::DirtyBitmapSize(request.length, request.page_size);
  if (!bytes.ok()) return bytes.status();
  if (*bytes > kMaxReportBitmapBytes) {
    return wire::WireError(EINVAL,
                           absl::StrCat("DMA logging report needs a bitmap of ", *bytes, " bytes"));
  }
  std::vector<uint64_t> words(*bytes / sizeof(uint64_t));
  {
    // Shared: reports only race device threads, which the bitmaps handle.
    absl::ReaderMutexLock lock(&mu_);
    if (logging_page_size_ == 0) {
      return wire::WireError(EINVAL, "DMA logging report while not logging");
    }
    const uint64_t last = request.iova + request.length - 1;
    auto it = mappings_.upper_bound(request.iova);
    if (it != mappings_.begin() && std::prev(it)->second->end() > request.iova) --it;
    for (; it != mappings_.end() && it->first <= last; ++it) {
      it->second->TakeDirty(request.iova, request.length, request.page_size, absl::MakeSpan(words));
    }
  }
  bitmap_out = ToBytes(words);
  return absl::OkStatus();
}

}  // namespace vfu
