// Moving a command's data between the controller and client memory: the
// PRP walk of a command (through the client's memory), copies of small
// buffers (Identify data, log pages, DSM ranges) and the namespace I/O path.
//
// Namespace I/O is zero copy when the client shared its memory with an fd:
// every data range is pinned (DeviceContext::DmaPin) and the file is read
// or written straight into / from it with preadv / pwritev, run under the
// pin's fault guard, and the pages written are marked dirty. Memory without
// an fd goes through a bounce buffer and DMA_READ / DMA_WRITE messages.
//
// Every function returns an NVMe status (kSuccess, kDataTransferError for
// memory the client did not map or took away, kInternalError for a file
// error). Thread-compatible: each serving thread has its own GuestData.
#ifndef VFU_DEVICES_NVME_GUEST_DATA_H_
#define VFU_DEVICES_NVME_GUEST_DATA_H_

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_namespace.h"
#include "devices/nvme/prp_walker.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_sg_list.h"

namespace vfu::nvme {

class GuestData {
 public:
  // Counts zero-copy and message transfers into the given counters too
  // (shared by several threads' GuestData), as each transfer starts.
  GuestData() = default;
  GuestData(std::atomic<uint64_t>* zero_copy, std::atomic<uint64_t>* bounced)
      : shared_zero_copy_(zero_copy), shared_bounced_(bounced) {}

  // Walks the PRPs of `sqe` for a `length`-byte transfer into segments().
  uint16_t Walk(DeviceContext& dma, const SubmissionEntry& sqe, uint64_t length,
                uint64_t page_size);
  const std::vector<DataSegment>& segments() const { return segments_; }

  // Copies `data` to / fills `out` from the walked segments (whose total
  // must equal the span's size).
  uint16_t CopyOut(DeviceContext& dma, absl::Span<const uint8_t> data);
  uint16_t CopyIn(DeviceContext& dma, absl::Span<uint8_t> out);

  // Reads the namespace at byte `offset` into the walked segments, or
  // writes them to it.
  uint16_t ReadNamespace(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset);
  uint16_t WriteNamespace(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset);

  // How many transfers took the zero-copy path and how many the messages.
  uint64_t zero_copy_transfers() const { return zero_copy_transfers_; }
  uint64_t bounced_transfers() const { return bounced_transfers_; }

 private:
  // Pins every segment; false when some memory has no fd (use messages).
  // Sets *status on a hard failure.
  bool PinAll(DeviceContext& dma, DmaDirection direction, uint16_t* status);
  uint16_t Bounce(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset, bool to_namespace);

  std::vector<DataSegment> segments_;
  std::vector<DmaSgList> pins_;
  std::vector<struct iovec> iov_;
  std::vector<uint8_t> bounce_;
  void CountZeroCopy() {
    ++zero_copy_transfers_;
    if (shared_zero_copy_ != nullptr) shared_zero_copy_->fetch_add(1, std::memory_order_relaxed);
  }
  void CountBounced() {
    ++bounced_transfers_;
    if (shared_bounced_ != nullptr) shared_bounced_->fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t zero_copy_transfers_ = 0;
  uint64_t bounced_transfers_ = 0;
  std::atomic<uint64_t>* shared_zero_copy_ = nullptr;
  std::atomic<uint64_t>* shared_bounced_ = nullptr;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_GUEST_DATA_H_
