#include "vfu/dma/dma_memory.h"

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/dma/dma_fault.h"

namespace vfu {

std::optional<absl::Status> FastPathStatus(MappedAccess access, std::string_view what,
                                           uint64_t iova, uint64_t length) {
  switch (access) {
    case MappedAccess::kDone:
      return absl::OkStatus();
    case MappedAccess::kFaulted:
      return DmaFaultError(what, iova, length);
    case MappedAccess::kNotMapped:
      break;
  }
  return std::nullopt;
}

DmaMemory::DmaMemory(DmaMapTable& table, MessageDmaPath& messages)
    : table_(table), messages_(messages) {}

absl::Status DmaMemory::Read(uint64_t iova, absl::Span<uint8_t> out) {
  if (std::optional<absl::Status> done =
          FastPathStatus(table_.TryReadMapped(iova, out), "DMA read", iova, out.size())) {
    return *done;
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
  if (std::optional<absl::Status> done =
          FastPathStatus(table_.TryWriteMapped(iova, data), "DMA write", iova, data.size())) {
    return *done;
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
