// MemoryDevice: the smallest useful device for runtime tests. BAR0 is a
// plain byte array the client reads and writes; config space (region 7) is
// read-only zeros. Optional hooks let a test run code inside a region
// access (e.g. issue DMA while the client has more commands queued).
#ifndef VFU_TESTING_MEMORY_DEVICE_H_
#define VFU_TESTING_MEMORY_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/device/device.h"

namespace vfu::testing {

class MemoryDevice : public Device {
 public:
  explicit MemoryDevice(uint64_t bar0_size = 4096) : bar0_size_(bar0_size), bar0_(bar0_size) {}

  RegionDescription DescribeRegion(uint32_t index) const override {
    if (index == 0) return {.size = bar0_size_, .readable = true, .writable = true};
    if (index == wire::kPciNumRegions - 2) return {.size = 256, .readable = true};
    return {};
  }

  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) override {
    if (read_hook_) read_hook_(index, offset);
    absl::MutexLock lock(&mu_);
    if (index == 0) {
      std::memcpy(out.data(), bar0_.data() + offset, out.size());
    } else {
      std::memset(out.data(), 0, out.size());
    }
    reads_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           absl::Span<const uint8_t> data) override {
    if (write_hook_) write_hook_(index, offset);
    absl::MutexLock lock(&mu_);
    std::memcpy(bar0_.data() + offset, data.data(), data.size());
    writes_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status Reset() override {
    absl::MutexLock lock(&mu_);
    std::fill(bar0_.begin(), bar0_.end(), 0);
    resets_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  void OnAttach(std::shared_ptr<DeviceContext> context) override {
    {
      absl::MutexLock lock(&mu_);
      context_ = std::move(context);
    }
    attaches_.fetch_add(1);
  }
  void OnDetach() override { detaches_.fetch_add(1); }

  // Runs inside ReadRegion/WriteRegion, before the access, on the worker.
  // Set before the device is served.
  void set_read_hook(std::function<void(uint32_t, uint64_t)> hook) { read_hook_ = std::move(hook); }
  void set_write_hook(std::function<void(uint32_t, uint64_t)> hook) {
    write_hook_ = std::move(hook);
  }

  // The context of the last client that attached (revoked once it left),
  // or null before the first.
  std::shared_ptr<DeviceContext> context() const {
    absl::MutexLock lock(&mu_);
    return context_;
  }
  std::vector<uint8_t> bar0() const {
    absl::MutexLock lock(&mu_);
    return bar0_;
  }
  int reads() const { return reads_.load(); }
  int writes() const { return writes_.load(); }
  int resets() const { return resets_.load(); }
  int attaches() const { return attaches_.load(); }
  int detaches() const { return detaches_.load(); }

 private:
  mutable absl::Mutex mu_;
  const uint64_t bar0_size_;  // fixed: read without the lock
  std::vector<uint8_t> bar0_ ABSL_GUARDED_BY(mu_);
  std::function<void(uint32_t, uint64_t)> read_hook_;
  std::function<void(uint32_t, uint64_t)> write_hook_;
  std::shared_ptr<DeviceContext> context_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> reads_{0}, writes_{0}, resets_{0}, attaches_{0}, detaches_{0};
};

}  // namespace vfu::testing

#endif  // VFU_TESTING_MEMORY_DEVICE_H_
