#include "vfu/device/interrupt_router.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <bit>
#include <optional>

#include "vfu/pci/capabilities.h"

namespace vfu {
namespace {

constexpr uint32_t kIntxIrq = VFIO_PCI_INTX_IRQ_INDEX;
constexpr uint32_t kMsiIrq = VFIO_PCI_MSI_IRQ_INDEX;
constexpr uint32_t kMsixIrq = VFIO_PCI_MSIX_IRQ_INDEX;

// Raise() must not allocate: statuses are built once.
absl::Status NoRouteError() {
  static const absl::Status* const kStatus =
      new absl::Status(absl::StatusCode::kFailedPrecondition,
                       "no interrupt enabled (no MSI-X, MSI or INTx eventfd)");
  return *kStatus;
}

absl::Status NoIntxError() {
  static const absl::Status* const kStatus =
      new absl::Status(absl::StatusCode::kFailedPrecondition, "the device has no INTx");
  return *kStatus;
}

// `vector` folded into `count` messages (a power of two for MSI's Multiple
// Message Enable; a device's own count is rounded down to one).
uint32_t Fold(uint32_t vector, uint32_t count) {
  if (vector < count) return vector;
  return vector & (std::bit_floor(count) - 1);
}

}  // namespace

void InterruptRouter::UpdateFromConfig(const pci::ConfigSpace& config) {
  uint32_t state = 0;
  const std::optional<pci::MsixState> msix = pci::ReadMsixState(config);
  if (msix && msix->enabled) state |= kMsixEnabled;
  const std::optional<pci::MsiState> msi = pci::ReadMsiState(config);
  if (msi && msi->enabled) {
    state |= kMsiEnabled;
    state |= msi->vectors_enabled << kMsiCountShift;
  }
  config_state_.store(state, std::memory_order_release);
  if (irqs_.vectors(kIntxIrq) != 0) {
    const bool intx_disabled = (config.command() & PCI_COMMAND_INTX_DISABLE) != 0;
    // PCI forbids INTx while MSI or MSI-X is enabled; the same holds for
    // a client that enabled them through SET_IRQS alone.
    const bool messages = (state & (kMsixEnabled | kMsiEnabled)) != 0 ||
                          irqs_.AnyEnabled(kMsixIrq) || irqs_.AnyEnabled(kMsiIrq);
    irqs_.SetDeviceMask(kIntxIrq, 0, intx_disabled || messages);
  }
}

InterruptRouter::Route InterruptRouter::Resolve(uint32_t state, uint32_t vector,
                                                uint32_t& routed) const {
  routed = vector;
  if (state & kMsixEnabled) return Route::kMsix;
  if (state & kMsiEnabled) {
    // The capability may offer more messages than the device declared.
    uint32_t count = std::min(state >> kMsiCountShift, irqs_.vectors(kMsiIrq));
    routed = Fold(vector, count == 0 ? 1 : count);
    return Route::kMsi;
  }
  if (irqs_.AnyEnabled(kMsixIrq)) return Route::kMsix;
  if (irqs_.AnyEnabled(kMsiIrq)) {
    routed = Fold(vector, irqs_.vectors(kMsiIrq));
    return Route::kMsi;
  }
  routed = 0;
  return irqs_.vectors(kIntxIrq) != 0 ? Route::kIntx : Route::kNone;
}

absl::Status InterruptRouter::Raise(uint32_t vector) const {
  uint32_t routed;
  switch (Resolve(config_state_.load(std::memory_order_acquire), vector, routed)) {
    case Route::kMsix:
      return irqs_.Trigger(kMsixIrq, routed);
    case Route::kMsi:
      return irqs_.Trigger(kMsiIrq, routed);
    case Route::kIntx:
      return irqs_.Trigger(kIntxIrq, 0);
    case Route::kNone:
      break;
  }
  return NoRouteError();
}

absl::Status InterruptRouter::SetIntxLevel(bool asserted) {
  if (irqs_.vectors(kIntxIrq) == 0) return NoIntxError();
  return irqs_.SetLevel(kIntxIrq, 0, asserted);
}

InterruptRouter::Route InterruptRouter::route() const {
  uint32_t routed;
  return Resolve(config_state_.load(std::memory_order_acquire), 0, routed);
}

void InterruptRouter::OverlayInterruptStatus(uint64_t offset, absl::Span<uint8_t> out) const {
  if (offset > PCI_STATUS || PCI_STATUS - offset >= out.size()) return;
  uint8_t& status_low = out[PCI_STATUS - offset];
  if (irqs_.IsAsserted(kIntxIrq, 0)) {
    status_low |= PCI_STATUS_INTERRUPT;
  } else {
    status_low &= static_cast<uint8_t>(~PCI_STATUS_INTERRUPT);
  }
}

}  // namespace vfu
