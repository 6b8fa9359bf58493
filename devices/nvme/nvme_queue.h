// The two halves of an NVMe queue pair as the controller keeps them: a
// SubmissionQueue (entries the driver writes, fetched by the thread serving
// it) and a CompletionQueue (entries the controller posts, with the phase
// tag). Both live in client memory and are reached through a DeviceContext
// for every access: a queue never pins its memory while it waits for the
// driver.
//
// Indices are the spec's: a queue of `size` entries is empty when
// head == tail and full when tail + 1 == head (mod size). Doorbell values are
// checked here (SetTail/SetHead return false for a value the driver may not
// write), so nothing indexes client memory with an unchecked number.
//
// Full completion queues (NVMe 1.4 section 4.1): a command is fetched only
// once its completion has a reserved slot (Reserve), so completions never
// wait and never overwrite entries the driver has not consumed; fetching
// resumes when the head doorbell frees slots.
#ifndef VFU_DEVICES_NVME_NVME_QUEUE_H_
#define VFU_DEVICES_NVME_NVME_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "devices/nvme/nvme_defs.h"
#include "vfu/device/device.h"

namespace vfu::nvme {

// Thread-safe: several submission queues (served by different threads) may
// complete into one completion queue; the doorbell writes from a worker.
class CompletionQueue {
 public:
  // `size` in entries (2 .. kMaxQueueEntries), `base` its client address.
  CompletionQueue(uint16_t id, uint64_t base, uint32_t size, uint16_t vector, bool irq_enabled)
      : id_(id), base_(base), size_(size), vector_(vector), irq_enabled_(irq_enabled) {}

  uint16_t id() const { return id_; }
  uint32_t size() const { return size_; }
  uint64_t base() const { return base_; }
  uint16_t vector() const { return vector_; }
  bool irq_enabled() const { return irq_enabled_; }

  // Claims a slot for one completion; false when every free slot is
  // claimed (the caller must not fetch a command then).
  bool Reserve() ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back a slot Reserve claimed, unused.
  void Unreserve() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `entry` at the tail with the current phase tag and advances the
  // tail, using a slot Reserve claimed. FailedPrecondition once the queue
  // is deleted (Kill; nothing is written then); the DMA status when the
  // entry could not be written (the controller then reports a fatal error).
  absl::Status Post(DeviceContext& dma, CompletionEntry entry) ABSL_LOCKS_EXCLUDED(mu_);
  // The head doorbell. False when `head` is outside the queue or past
  // entries not yet posted (the write is then ignored).
  bool SetHead(uint32_t head) ABSL_LOCKS_EXCLUDED(mu_);
  // Entries posted that the driver has not consumed (head != tail).
  bool HasUnconsumed() const ABSL_LOCKS_EXCLUDED(mu_);
  // Deleted or reset: later posts are dropped.
  void Kill() ABSL_LOCKS_EXCLUDED(mu_);

  // Migration: the indices, read with every serving thread parked (no
  // slot reserved then), and restored into a fresh queue from checked values.
  struct Indices {
    uint32_t head = 0;
    uint32_t tail = 0;
    bool phase = true;
  };
  Indices indices() const ABSL_LOCKS_EXCLUDED(mu_);
  void Restore(Indices indices) ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t shadow_head_address() const { return shadow_head_.load(std::memory_order_acquire); }
  uint64_t event_index_address() const { return event_index_.load(std::memory_order_acquire); }

  // Shadow doorbells (Doorbell Buffer Config): the driver writes its head
  // to client memory at `shadow_head` and rings the MMIO doorbell only when
  // it passes the value the controller left at `event_index`.
  void EnableShadow(uint64_t shadow_head, uint64_t event_index) {
    event_index_.store(event_index, std::memory_order_relaxed);
    shadow_head_.store(shadow_head, std::memory_order_release);
  }
  bool shadowed() const { return shadow_head_.load(std::memory_order_acquire) != 0; }
  // Takes the head from the shadow buffer (when shadowed); false when it
  // could not be read or was out of range.
  bool RefreshHeadFromShadow(DeviceContext& dma) ABSL_LOCKS_EXCLUDED(mu_);
  // Asks for an MMIO head doorbell at the driver's next consumption (for a
  // thread about to wait for free slots), then looks at the shadow again.
  void ArmEventIndex(DeviceContext& dma) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const uint16_t id_;
  const uint64_t base_;
  const uint32_t size_;
  const uint16_t vector_;
  const bool irq_enabled_;

