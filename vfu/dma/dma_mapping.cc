#include "vfu/dma/dma_mapping.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>

#include "vfu/base/check.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/wire/dma_map.h"

namespace vfu::dma_internal {
namespace {

// The bits of word `w` whose index (counting across words) is in
// [first, last]; 0 when the word holds none of them.
uint64_t WordMask(uint64_t w, uint64_t first, uint64_t last) {
  const uint64_t word_first = w * 64;
  const uint64_t word_last = word_first + 63;
  if (first > last || last < word_first || first > word_last) return 0;
  const uint64_t lo = std::max(first, word_first) - word_first;
  const uint64_t hi = std::min(last, word_last) - word_first;
  const uint64_t up_to_hi = hi == 63 ? ~uint64_t{0} : (uint64_t{2} << hi) - 1;
  return up_to_hi & ~((uint64_t{1} << lo) - 1);
}

// Sets bits [first, last] of `words`.
void SetBits(absl::Span<uint64_t> words, uint64_t first, uint64_t last) {
  for (uint64_t w = first / 64; w <= last / 64; ++w) words[w] |= WordMask(w, first, last);
}

size_t DirtyWordsFor(uint64_t iova, uint64_t size) {
  const uint64_t pages = ((iova + size - 1) >> kDirtyPageShift) - (iova >> kDirtyPageShift) + 1;
  return static_cast<size_t>((pages + 63) / 64);
}

}  // namespace

DmaMapping::DmaMapping(uint64_t iova, uint64_t size, uint32_t flags, uint8_t* host, void* mmap_base,
                       size_t mmap_length, const std::atomic<bool>* logging,
                       const DmaFaultReporter* faults, DmaAddressSpaceBudget* budget)
    : iova_(iova),
      size_(size),
      flags_(flags),
      host_(host),
      mmap_base_(mmap_base),
      mmap_length_(mmap_length),
      logging_(logging),
      faults_(faults),
      budget_(budget),
      first_page_(iova >> kDirtyPageShift),
      dirty_words_(DirtyWordsFor(iova, size)) {}

DmaMapping::~DmaMapping() {
  if (mmap_base_ != nullptr) ::munmap(mmap_base_, mmap_length_);
  if (budget_ != nullptr) budget_->Release(mmap_length_);
}

void DmaMapping::Unref() {
  // Release hands this user's accesses to the memory over to the thread
  // that unmaps it; acquire, on the last decrement, orders them before what
  // follows (the waiter's munmap, or our own delete).
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The table reference is gone too, so the table is waiting or gave up.
  if (handoff_.fetch_add(1, std::memory_order_acq_rel) == 1) {
    delete this;  // abandoned: ours to free
    return;
  }
  // Nothing of this mapping is touched after Notify(): the waiter may free
  // it as soon as it wakes.
  drained_.Notify();
}

bool DmaMapping::DropTableReferenceAndWait(absl::Duration timeout) {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) return true;  // nobody else held it
  return drained_.WaitForNotificationWithTimeout(timeout);
}

