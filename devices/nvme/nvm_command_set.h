// NvmCommandSet: what the NVM I/O commands do. Read, Write, Flush, Write
// Zeroes and Dataset Management (deallocate) on file-backed namespaces;
// every other opcode is kInvalidOpcode.
//
// Checks, in order: opcode, NSID (kInvalidNamespace for 0, > NN or, except
// for Flush's broadcast FFFFFFFFh, anything inactive), the LBA range
// (kLbaOutOfRange, overflow included), the transfer size (kInvalidField past
// MDTS), then the data pointer (PRP rules, guest_data.h). No byte outside
// the checked LBA range of the namespace file is ever written.
//
// Durability: with the volatile write cache enabled (the default, Set
// Features 06h), a completed write is in the page cache and Flush makes it
// durable (fdatasync); with it disabled, and for FUA writes, a write is
// synced before it completes.
//
// Thread-safe (the namespaces are): each serving thread passes its own
// GuestData.
#ifndef VFU_DEVICES_NVME_NVM_COMMAND_SET_H_
#define VFU_DEVICES_NVME_NVM_COMMAND_SET_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "devices/nvme/guest_data.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_namespace.h"
#include "vfu/device/device.h"

namespace vfu::nvme {

class NvmCommandSet {
 public:
  // Namespace n (1-based NSID) is namespaces[n - 1]; they outlive this.
  explicit NvmCommandSet(std::vector<NvmeNamespace*> namespaces)
      : namespaces_(std::move(namespaces)) {}

  // Runs `sqe`; returns its status (kSuccess or an error status).
  uint16_t Execute(const SubmissionEntry& sqe, DeviceContext& dma, uint64_t page_size,
                   bool write_cache_enabled, GuestData& data) const;

 private:
  NvmeNamespace* Find(uint32_t nsid) const {
    return nsid >= 1 && nsid <= namespaces_.size() ? namespaces_[nsid - 1] : nullptr;
  }
  uint16_t ReadWrite(const SubmissionEntry& sqe, NvmeNamespace& ns, DeviceContext& dma,
                     uint64_t page_size, bool write_cache_enabled, GuestData& data) const;
  uint16_t Flush(uint32_t nsid) const;
  uint16_t WriteZeroes(const SubmissionEntry& sqe, NvmeNamespace& ns,
                       bool write_cache_enabled) const;
  uint16_t DatasetManagement(const SubmissionEntry& sqe, NvmeNamespace& ns, DeviceContext& dma,
                             uint64_t page_size, GuestData& data) const;

  std::vector<NvmeNamespace*> namespaces_;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVM_COMMAND_SET_H_
