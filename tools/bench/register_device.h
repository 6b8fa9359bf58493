// The device of the connect and many-devices figures: 4 KiB of registers in
// BAR0, each read one memcpy, so that a figure measures vfu and not the
// device.
#ifndef VFU_TOOLS_BENCH_REGISTER_DEVICE_H_
#define VFU_TOOLS_BENCH_REGISTER_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/vfu.h"

namespace vfu::bench {

class RegisterDevice : public Device {
 public:
  static constexpr uint64_t kBarSize = 4096;

  RegionDescription DescribeRegion(uint32_t index) const override {
    if (index == 0) return {.size = kBarSize, .readable = true, .writable = true};
    return {};
  }

  absl::Status ReadRegion(uint32_t, uint64_t offset, absl::Span<uint8_t> out) override {
    std::memcpy(out.data(), registers_ + offset, out.size());
    reads_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status WriteRegion(uint32_t, uint64_t offset, absl::Span<const uint8_t> data) override {
    std::memcpy(registers_ + offset, data.data(), data.size());
    return absl::OkStatus();
  }

  // Reads served so far; any thread.
  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }

 private:
  // Hooks of one device never run concurrently (Device contract): no lock.
  uint8_t registers_[kBarSize] = {};
  std::atomic<uint64_t> reads_{0};
};

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_REGISTER_DEVICE_H_
