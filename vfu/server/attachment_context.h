// AttachmentContext: the DeviceContext of one client attachment, as the
// threaded runtime hands it to the device (Device::OnAttach).
//
// It reaches the client's memory through the endpoint's DmaMapTable (memory
// shared with an fd) and through its connection (DMA_READ / DMA_WRITE for
// the rest). When the client goes away the runtime calls Revoke() before it
// unmaps anything: every later call fails with Unavailable without touching
// the table or the connection, so a device thread still working for this
// client can never reach the next client's memory, and a handle kept past
// Server::Stop() touches no freed memory.
//
// How Revoke() waits for calls in progress:
//   * a copy on the table's lock-free fast path checks the revoked flag
//     inside the RCU read section that covers the copy, so one grace period
//     after setting the flag no such copy is left (and the fast path stays
//     free of atomic read-modify-writes);
//   * every other call (a copy through Translate, a pin, message DMA) is
//     counted under a mutex, and Revoke() waits for the count to drop to
//     zero. Message DMA in progress ends quickly: the connection fails its
//     pending requests when it closes, before the detach.
//
// Threads: the DeviceContext calls from any thread; Revoke() from the
// connection's strand (never from inside a call: it would wait for itself).
#ifndef VFU_SERVER_ATTACHMENT_CONTEXT_H_
#define VFU_SERVER_ATTACHMENT_CONTEXT_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"

namespace vfu {

class Connection;

class AttachmentContext final : public DeviceContext, private MessageDmaPath {
 public:
  // `table` and `connection` must stay alive until Revoke() has returned;
  // the context itself may live on (the device may hold it) and then only
  // answers Unavailable.
  AttachmentContext(DmaMapTable& table, Connection& connection);

  AttachmentContext(const AttachmentContext&) = delete;
  AttachmentContext& operator=(const AttachmentContext&) = delete;

  // DeviceContext.
  absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) override;
  absl::StatusOr<DmaSgList> DmaPin(uint64_t iova, uint64_t length,
                                   DmaDirection direction) override;

  // From now on every call fails with Unavailable. Returns once no call
  // that started before is still in progress. Idempotent.
  void Revoke() ABSL_LOCKS_EXCLUDED(mu_);
  bool revoked() const { return revoked_.load(std::memory_order_acquire); }

 private:
  // Counts a call that is not on the fast path; false once revoked.
  bool BeginCall() ABSL_LOCKS_EXCLUDED(mu_);
  void EndCall() ABSL_LOCKS_EXCLUDED(mu_);

  // MessageDmaPath, reached only from counted calls.
  absl::Status Read(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data) override;

  // Statistics (DeviceStatistics): DMA copied through mappings, and DMA
  // sent as messages of at most `max_transfer` bytes.
  void RecordMapped(bool write, uint64_t bytes);
  void RecordMessages(bool write, uint64_t bytes, uint64_t max_transfer);

  DmaMapTable& table_;
  Connection& connection_;
  DmaMemory memory_;

  absl::Mutex mu_;
  // Written under mu_ (so a counted call never starts after Revoke() has
  // looked at the count); read without it by the fast path.
  std::atomic<bool> revoked_{false};
  int calls_in_progress_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vfu

#endif  // VFU_SERVER_ATTACHMENT_CONTEXT_H_
