// GpioDevice: a 16-line general-purpose IO controller on the PCI device
// model. The framework provides config space, MSI and the interrupt plumbing;
// this class is only the register file and the interrupt rule.
//
// Identity: vendor kVendorId (a placeholder, see below), device 0x0001, the
// same pair as subsystem IDs, class 0x088000 (system peripheral, other),
// revision 1. Conventional PCI (256-byte config space) with power
// management and MSI capabilities.
// Interrupts: INTx (pin A) and MSI with one vector.
//
// BAR0: 4 KiB of 32-bit memory space, served by messages (not mappable).
// Registers are 32 bits, little-endian; bit n is line n, bits 31:16 read 0
// and ignore writes. Any access size and alignment works, byte by byte; the
// rest of the BAR reads 0 and ignores writes.
//
//   off  name        access  reset   meaning
//   0x00 ID          RO      0x4f495047  "GPIO" in ASCII, lowest byte first
//   0x04 INFO        RO      0x0110  bits 7:0 lines (16), bits 15:8 register
//                                    file revision (1)
//   0x08 INPUT       RO      -       the line levels: what the outside world
//                                    drives, or OUTPUT in loopback mode
//   0x0c OUTPUT      RW      0       levels the device drives on output lines
//   0x10 DIRECTION   RW      0       1 = output (driven by the device),
//                                    0 = input
//   0x14 IRQ_ENABLE  RW      0       1 = a change of the line's INPUT bit
//                                    (either edge) is an interrupt event
//   0x18 IRQ_STATUS  RW1C    0       set by an event on an enabled line;
//                                    writing 1 clears
//   0x1c CONTROL     RW      0       bit 0 LOOPBACK: INPUT reads OUTPUT, as
//                                    if each output fed its own line's input
//                                    (whatever DIRECTION says); the outside
//                                    levels are kept and return when it is
//                                    cleared. Lets a client exercise inputs
//                                    and interrupts through vfio-user alone
//
// Interrupts. The device interrupts when a line becomes pending, pending
// meaning IRQ_STATUS & IRQ_ENABLE: on an input event, or when IRQ_ENABLE is
// set for a line whose status bit is still set. Through PciDevice's
// interrupt routing (interrupt_router.h) that is MSI vector 0 when MSI is
// in use, INTx otherwise. INTx is level-triggered (SetIntxLevel): while a
// line is pending it is delivered again wherever it could have been missed:
// at the client's unmask (SET_IRQS ACTION_UNMASK; INTx masks itself on
// each delivery, as VFIO's does), when it installs its eventfd, or when MSI
// is torn down.
//
// Migration (device type "vfu-gpio", version 1): the registers and the
// outside levels travel as a GpioState (gpio_state.proto). While the device
// is stopped (STOP, STOP_COPY, RESUMING) input events still set IRQ_STATUS
// but raise nothing; a line pending when it runs again interrupts then, as
// a level-triggered line would.
//
// Reset (DEVICE_RESET) restores the reset values above; INPUT keeps showing
// the outside levels, which reset does not change. State survives clients.
//
// Threads: the region and interrupt hooks run on the server's workers; the
// outside-world calls (SetInputLine, OutputLevels) come from any thread.
// One mutex guards the registers; interrupts are raised under it, which is
// safe because raising is lock-free and calls nothing back.
#ifndef VFU_DEVICES_GPIO_GPIO_DEVICE_H_
#define VFU_DEVICES_GPIO_GPIO_DEVICE_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vfu/device/pci_device.h"
#include "vfu/vfu.h"

namespace vfu::devices {

class GpioDevice : public PciDevice {
 public:
  static constexpr int kNumLines = 16;

  // Placeholder: this project owns no PCI vendor ID. A product registers its
  // own with the PCI-SIG and puts it here.
  static constexpr uint16_t kVendorId = 0xf00d;
  static constexpr uint16_t kDeviceId = 0x0001;
  static constexpr uint32_t kClassCode = 0x088000;
  static constexpr uint8_t kRevision = 1;

  static constexpr uint64_t kBarSize = 4096;
  static constexpr uint64_t kRegId = 0x00;
  static constexpr uint64_t kRegInfo = 0x04;
  static constexpr uint64_t kRegInput = 0x08;
  static constexpr uint64_t kRegOutput = 0x0c;
  static constexpr uint64_t kRegDirection = 0x10;
  static constexpr uint64_t kRegIrqEnable = 0x14;
  static constexpr uint64_t kRegIrqStatus = 0x18;
  static constexpr uint64_t kRegControl = 0x1c;

  static constexpr uint32_t kIdValue = 0x4f495047;
  static constexpr uint32_t kRegisterRevision = 1;
  static constexpr uint32_t kInfoValue = kNumLines | (kRegisterRevision << 8);
  static constexpr uint32_t kControlLoopback = 1u << 0;

  GpioDevice();

  // The outside world drives line `line` (0-15) to `level`. An event on the
  // line if that changes INPUT (not in loopback mode). OutOfRange for a
  // line that does not exist. Any thread.
  absl::Status SetInputLine(int line, bool level) ABSL_LOCKS_EXCLUDED(mu_);

  // What the device drives: OUTPUT on the lines DIRECTION makes outputs,
  // 0 elsewhere. Any thread.
  uint16_t OutputLevels() const ABSL_LOCKS_EXCLUDED(mu_);

  // PciDevice hooks.
  absl::Status OnRegionRead(uint32_t region, uint64_t offset, absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnReset() override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnMigrationStateChange(MigrationState from, MigrationState to) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SaveState(SavePhase phase, std::string& out) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status LoadState(absl::Span<const std::string> pieces) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The writable state, all at its reset value when default-constructed.
  struct Registers {
    uint16_t output = 0;
    uint16_t direction = 0;
    uint16_t irq_enable = 0;
    uint16_t irq_status = 0;
    uint32_t control = 0;
  };

  uint32_t ReadRegisterLocked(uint64_t offset) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores the bits of `value` selected by `mask` (the bytes the access
  // covered) into the register at `offset`.
  void WriteRegisterLocked(uint64_t offset, uint32_t value, uint32_t mask)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint16_t InputLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint16_t PendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return regs_.irq_status & regs_.irq_enable;
  }
  // What an interrupt decision compares: INPUT and the pending lines.
  struct Levels {
    uint16_t input;
    uint16_t pending;
  };
  Levels LevelsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After any change of the state: INPUT changes on enabled lines since
  // `before` become status bits, and a line that became pending raises an
  // interrupt.
  void UpdateLocked(Levels before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings the interrupt up to date after the pending lines were
  // `pending_before`: the INTx level, and a message per new pending line.
  void SignalLocked(uint16_t pending_before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Registers regs_ ABSL_GUARDED_BY(mu_);
  // Levels the outside world drives (SetInputLine).
  uint16_t outside_ ABSL_GUARDED_BY(mu_) = 0;
  // Migration stopped the device: no interrupt may be raised.
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_GPIO_GPIO_DEVICE_H_
