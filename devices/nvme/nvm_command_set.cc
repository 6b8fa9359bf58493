#include "devices/nvme/nvm_command_set.h"

#include <cstring>

#include "vfu/base/log.h"

namespace vfu::nvme {
namespace {

uint64_t StartLba(const SubmissionEntry& sqe) {
  return (uint64_t{sqe.cdw11} << 32) | sqe.cdw10;
}
// NLB is 0-based.
uint64_t BlockCount(const SubmissionEntry& sqe) { return uint64_t{sqe.cdw12 & 0xffff} + 1; }

uint16_t FlushStatus(NvmeNamespace& ns) {
  absl::Status status = ns.Flush();
  if (status.ok()) return kSuccess;
  VFU_LOG_RATE_LIMITED(kWarning, "nvme: flush of ", ns.path(), ": ", status.message());
  return kInternalError;
}

}  // namespace

uint16_t NvmCommandSet::Execute(const SubmissionEntry& sqe, DeviceContext& dma,
                                uint64_t page_size, bool write_cache_enabled,
                                GuestData& data) const {
  switch (sqe.opcode) {
    case kNvmFlush:
      return Flush(sqe.nsid);
    case kNvmRead:
    case kNvmWrite:
    case kNvmWriteZeroes:
    case kNvmDatasetManagement:
      break;
    default:
      return kInvalidOpcode;
  }
  NvmeNamespace* ns = Find(sqe.nsid);
  if (ns == nullptr) return kInvalidNamespace;
  switch (sqe.opcode) {
    case kNvmRead:
    case kNvmWrite:
      return ReadWrite(sqe, *ns, dma, page_size, write_cache_enabled, data);
    case kNvmWriteZeroes:
      return WriteZeroes(sqe, *ns, write_cache_enabled);
    default:
      return DatasetManagement(sqe, *ns, dma, page_size, data);
  }
}

uint16_t NvmCommandSet::ReadWrite(const SubmissionEntry& sqe, NvmeNamespace& ns,
                                  DeviceContext& dma, uint64_t page_size,
                                  bool write_cache_enabled, GuestData& data) const {
  const uint64_t slba = StartLba(sqe);
  const uint64_t count = BlockCount(sqe);
  if (!ns.InRange(slba, count)) return kLbaOutOfRange;
  const uint64_t bytes = count << ns.lba_shift();
  if (bytes > kMaxTransferBytes) return kInvalidField;
  if (uint16_t status = data.Walk(dma, sqe, bytes, page_size); status != kSuccess) return status;
  const uint64_t offset = slba << ns.lba_shift();
  if (sqe.opcode == kNvmRead) return data.ReadNamespace(dma, ns, offset);
  if (uint16_t status = data.WriteNamespace(dma, ns, offset); status != kSuccess) return status;
  if (!write_cache_enabled || (sqe.cdw12 & kRwFua) != 0) return FlushStatus(ns);
  return kSuccess;
}

uint16_t NvmCommandSet::Flush(uint32_t nsid) const {
  if (nsid == 0xffffffff) {
    for (NvmeNamespace* ns : namespaces_) {
      if (uint16_t status = FlushStatus(*ns); status != kSuccess) return status;
    }
    return kSuccess;
  }
  NvmeNamespace* ns = Find(nsid);
  if (ns == nullptr) return kInvalidNamespace;
  return FlushStatus(*ns);
}

uint16_t NvmCommandSet::WriteZeroes(const SubmissionEntry& sqe, NvmeNamespace& ns,
                                    bool write_cache_enabled) const {
  const uint64_t slba = StartLba(sqe);
  const uint64_t count = BlockCount(sqe);
  if (!ns.InRange(slba, count)) return kLbaOutOfRange;
  absl::Status status = ns.WriteZeroes(slba, count);
  if (!status.ok()) {
    VFU_LOG_RATE_LIMITED(kWarning, "nvme: write zeroes on ", ns.path(), ": ", status.message());
    return kInternalError;
  }
  if (!write_cache_enabled || (sqe.cdw12 & kRwFua) != 0) return FlushStatus(ns);
  return kSuccess;
}

uint16_t NvmCommandSet::DatasetManagement(const SubmissionEntry& sqe, NvmeNamespace& ns,
                                          DeviceContext& dma, uint64_t page_size,
                                          GuestData& data) const {
  const uint32_t ranges = (sqe.cdw10 & 0xff) + 1;
  const uint64_t bytes = uint64_t{ranges} * kDsmRangeSize;
  if (uint16_t status = data.Walk(dma, sqe, bytes, page_size); status != kSuccess) return status;
  struct Range {
    uint32_t attributes;
    uint32_t length;  // in LBAs, not 0-based
    uint64_t slba;
  };
  static_assert(sizeof(Range) == kDsmRangeSize);
  Range list[kDsmMaxRanges];
  if (uint16_t status = data.CopyIn(dma, absl::MakeSpan(reinterpret_cast<uint8_t*>(list), bytes));
      status != kSuccess) {
    return status;
  }
  // Only deallocation does anything; the other attributes are hints.
  if ((sqe.cdw11 & kDsmDeallocate) == 0) return kSuccess;
  for (uint32_t i = 0; i < ranges; ++i) {
    if (!ns.InRange(list[i].slba, list[i].length)) return kLbaOutOfRange;
  }
  for (uint32_t i = 0; i < ranges; ++i) {
    if (list[i].length == 0) continue;
    absl::Status status = ns.Deallocate(list[i].slba, list[i].length);
    if (!status.ok()) {
      VFU_LOG_RATE_LIMITED(kWarning, "nvme: deallocate on ", ns.path(), ": ", status.message());
      return kInternalError;
    }
  }
  return kSuccess;
}

}  // namespace vfu::nvme
