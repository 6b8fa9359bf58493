// DmaMemory: the copy helpers device code uses to read and write client
// memory, from any thread.
//
//   DmaMemory dma(table, messages);
//   VFU_RETURN_IF_ERROR(dma.Read(descriptor_iova, absl::MakeSpan(descriptor)));
//   VFU_RETURN_IF_ERROR(dma.Write(status_iova, status_bytes));
//
// A range inside one fd-backed mapping is copied on the table's lock-free
// fast path (DmaMapTable::TryReadMapped). Any other range is resolved with
// DmaMapTable::Translate, copied straight through its mmapped segments, with
// DMA_READ / DMA_WRITE messages (through MessageDmaPath) for fd-less ones.
// Either way the mappings involved stay mapped until the copy is done, so an
// unmap waits for a copy in progress instead of pulling the memory from
// under it. Every copy through shared memory is guarded: memory the client
// took away (a file shrunk under its mapping) fails the copy with the DMA
// fault status (dma_fault.h, IsDmaFault) and is reported to the table's
// fault handler, instead of killing the process with SIGBUS.
#ifndef VFU_DMA_DMA_MEMORY_H_
#define VFU_DMA_DMA_MEMORY_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_sg_list.h"

namespace vfu {

// How fd-less client memory is reached: DMA_READ / DMA_WRITE messages, sent
// by the runtime, which also splits a transfer to the client's
// max_data_xfer_size. Called from device threads, several at once; a call
// blocks until the client answers (or the runtime gives up). Errors come
// back unchanged from DmaMemory.
class MessageDmaPath {
 public:
  virtual ~MessageDmaPath() = default;
  virtual absl::Status Read(uint64_t iova, absl::Span<uint8_t> out) = 0;
  virtual absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data) = 0;
};

// The outcome of a copy on the table's fast path (TryReadMapped /
// TryWriteMapped) as the caller returns it: OK when copied, the DMA fault
// status when the client's memory faulted, nullopt when the copy must take
// the general path. `what` names the access in the fault status.
std::optional<absl::Status> FastPathStatus(MappedAccess access, std::string_view what,
                                           uint64_t iova, uint64_t length);

class DmaMemory {
 public:
  // Both must outlive this object.
  DmaMemory(DmaMapTable& table, MessageDmaPath& messages);

  // Fills `out` from client memory at `iova`. The whole range is checked
  // before any byte moves: NotFound when part of it is not mapped,
  // PermissionDenied when a mapping lacks READ; the DMA fault status when
  // the client's memory faulted; a message failure is returned as is (`out`
  // may then be partly filled). Empty `out` is OK.
  absl::Status Read(uint64_t iova, absl::Span<uint8_t> out);

  // Copies `data` into client memory at `iova`; same errors (WRITE needed).
  // Pages written through the mmap are marked dirty for DMA logging after
  // the copy; message writes are not, as the client sees those itself.
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data);

  // Zero-copy access: the resolved range, with host pointers valid while
  // the returned list lives (an unmap waits for it, up to the pin release
  // timeout). FailedPrecondition when any part is fd-less and so has no host
  // memory. Touch the bytes with the list's guarded methods (Read, Write,
  // Copy, RunGuarded), which also mark written pages dirty, never with a
  // plain memcpy: the client can take the memory away at any time.
  absl::StatusOr<DmaSgList> Pin(uint64_t iova, uint64_t length, DmaDirection dir);

 private:
  DmaMapTable& table_;
  MessageDmaPath& messages_;
};

}  // namespace vfu

#endif  // VFU_DMA_DMA_MEMORY_H_
