// ScratchpadDevice: the smallest device that exercises both directions of
// vfio-user. BAR0 is 4 KiB of memory the client reads and writes; writing
// the doorbell register makes the device copy bytes from client memory into
// BAR0 by DMA, from the device's own thread (QEMU serves DMA only when the
// vCPU that wrote the doorbell has its reply, see PROTOCOL.md section 12).
//
// BAR0 layout (little-endian registers at the top of the BAR):
//   0x000-0xfdf  scratch memory
//   0xfe0  u64   DMA source IOVA
//   0xfe8  u32   DMA length (bytes, copied to BAR0 offset 0)
//   0xfec  u32   DMA status: 0 idle, 1 busy, 2 done, 3 failed
//   0xff0  u32   doorbell: writing any value starts the copy
#ifndef VFU_DEVICES_SCRATCHPAD_SCRATCHPAD_DEVICE_H_
#define VFU_DEVICES_SCRATCHPAD_SCRATCHPAD_DEVICE_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/vfu.h"

namespace vfu::devices {

class ScratchpadDevice : public Device {
 public:
  static constexpr uint64_t kBarSize = 4096;
  static constexpr uint64_t kRegSource = 0xfe0;
  static constexpr uint64_t kRegLength = 0xfe8;
  static constexpr uint64_t kRegStatus = 0xfec;
  static constexpr uint64_t kRegDoorbell = 0xff0;
  static constexpr uint64_t kScratchSize = kRegSource;

  enum Status : uint32_t { kIdle = 0, kBusy = 1, kDone = 2, kFailed = 3 };

  ScratchpadDevice();
  ~ScratchpadDevice() override;

  RegionDescription DescribeRegion(uint32_t index) const override;
  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) override;
  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           absl::Span<const uint8_t> data) override;
  absl::Status Reset() override;
  void OnAttach(std::shared_ptr<DeviceContext> context) override;

  // Blocks until the DMA engine is idle (tests, demo).
  void WaitIdle() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void EngineLoop();

  mutable absl::Mutex mu_;
  std::vector<uint8_t> bar0_ ABSL_GUARDED_BY(mu_);
  bool job_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The attached client's memory (revoked once it leaves), or null.
  std::shared_ptr<DeviceContext> context_ ABSL_GUARDED_BY(mu_);
  std::thread engine_;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_SCRATCHPAD_SCRATCHPAD_DEVICE_H_
