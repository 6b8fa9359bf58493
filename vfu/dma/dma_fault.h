// The status of a DMA access whose client memory faulted.
//
// A client can shrink the file behind a DMA mapping (ftruncate) at any time;
// QEMU's file-backed guest memory has no seals that forbid it. Every access
// vfu makes to client memory (DmaMemory::Read/Write, the table's fast path,
// DmaSgList's copy methods) runs under a fault guard (vfu/base/fault_guard.h)
// and fails with this status instead of killing the server with SIGBUS. The
// table then reports the fault (DmaMapTable::set_fault_handler), and the
// server disconnects the client: its memory can no longer be trusted.
//
//   absl::Status s = context->DmaRead(iova, buffer);
//   if (IsDmaFault(s)) { ... the client is being disconnected ... }
#ifndef VFU_DMA_DMA_FAULT_H_
#define VFU_DMA_DMA_FAULT_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace vfu {

// DataLoss, marked with a payload that IsDmaFault recognises; the message
// names the access ("DMA read of [0x1000, +0x200) faulted").
absl::Status DmaFaultError(std::string_view what, uint64_t iova, uint64_t length);

// True for a status made by DmaFaultError (and only those: other DataLoss
// errors, such as a corrupt stream, are not DMA faults).
bool IsDmaFault(const absl::Status& status);

}  // namespace vfu

#endif  // VFU_DMA_DMA_FAULT_H_