  mutable absl::Mutex mu_;
  uint32_t head_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t tail_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  // The phase tag of entries posted now; starts at 1 (memory starts zeroed).
  bool phase_ ABSL_GUARDED_BY(mu_) = true;
  bool dead_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> shadow_head_{0};
  std::atomic<uint64_t> event_index_{0};
};

// The tail is written by doorbells (any thread); the head and fetching
// belong to the one thread serving the queue.
class SubmissionQueue {
 public:
  SubmissionQueue(uint16_t id, uint64_t base, uint32_t size, std::shared_ptr<CompletionQueue> cq)
      : id_(id), base_(base), size_(size), cq_(std::move(cq)) {}

  uint16_t id() const { return id_; }
  uint32_t size() const { return size_; }
  CompletionQueue& cq() const { return *cq_; }
  const std::shared_ptr<CompletionQueue>& shared_cq() const { return cq_; }

  // The tail doorbell; false (ignored) when `tail` >= size.
  bool SetTail(uint32_t tail) {
    if (tail >= size_) return false;
    tail_.store(tail, std::memory_order_release);
    return true;
  }

  // ---- Serving thread only ----
  uint32_t head() const { return head_; }
  // Entries submitted and not yet fetched.
  uint32_t Pending() const {
    const uint32_t tail = tail_.load(std::memory_order_acquire);
    return (tail + size_ - head_) % size_;
  }
  // Reads up to out.size() entries from the head on, stopping at the tail
  // or the end of the ring (no wrap in one read): how many it read. Does
  // not move the head.
  absl::StatusOr<size_t> Fetch(DeviceContext& dma, absl::Span<SubmissionEntry> out) const;
  void Advance(uint32_t count) { head_ = (head_ + count) % size_; }
  // Migration: a fresh queue takes the indices of the one it replaces.
  void Restore(uint32_t head, uint32_t tail) {
    head_ = head % size_;
    tail_.store(tail % size_, std::memory_order_release);
  }
  uint64_t shadow_tail_address() const { return shadow_tail_.load(std::memory_order_acquire); }
  uint64_t event_index_address() const { return event_index_.load(std::memory_order_acquire); }
  uint64_t base() const { return base_; }

  // Shadow doorbells: the tail lives in client memory at `shadow_tail`; the
  // driver rings the MMIO doorbell only when its new tail passes the value
  // the controller left at `event_index` (NVMe 1.4 section 5.8). Any thread.
  void EnableShadow(uint64_t shadow_tail, uint64_t event_index) {
    event_index_.store(event_index, std::memory_order_relaxed);
    shadow_tail_.store(shadow_tail, std::memory_order_release);
  }
  bool shadowed() const { return shadow_tail_.load(std::memory_order_acquire) != 0; }
  uint32_t tail() const { return tail_.load(std::memory_order_acquire); }
  // Serving thread: takes the tail from the shadow buffer; false when it
  // could not be read or was out of range (then ignored).
  bool RefreshTailFromShadow(DeviceContext& dma);
  // Serving thread, about to go idle: writes EventIdx = head (the driver
  // then rings at its next submission), a full barrier, and a last look at
  // the shadow tail. True when entries arrived meanwhile (keep serving).
  bool ArmEventIndex(DeviceContext& dma);

 private:
  const uint16_t id_;
  const uint64_t base_;
  const uint32_t size_;
  const std::shared_ptr<CompletionQueue> cq_;
  std::atomic<uint32_t> tail_{0};
  uint32_t head_ = 0;
  std::atomic<uint64_t> shadow_tail_{0};
  std::atomic<uint64_t> event_index_{0};
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_QUEUE_H_
