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

}  // namespace vfu::nvme
