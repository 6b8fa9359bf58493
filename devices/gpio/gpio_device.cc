#include "devices/gpio/gpio_device.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "devices/gpio/gpio_state.pb.h"
#include "devices/common/register_bytes.h"
#include "vfu/base/log.h"

namespace vfu::devices {
namespace {

constexpr uint32_t kLineMask = (1u << GpioDevice::kNumLines) - 1;

PciDeviceSpec GpioSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = GpioDevice::kVendorId,
                   .device_id = GpioDevice::kDeviceId,
                   .subsystem_vendor_id = GpioDevice::kVendorId,
                   .subsystem_id = GpioDevice::kDeviceId,
                   .class_code = GpioDevice::kClassCode,
                   .revision = GpioDevice::kRevision};
  spec.bars[0].size = GpioDevice::kBarSize;  // 32-bit memory, messages only
  spec.interrupts = {.intx = true, .msi_vectors = 1};
  spec.migration = MigrationSpec{.device_type = "vfu-gpio", .device_version = 1};
  return spec;
}

}  // namespace

GpioDevice::GpioDevice() : PciDevice(GpioSpec()) {}

absl::Status GpioDevice::SetInputLine(int line, bool level) {
  if (line < 0 || line >= kNumLines) {
    return absl::OutOfRangeError(absl::StrCat("GPIO line ", line, " does not exist (0-15)"));
  }
  const uint16_t bit = static_cast<uint16_t>(1u << line);
  absl::MutexLock lock(&mu_);
  const Levels before = LevelsLocked();
  outside_ = level ? (outside_ | bit) : (outside_ & ~bit);
  UpdateLocked(before);
  return absl::OkStatus();
}

uint16_t GpioDevice::OutputLevels() const {
  absl::MutexLock lock(&mu_);
  return regs_.output & regs_.direction;
}

uint16_t GpioDevice::InputLocked() const {
  return (regs_.control & kControlLoopback) != 0 ? regs_.output : outside_;
}

GpioDevice::Levels GpioDevice::LevelsLocked() const {
  return {.input = InputLocked(), .pending = PendingLocked()};
}

void GpioDevice::UpdateLocked(Levels before) {
  regs_.irq_status |= (before.input ^ InputLocked()) & regs_.irq_enable;
  SignalLocked(before.pending);
}

void GpioDevice::SignalLocked(uint16_t pending_before) {
  // Stopped by migration: nothing is raised; a line still pending
  // interrupts when the device runs again (OnMigrationStateChange).
  if (stopped_) return;
  const uint16_t pending = PendingLocked();
  // The interrupt is a level ("some enabled line is pending"). INTx carries
  // it as one; MSI sends a message on each newly pending line. The
  // framework picks between them and holds INTx while MSI is in use.
  absl::Status level = SetIntxLevel(pending != 0);
  if (!level.ok()) VFU_LOG(kWarning, "gpio: INTx level: ", level.ToString());
  if ((pending & ~pending_before) == 0) return;
  absl::Status raised = RaiseInterrupt(0);
  // FailedPrecondition / Unavailable: nobody listens (the driver may poll).
  if (!raised.ok() && !absl::IsFailedPrecondition(raised) && !absl::IsUnavailable(raised)) {
    VFU_LOG(kWarning, "gpio: raising the interrupt failed: ", raised.ToString());
  }
}

uint32_t GpioDevice::ReadRegisterLocked(uint64_t offset) const {
  switch (offset) {
    case kRegId:
      return kIdValue;
    case kRegInfo:
      return kInfoValue;
    case kRegInput:
      return InputLocked();
    case kRegOutput:
      return regs_.output;
    case kRegDirection:
      return regs_.direction;
    case kRegIrqEnable:
      return regs_.irq_enable;
    case kRegIrqStatus:
      return regs_.irq_status;
    case kRegControl:
      return regs_.control;
    default:
      return 0;  // reserved
  }
}

