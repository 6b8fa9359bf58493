#include "devices/nvme/nvme_queue.h"

#include <algorithm>

namespace vfu::nvme {

bool CompletionQueue::Reserve() {
  absl::MutexLock lock(&mu_);
  const uint32_t used = (tail_ + size_ - head_) % size_;
  if (used + reserved_ + 1 >= size_) return false;
  ++reserved_;
  return true;
}

void CompletionQueue::Unreserve() {
  absl::MutexLock lock(&mu_);
  if (reserved_ > 0) --reserved_;
}

absl::Status CompletionQueue::Post(DeviceContext& dma, CompletionEntry entry) {
  absl::MutexLock lock(&mu_);
  if (reserved_ > 0) --reserved_;
  if (dead_) return absl::FailedPreconditionError("completion queue deleted");
  entry.status = static_cast<uint16_t>((entry.status & ~1u) | (phase_ ? 1 : 0));
  // Written under the lock: two posts into one queue must land in tail
  // order, or the driver could see a later phase before an earlier entry.
  absl::Status status = dma.DmaWrite(
      base_ + uint64_t{tail_} * kCqEntrySize,
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&entry), sizeof entry));
  if (!status.ok()) return status;
  if (++tail_ == size_) {
    tail_ = 0;
    phase_ = !phase_;
  }
  return absl::OkStatus();
}

bool CompletionQueue::SetHead(uint32_t head) {
  absl::MutexLock lock(&mu_);
  if (head >= size_) return false;
  const uint32_t used = (tail_ + size_ - head_) % size_;
  const uint32_t consumed = (head + size_ - head_) % size_;
  if (consumed > used) return false;
  head_ = head;
  return true;
}

bool CompletionQueue::HasUnconsumed() const {
  absl::MutexLock lock(&mu_);
  return head_ != tail_;
}

void CompletionQueue::Kill() {
  absl::MutexLock lock(&mu_);
  dead_ = true;
}

absl::StatusOr<size_t> SubmissionQueue::Fetch(DeviceContext& dma,
                                              absl::Span<SubmissionEntry> out) const {
  const uint32_t tail = tail_.load(std::memory_order_acquire);
  const uint32_t run_end = tail >= head_ ? tail : size_;
  const size_t n = std::min<size_t>(out.size(), run_end - head_);
  if (n == 0) return 0;
  absl::Status status =
      dma.DmaRead(base_ + uint64_t{head_} * kSqEntrySize,
                  absl::MakeSpan(reinterpret_cast<uint8_t*>(out.data()), n * kSqEntrySize));
  if (!status.ok()) return status;
  return n;
}

namespace {

absl::StatusOr<uint32_t> ReadDoorbellValue(DeviceContext& dma, uint64_t iova) {
  uint32_t value = 0;
  absl::Status status =
      dma.DmaRead(iova, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), sizeof value));
  if (!status.ok()) return status;
  return value;
}

absl::Status WriteDoorbellValue(DeviceContext& dma, uint64_t iova, uint32_t value) {
  return dma.DmaWrite(iova,
                      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), sizeof value));
}

}  // namespace

bool CompletionQueue::RefreshHeadFromShadow(DeviceContext& dma) {
  const uint64_t shadow = shadow_head_.load(std::memory_order_acquire);
  if (shadow == 0) return true;
  absl::StatusOr<uint32_t> head = ReadDoorbellValue(dma, shadow);
  return head.ok() && SetHead(*head);
}

void CompletionQueue::ArmEventIndex(DeviceContext& dma) {
  const uint64_t event_index = event_index_.load(std::memory_order_relaxed);
  if (event_index == 0) return;
  uint32_t head;
  {
    absl::MutexLock lock(&mu_);
    head = head_;
  }
  (void)WriteDoorbellValue(dma, event_index, head);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  (void)RefreshHeadFromShadow(dma);
}

bool SubmissionQueue::RefreshTailFromShadow(DeviceContext& dma) {
  const uint64_t shadow = shadow_tail_.load(std::memory_order_acquire);
  if (shadow == 0) return true;
  absl::StatusOr<uint32_t> tail = ReadDoorbellValue(dma, shadow);
  return tail.ok() && SetTail(*tail);
}

bool SubmissionQueue::ArmEventIndex(DeviceContext& dma) {
  const uint64_t event_index = event_index_.load(std::memory_order_relaxed);
  if (event_index == 0) return false;
  if (!WriteDoorbellValue(dma, event_index, head_).ok()) return false;
  // The EventIdx store must be visible before the tail is read again: the
  // driver does the mirror image (tail store, barrier, EventIdx load), so
  // one of the two sees the other's write.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return RefreshTailFromShadow(dma) && Pending() > 0;
}

CompletionQueue::Indices CompletionQueue::indices() const {
  absl::MutexLock lock(&mu_);
  return {.head = head_, .tail = tail_, .phase = phase_};
}

void CompletionQueue::Restore(Indices indices) {
  absl::MutexLock lock(&mu_);
  head_ = indices.head % size_;
  tail_ = indices.tail % size_;
  phase_ = indices.phase;
  reserved_ = 0;
}

}  // namespace vfu::nvme
