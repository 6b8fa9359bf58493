#include "vfu/dma/dma_memory.h"

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/dma/dma_fault.h"

namespace vfu {

DmaMemory::DmaMemory(DmaMapTable& table, MessageDmaPath& messages)
    : table_(table), messages_(messages) {}

absl::Status DmaMemory::Read(uint64_t iova, absl::Span<uint8_t> out) {
  switch (table_.TryReadMapped(iova, out)) {
    case MappedAccess::kDone:
      return absl::OkStatus();
    case MappedAccess::kFaulted:
      return DmaFaultError("DMA read", iova, out.size());
    case MappedAccess::kNotMapped:
      break;
  }
  VFU_ASSIGN_OR_RETURN(DmaSgList list, table_.Translate(iova, out.size(), DmaDirection::kRead));
  size_t done = 0;
  for (const DmaSgList::Segment& s : list.segments()) {
    absl::Span<uint8_t> part = out.subspan(done, s.length);
    if (s.host != nullptr) {
      VFU_RETURN_IF_ERROR(list.Read(done, part));
    } else {
      VFU_RETURN_IF_ERROR(messages_.Read(s.iova, part));
    }
    done += part.size();
  }
  return absl::OkStatus();
}

absl::Status DmaMemory::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  switch (table_.TryWriteMapped(iova, data)) {
    case MappedAccess::kDone:
      return absl::OkStatus();
    case MappedAccess::kFaulted:
      return DmaFaultError("DMA write", iova, data.size());
    case MappedAccess::kNotMapped:
      break;
  }
  VFU_ASSIGN_OR_RETURN(DmaSgList list, table_.Translate(iova, data.size(), DmaDirection::kWrite));
  size_t done = 0;
  for (const DmaSgList::Segment& s : list.segments()) {
    absl::Span<const uint8_t> part = data.subspan(done, s.length);
    if (s.host != nullptr) {
      // Marked dirty per segment, right after its copy: a later message
      // failure must not leave bytes already written unlogged.
      VFU_RETURN_IF_ERROR(list.Write(done, part));
    } else {
      VFU_RETURN_IF_ERROR(messages_.Write(s.iova, part));
    }
    done += part.size();
  }
  return absl::OkStatus();
}

absl::StatusOr<DmaSgList> DmaMemory::Pin(uint64_t iova, uint64_t length, DmaDirection dir) {
  VFU_ASSIGN_OR_RETURN(DmaSgList list, table_.Translate(iova, length, dir));
  if (!list.all_host()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "DMA pin of [0x", absl::Hex(iova), ", +0x", absl::Hex(length),
        ") reaches fd-less memory, which only DMA_READ/DMA_WRITE messages can access"));
  }
  return list;
}

}  // namespace vfu
