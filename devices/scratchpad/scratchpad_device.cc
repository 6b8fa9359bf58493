#include "devices/scratchpad/scratchpad_device.h"

#include <cstring>

namespace vfu::devices {
namespace {

// Config space (region 7) is a 256-byte block of zeros for this device;
// the PCI config model arrives with the device-model work.
constexpr uint32_t kConfigRegion = 7;
constexpr uint64_t kConfigSize = 256;

template <typename T>
T LoadRegister(const std::vector<uint8_t>& bar, uint64_t offset) {
  T value;
  std::memcpy(&value, bar.data() + offset, sizeof value);
  return value;
}

template <typename T>
void StoreRegister(std::vector<uint8_t>& bar, uint64_t offset, T value) {
  std::memcpy(bar.data() + offset, &value, sizeof value);
}

}  // namespace

ScratchpadDevice::ScratchpadDevice() : bar0_(kBarSize), engine_([this] { EngineLoop(); }) {}

ScratchpadDevice::~ScratchpadDevice() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  engine_.join();
}

RegionDescription ScratchpadDevice::DescribeRegion(uint32_t index) const {
  if (index == 0) return {.size = kBarSize, .readable = true, .writable = true};
  if (index == kConfigRegion) return {.size = kConfigSize, .readable = true};
  return {};
}

absl::Status ScratchpadDevice::ReadRegion(uint32_t index, uint64_t offset,
                                          absl::Span<uint8_t> out) {
  if (index == kConfigRegion) {
    std::memset(out.data(), 0, out.size());
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  std::memcpy(out.data(), bar0_.data() + offset, out.size());
  return absl::OkStatus();
}

absl::Status ScratchpadDevice::WriteRegion(uint32_t index, uint64_t offset,
                                           absl::Span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  const uint64_t end = offset + data.size();
  if (offset < kRegStatus + 4 && end > kRegStatus) {
    return absl::InvalidArgumentError("the DMA status register is read-only");
  }
  std::memcpy(bar0_.data() + offset, data.data(), data.size());
  if (offset <= kRegDoorbell && end > kRegDoorbell) {
    // Ring: the engine thread does the copy, so this reply is not held up
    // by the DMA it starts.
    StoreRegister<uint32_t>(bar0_, kRegStatus, kBusy);
    job_pending_ = true;
  }
  return absl::OkStatus();
}

absl::Status ScratchpadDevice::Reset() {
  WaitIdle();
  absl::MutexLock lock(&mu_);
  std::fill(bar0_.begin(), bar0_.end(), 0);
  return absl::OkStatus();
}

void ScratchpadDevice::OnAttach(std::shared_ptr<DeviceContext> context) {
  absl::MutexLock lock(&mu_);
  context_ = std::move(context);
}

void ScratchpadDevice::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* pending) { return !*pending; }, &job_pending_));
}

void ScratchpadDevice::EngineLoop() {
  while (true) {
    uint64_t source;
    uint32_t length;
    std::shared_ptr<DeviceContext> context;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ScratchpadDevice* d) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return d->job_pending_ || d->stopping_;
          },
          this));
      if (stopping_) return;
      source = LoadRegister<uint64_t>(bar0_, kRegSource);
      length = LoadRegister<uint32_t>(bar0_, kRegLength);
      context = context_;
    }
    std::vector<uint8_t> buffer(std::min<uint64_t>(length, kScratchSize));
    absl::Status status = context == nullptr
                              ? absl::UnavailableError("no client")
                              : context->DmaRead(source, absl::MakeSpan(buffer));
    absl::MutexLock lock(&mu_);
    if (status.ok() && length <= kScratchSize) {
      std::memcpy(bar0_.data(), buffer.data(), buffer.size());
      StoreRegister<uint32_t>(bar0_, kRegStatus, kDone);
    } else {
      StoreRegister<uint32_t>(bar0_, kRegStatus, kFailed);
    }
    job_pending_ = false;
  }
}

}  // namespace vfu::devices
