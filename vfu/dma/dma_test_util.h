// Test helpers for vfu/dma: client memory in a memfd, DMA_MAP / DMA_UNMAP
// requests, and a recording MessageDmaPath.
#ifndef VFU_DMA_DMA_TEST_UTIL_H_
#define VFU_DMA_DMA_TEST_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vfu/base/check.h"
#include "vfu/base/unique_fd.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"

namespace vfu::testing {

inline constexpr uint32_t kRead = wire::kDmaMapFlagRead;
inline constexpr uint32_t kWrite = wire::kDmaMapFlagWrite;
inline constexpr uint32_t kReadWrite = kRead | kWrite;

// Guest RAM the way a VMM shares it: a memfd, plus the client's own view of
// it (a separate mapping of the same pages).
class ClientMemory {
 public:
  explicit ClientMemory(size_t size) : size_(size) {
    fd_.reset(::memfd_create("vfu-dma-test", MFD_CLOEXEC));
    VFU_CHECK(fd_.valid(), "memfd_create failed");
    VFU_CHECK(::ftruncate(fd_.get(), static_cast<off_t>(size)) == 0, "ftruncate failed");
    void* view = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    VFU_CHECK(view != MAP_FAILED, "mmap failed");
    view_ = static_cast<uint8_t*>(view);
  }
  ~ClientMemory() { ::munmap(view_, size_); }
  ClientMemory(const ClientMemory&) = delete;
  ClientMemory& operator=(const ClientMemory&) = delete;

  // A descriptor to send with DMA_MAP (the server takes ownership).
  UniqueFd Fd() const {
    UniqueFd fd = DuplicateFd(fd_.get());
    VFU_CHECK(fd.valid(), "dup failed");
    return fd;
  }
  int raw_fd() const { return fd_.get(); }
  // The client's view: byte `offset` of the file.
  uint8_t* at(uint64_t offset) const { return view_ + offset; }
  size_t size() const { return size_; }
  // What a hostile client does: shrinks the file under every mapping of it.
  // Any access past `new_size`, even the client's own view, then raises
  // SIGBUS.
  void Shrink(size_t new_size) {
    VFU_CHECK(::ftruncate(fd_.get(), static_cast<off_t>(new_size)) == 0, "ftruncate failed");
  }

 private:
  size_t size_;
  UniqueFd fd_;
  uint8_t* view_ = nullptr;
};

inline wire::DmaMapRequest MapRequest(uint64_t iova, uint64_t size, uint32_t flags,
                                      uint64_t offset = 0) {
  return wire::DmaMapRequest{.flags = flags, .offset = offset, .addr = iova, .size = size};
}

inline wire::DmaUnmapRequest UnmapRequest(uint64_t iova, uint64_t size) {
  wire::DmaUnmapRequest request;
  request.addr = iova;
  request.size = size;
  return request;
}

inline wire::DmaUnmapRequest UnmapAllRequest() {
  wire::DmaUnmapRequest request;
  request.flags = wire::kDmaUnmapFlagAll;
  return request;
}

// Serves DMA_READ / DMA_WRITE from a buffer standing for fd-less client
// memory at [base, base + size), and records every call. Thread-safe.
class FakeMessageDmaPath : public MessageDmaPath {
 public:
  struct Call {
    bool write;
    uint64_t iova;
    uint64_t length;
    friend bool operator==(const Call&, const Call&) = default;
  };

  FakeMessageDmaPath(uint64_t base, size_t size) : base_(base), memory_(size) {}

  absl::Status Read(uint64_t iova, absl::Span<uint8_t> out) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back({false, iova, out.size()});
    if (!fail_.ok()) return fail_;
    VFU_CHECK(iova >= base_ && iova - base_ + out.size() <= memory_.size(), "read outside");
    std::memcpy(out.data(), memory_.data() + (iova - base_), out.size());
    return absl::OkStatus();
  }
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back({true, iova, data.size()});
    if (!fail_.ok()) return fail_;
    VFU_CHECK(iova >= base_ && iova - base_ + data.size() <= memory_.size(), "write outside");
    std::memcpy(memory_.data() + (iova - base_), data.data(), data.size());
    return absl::OkStatus();
  }

  // Every later call fails with `status` (after being recorded).
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  std::vector<Call> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // The fake client memory at `iova`.
  std::vector<uint8_t> Bytes(uint64_t iova, size_t n) const {
    absl::MutexLock lock(&mu_);
    return std::vector<uint8_t>(memory_.begin() + (iova - base_),
                                memory_.begin() + (iova - base_ + n));
  }
  void SetBytes(uint64_t iova, absl::Span<const uint8_t> data) {
    absl::MutexLock lock(&mu_);
    std::memcpy(memory_.data() + (iova - base_), data.data(), data.size());
  }

 private:
  const uint64_t base_;
  mutable absl::Mutex mu_;
  std::vector<uint8_t> memory_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu::testing

#endif  // VFU_DMA_DMA_TEST_UTIL_H_
