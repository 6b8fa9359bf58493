// NvmeNamespace: one namespace backed by a raw image file. The namespace's
// size is the file's size in whole LBAs (a trailing partial block is never
// touched); nothing is ever written past it.
//
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<NvmeNamespace> ns, NvmeNamespace::Open("disk.img", 512));
//   ns->ReadV(iov, 1, ns->ByteOffset(slba));
//
// Thread-safe: every call is a positioned syscall on the file (preadv,
// pwritev, fallocate, fdatasync); the counters are atomics.
#ifndef VFU_DEVICES_NVME_NVME_NAMESPACE_H_
#define VFU_DEVICES_NVME_NVME_NAMESPACE_H_

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/base/unique_fd.h"

namespace vfu::nvme {

class NvmeNamespace {
 public:
  // Opens `path` read-write. InvalidArgument unless `lba_size` is 512 or
  // 4096 and the file holds at least one LBA.
  static absl::StatusOr<std::unique_ptr<NvmeNamespace>> Open(const std::string& path,
                                                             uint32_t lba_size);

  uint32_t lba_size() const { return lba_size_; }
  uint32_t lba_shift() const { return lba_shift_; }
  uint64_t num_lbas() const { return num_lbas_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

  // Whether [slba, slba + count) lies in the namespace (no overflow).
  bool InRange(uint64_t slba, uint64_t count) const {
    return count <= num_lbas_ && slba <= num_lbas_ - count;
  }

  // Whole transfers at byte `offset` (short reads and writes are resumed;
  // a read past the end of the file, which cannot happen for an in-range
  // LBA, is an error). Errno statuses on failure.
  absl::Status ReadV(const struct iovec* iov, int count, uint64_t offset);
  absl::Status WriteV(const struct iovec* iov, int count, uint64_t offset);
  // Zeroes / deallocates (punches a hole, which reads back as zeros) LBAs.
  absl::Status WriteZeroes(uint64_t slba, uint64_t count);
  absl::Status Deallocate(uint64_t slba, uint64_t count);
  // Makes completed writes durable (fdatasync).
  absl::Status Flush();

  // SMART counters; ReadV/WriteV count themselves, zero-copy paths that
  // use fd() directly call these.
  void CountRead(uint64_t bytes) {
    bytes_read_.fetch_add(bytes, std::memory_order_relaxed);
    read_commands_.fetch_add(1, std::memory_order_relaxed);
  }
  void CountWrite(uint64_t bytes) {
    bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
    write_commands_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  uint64_t bytes_written() const { return bytes_written_.load(std::memory_order_relaxed); }
  uint64_t read_commands() const { return read_commands_.load(std::memory_order_relaxed); }
  uint64_t write_commands() const { return write_commands_.load(std::memory_order_relaxed); }

 private:
  NvmeNamespace(std::string path, UniqueFd fd, uint32_t lba_size, uint64_t num_lbas);

  std::string path_;
  UniqueFd fd_;
  uint32_t lba_size_;
  uint32_t lba_shift_;
  uint64_t num_lbas_;
  std::atomic<uint64_t> bytes_read_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> read_commands_{0};
  std::atomic<uint64_t> write_commands_{0};
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_NAMESPACE_H_
