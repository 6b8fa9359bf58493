// InterruptRouter: turns "the device raises its vector N" into the
// interrupt the guest enabled, MSI-X, MSI or INTx, without a lock.
//
//   InterruptRouter router(irqs);
//   router.UpdateFromConfig(config);   // after each config-space change
//   router.Raise(3);                   // any thread
//   router.SetIntxLevel(true);         // any thread (level-triggered INTx)
//
// Which interrupt a raise becomes, first match wins:
//   1. MSI-X, when the guest set the MSI-X Enable bit: vector N is MSI-X
//      entry N (OutOfRange beyond the table: refused, no folding).
//   2. MSI, when the guest set the MSI Enable bit: vector N is MSI vector
//      N if N < the Multiple Message Enable count, else N folded into that
//      count (N & (count - 1)): a function granted fewer messages may vary
//      only the low log2(count) bits of the message data (PCI 3.0 6.8.1.6),
//      so with one message every vector becomes vector 0.
//   3. Neither enable bit set: what the client set up with SET_IRQS alone
//      (the kernel's VFIO enables MSI/MSI-X on SET_IRQS; a client need not
//      write the enable bits too, QEMU does both): MSI-X if any MSI-X vector
//      has a trigger eventfd, else MSI (folded into the vectors it has) if
//      any MSI vector has one.
//   4. INTx, one line for every vector. Command.InterruptDisable holds it
//      pending (Status.Interrupt Status shows it) until the guest clears the
//      bit, as PCI does; it is held the same way while MSI or MSI-X is
//      enabled (by the enable bits or, as in 3., by eventfds alone), when
//      PCI forbids INTx.
// Per-vector masks and pending bits are the IrqController's (the MSI-X
// table's masks and PBA stay as they are).
//
// INTx follows the kernel's vfio-pci: each delivery masks the line until
// the client unmasks it (SET_IRQS ACTION_UNMASK on INTx, its end of
// interrupt); a raise meanwhile is pending and that unmask delivers it.
// Raise() on INTx is thus an edge: the line reads asserted from the raise
// until that unmask. SetIntxLevel() is the level-triggered alternative: the
// line stays asserted until the device lowers it, and each unmask while it
// is up delivers again (a level handler that did not clear the cause is
// interrupted again). A device may use both; lowering the level also drops
// a pending edge.
//
// Threads: UpdateFromConfig under the owner's config lock (one thread at a
// time); everything else from any thread, lock-free (atomics only).
#ifndef VFU_DEVICE_INTERRUPT_ROUTER_H_
#define VFU_DEVICE_INTERRUPT_ROUTER_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/pci/config_space.h"

namespace vfu {

class InterruptRouter {
 public:
  // What a raise becomes now.
  enum class Route {
    kNone,  // nothing the guest or the client enabled can carry it
    kIntx,
    kMsi,
    kMsix,
  };

  // `irqs` must outlive the router.
  explicit InterruptRouter(IrqController& irqs) : irqs_(irqs) {}

  InterruptRouter(const InterruptRouter&) = delete;
  InterruptRouter& operator=(const InterruptRouter&) = delete;

  // Reads the MSI-X / MSI enable bits, the MSI message count and
  // Command.InterruptDisable, and sets the INTx device mask from them and
  // from which indexes have eventfds. Call after every config-space change
  // and every SET_IRQS or client departure.
  void UpdateFromConfig(const pci::ConfigSpace& config);

  // Raises the device's vector `vector` through the current route. OK when
  // delivered, made pending (masked) or coalesced; FailedPrecondition when
  // the route's vector has no eventfd (or there is no route); OutOfRange
  // for an MSI-X vector beyond the table. Never allocates.
  absl::Status Raise(uint32_t vector) const;

  // Holds the INTx line asserted or not. FailedPrecondition if the device
  // has no INTx. The level is device state: it outlives clients.
  absl::Status SetIntxLevel(bool asserted);

  Route route() const;

  // Sets Status.Interrupt Status (bit 3 of offset 0x06) in `out`, config
  // bytes read at `offset`, from the INTx line's state.
  void OverlayInterruptStatus(uint64_t offset, absl::Span<uint8_t> out) const;

 private:
  // Bits of config_state_.
  static constexpr uint32_t kMsixEnabled = 1u << 0;
  static constexpr uint32_t kMsiEnabled = 1u << 1;
  static constexpr uint32_t kMsiCountShift = 8;  // MSI messages enabled, 1..32

  // Route and vector for `vector` in config state `state`.
  Route Resolve(uint32_t state, uint32_t vector, uint32_t& routed) const;

  IrqController& irqs_;
  std::atomic<uint32_t> config_state_{0};
};

}  // namespace vfu

#endif  // VFU_DEVICE_INTERRUPT_ROUTER_H_