void GpioDevice::WriteRegisterLocked(uint64_t offset, uint32_t value, uint32_t mask) {
  auto merge = [value, mask](uint32_t old, uint32_t bits) {
    return ((old & ~mask) | (value & mask)) & bits;
  };
  const Levels before = LevelsLocked();
  switch (offset) {
    case kRegOutput:
      regs_.output = static_cast<uint16_t>(merge(regs_.output, kLineMask));
      break;
    case kRegDirection:
      regs_.direction = static_cast<uint16_t>(merge(regs_.direction, kLineMask));
      break;
    case kRegIrqEnable:
      regs_.irq_enable = static_cast<uint16_t>(merge(regs_.irq_enable, kLineMask));
      break;
    case kRegIrqStatus:
      regs_.irq_status &= static_cast<uint16_t>(~(value & mask));
      break;
    case kRegControl:
      regs_.control = merge(regs_.control, kControlLoopback);
      break;
    default:
      break;  // read-only or reserved: writes are dropped, as hardware does
  }
  // OUTPUT and CONTROL can change INPUT (loopback); IRQ_ENABLE can make a
  // line with a stale status bit pending.
  UpdateLocked(before);
}

absl::Status GpioDevice::OnRegionRead(uint32_t region, uint64_t offset,
                                     absl::Span<uint8_t> out) {
  absl::MutexLock lock(&mu_);
  for (const RegisterSlice& slice : RegisterSlices(offset, out.size())) {
    slice.Scatter(ReadRegisterLocked(slice.reg), out);
  }
  return absl::OkStatus();
}

absl::Status GpioDevice::OnRegionWrite(uint32_t region, uint64_t offset,
                                      absl::Span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  // Masked per register, so a byte write to OUTPUT leaves the other byte
  // alone and a byte of ones written to IRQ_STATUS clears only that byte's
  // lines.
  for (const RegisterSlice& slice : RegisterSlices(offset, data.size())) {
    WriteRegisterLocked(slice.reg, slice.Gather(data), slice.mask());
  }
  return absl::OkStatus();
}

absl::Status GpioDevice::OnReset() {
  absl::MutexLock lock(&mu_);
  const uint16_t pending_before = PendingLocked();
  regs_ = Registers();
  stopped_ = false;  // a reset ends any migration: the device runs
  SignalLocked(pending_before);
  return absl::OkStatus();
}

absl::Status GpioDevice::OnMigrationStateChange(MigrationState from, MigrationState to) {
  absl::MutexLock lock(&mu_);
  stopped_ = to != MigrationState::kRunning && to != MigrationState::kPreCopy;
  if (!stopped_) SignalLocked(/*pending_before=*/0);
  return absl::OkStatus();
}

absl::Status GpioDevice::SaveState(SavePhase phase, std::string& out) {
  if (phase == SavePhase::kPreCopy) return absl::OkStatus();  // 24 bytes: all at the end
  gpio::GpioState state;
  absl::MutexLock lock(&mu_);
  state.set_output(regs_.output);
  state.set_direction(regs_.direction);
  state.set_irq_enable(regs_.irq_enable);
  state.set_irq_status(regs_.irq_status);
  state.set_control(regs_.control);
  state.set_outside(outside_);
  if (!state.SerializeToString(&out)) return absl::InternalError("gpio: state not serialized");
  return absl::OkStatus();
}

absl::Status GpioDevice::LoadState(absl::Span<const std::string> pieces) {
  gpio::GpioState state;
  if (pieces.size() != 1 || !state.ParseFromString(pieces.front())) {
    return absl::InvalidArgumentError("gpio: migration state is not one GpioState");
  }
  constexpr uint32_t kLines = (1u << kNumLines) - 1;
  for (uint32_t value : {state.output(), state.direction(), state.irq_enable(),
                         state.irq_status(), state.outside()}) {
    if ((value & ~kLines) != 0) {
      return absl::InvalidArgumentError("gpio: migration state has bits beyond line 15");
    }
  }
  if ((state.control() & ~kControlLoopback) != 0) {
    return absl::InvalidArgumentError("gpio: migration state has unknown CONTROL bits");
  }
  absl::MutexLock lock(&mu_);
  regs_ = Registers{.output = static_cast<uint16_t>(state.output()),
                    .direction = static_cast<uint16_t>(state.direction()),
                    .irq_enable = static_cast<uint16_t>(state.irq_enable()),
                    .irq_status = static_cast<uint16_t>(state.irq_status()),
                    .control = state.control()};
  outside_ = static_cast<uint16_t>(state.outside());
  return absl::OkStatus();
}

}  // namespace vfu::devices