bool DmaMapping::Revoke() {
  revoked_.store(true, std::memory_order_release);
  if (mmap_base_ == nullptr) return true;
  int prot = 0;
  if (flags_ & wire::kDmaMapFlagRead) prot |= PROT_READ;
  if (flags_ & wire::kDmaMapFlagWrite) prot |= PROT_WRITE;
  // In place, so every pointer a late holder has stays valid.
  void* scratch = ::mmap(mmap_base_, mmap_length_, prot,
                         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return scratch != MAP_FAILED;
}

void DmaMapping::Abandon(std::unique_ptr<DmaMapping> mapping) {
  DmaMapping* m = mapping.release();
  if (m->handoff_.fetch_add(1, std::memory_order_acq_rel) == 1) {
    // The last holder let go after the timeout; its Notify() may still be
    // running, and the notification's destructor waits for it.
    delete m;
  }
}

void DmaMapping::ReportFault(uint64_t iova, uint64_t length) const {
  if (revoked() || faults_ == nullptr) return;
  faults_->ReportFault(iova, length);
}

void DmaMapping::StartDirtyLog() {
  if (!fd_backed()) return;
  // Relaxed: `dirty_` is only ever stored under the same exclusive lock.
  std::atomic<uint64_t>* words = dirty_.load(std::memory_order_relaxed);
  if (words == nullptr) {
    dirty_storage_.reset(new std::atomic<uint64_t>[dirty_words_]());
    dirty_.store(dirty_storage_.get(), std::memory_order_release);
    return;
  }
  // A mark racing this clear came from before logging (re)started: keeping
  // or losing it only changes whether a page is reported once too often.
  for (size_t i = 0; i < dirty_words_; ++i) words[i].store(0, std::memory_order_relaxed);
}

void DmaMapping::MarkDirty(uint64_t iova, uint64_t length) const {
  if (length == 0 || revoked() || !logging_->load(std::memory_order_acquire)) return;
  std::atomic<uint64_t>* words = dirty_.load(std::memory_order_acquire);
  if (words == nullptr) return;
  const uint64_t last_requested = iova + length - 1 < iova ? ~uint64_t{0} : iova + length - 1;
  const uint64_t lo = std::max(iova, iova_);
  const uint64_t last = std::min(last_requested, end() - 1);
  if (lo > last) return;
  const uint64_t first_bit = (lo >> kDirtyPageShift) - first_page_;
  const uint64_t last_bit = (last >> kDirtyPageShift) - first_page_;
  for (uint64_t w = first_bit / 64; w <= last_bit / 64; ++w) {
    // Release: the device's stores to the page come before its bit, so a
    // report that reads the bit with acquire, and the copy of the page that
    // follows it, see the new bytes. Relaxed would keep the bit itself exact
    // (a read-modify-write never loses a concurrent bit) but a weakly
    // ordered CPU could show the bit before the data, and the page would be
    // copied stale with its bit already consumed. On x86 both orders compile
    // to the same locked OR.
    words[w].fetch_or(WordMask(w, first_bit, last_bit), std::memory_order_release);
  }
}

void DmaMapping::TakeDirty(uint64_t report_iova, uint64_t report_length, uint64_t page_size,
                           absl::Span<uint64_t> report_words) const {
  std::atomic<uint64_t>* words = dirty_.load(std::memory_order_acquire);
  if (words == nullptr || report_length == 0) return;
  const uint64_t report_last = report_iova + report_length - 1;
  const uint64_t lo = std::max(report_iova, iova_);
  const uint64_t last = std::min(report_last, end() - 1);
  if (lo > last) return;
  const int page_shift = std::countr_zero(page_size);

  const uint64_t first_bit = (lo >> kDirtyPageShift) - first_page_;
  const uint64_t last_bit = (last >> kDirtyPageShift) - first_page_;
  // 4 KiB pages wholly inside the report range (absolute page numbers,
  // [clear_first, clear_end)); written without `+ 4095` so nothing wraps.
  const uint64_t clear_first =
      (report_iova >> kDirtyPageShift) + ((report_iova & (kDirtyPageSize - 1)) != 0);
  const uint64_t clear_end = (report_last >> kDirtyPageShift) +
                             ((report_last & (kDirtyPageSize - 1)) == kDirtyPageSize - 1);
  const bool any_clear =
      clear_end > clear_first && clear_end > first_page_ && clear_first <= first_page_ + last_bit;
  const uint64_t clear_first_bit = clear_first > first_page_ ? clear_first - first_page_ : 0;
  const uint64_t clear_last_bit = any_clear ? clear_end - 1 - first_page_ : 0;

  for (uint64_t w = first_bit / 64; w <= last_bit / 64; ++w) {
    const uint64_t mask = WordMask(w, first_bit, last_bit);
    // Most words are clean: look before paying for a read-modify-write. A
    // bit set right after this load stays set for the next report.
    uint64_t seen = words[w].load(std::memory_order_acquire) & mask;
    if (seen == 0) continue;
    const uint64_t clear = any_clear ? mask & WordMask(w, clear_first_bit, clear_last_bit) : 0;
    if (clear != 0) {
      // Read and clear in one step, so a mark landing in between is either
      // returned now or kept for the next report, never lost.
      seen = words[w].fetch_and(~clear, std::memory_order_acq_rel) & mask;
    }
    while (seen != 0) {
      const uint64_t page = first_page_ + w * 64 + std::countr_zero(seen);
      seen &= seen - 1;
      const uint64_t page_lo = std::max(page << kDirtyPageShift, lo);
      const uint64_t page_last = std::min((page << kDirtyPageShift) + (kDirtyPageSize - 1), last);
      SetBits(report_words, (page_lo - report_iova) >> page_shift,
              (page_last - report_iova) >> page_shift);
    }
  }
}

}  // namespace vfu::dma_internal
