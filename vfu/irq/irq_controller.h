// IrqController: the interrupt state of one device, as DEVICE_SET_IRQS
// shapes it and as the device model raises interrupts.
//
//   IrqController irqs({1, 0, 16, 1, 1});          // INTx, MSI, MSI-X, ERR, REQ
//   irqs.set_listener(...);
//   irqs.SetIrqs(request, fds);                    // command strand
//   irqs.Trigger(VFIO_PCI_MSIX_IRQ_INDEX, 3);      // any thread
//
// Per vector it keeps:
//  - a trigger eventfd (ACTION_TRIGGER|DATA_EVENTFD): "enabled" means the
//    vector has one, and raising the vector writes 1 to it;
//  - two notifier eventfds (ACTION_MASK / ACTION_UNMASK with DATA_EVENTFD),
//    written when the device model masks / unmasks the vector. That is
//    PROTOCOL.md 4.7's reading; kernel VFIO uses these for the opposite
//    direction (the user signals them to mask/unmask);
//  - two masks: the VFIO mask (ACTION_MASK / ACTION_UNMASK) and the device
//    mask (the device model's own: MSI-X entry or function mask, MSI
//    per-vector mask, INTx disable). A vector is delivered only when both
//    are clear;
//  - a pending bit: raised while masked, delivered once when the last mask
//    clears (what the MSI-X PBA shows);
//  - a level (SetLevel), for a line the device holds asserted: delivered
//    when it rises and again at every unmask while it stays up;
//  - for an auto-masking vector (INTx when constructed so, as VFIO's INTx
//    is): every delivery also sets the VFIO mask, so the next raise stays
//    pending until the client's ACTION_UNMASK (its end-of-interrupt), which
//    delivers it, masking again. "In service" marks such a delivery until
//    that unmask; IsAsserted() is what PCI's Interrupt Status bit shows.
//
// The eventfds are the client's: it holds the same open file description
// and may fill a counter, or clear the O_NONBLOCK that SetIrqs sets, at any
// moment. A raise that finds the counter full (2^64 - 2) is coalesced
// (counted so, not as raised) and reported OK: a full counter means the client has a wake-up it has not
// read yet, which covers this raise too, as a second MSI of a vector whose
// first is still pending carries no extra information. A raise never waits
// on the client: EAGAIN on the non-blocking fd, or, if the client made it
// blocking again, a write cut short by the guarded-write watchdog
// (vfu/base/guarded_write.h) after its stall bound (20 ms by default),
// both count as coalesced. The same holds for the MASK / UNMASK notifiers.
// While the counter has room every raise adds exactly 1, so a client that
// drains concurrently loses no wake-up.
//
// Threads: SetIrqs, ReleaseClientResources and set_listener from one thread
// at a time (the device's command strand); the listener runs there.
// Trigger, SetDeviceMask and the Is* queries from any thread, concurrently
// with everything, lock-free: they never allocate (after a thread's first
// raise) or wait for the strand, and block on a client's eventfd for at
// most about 1.5 stall bounds. SetIrqs may wait, as long at most, for a
// Trigger that is still writing to an eventfd it is about to close.
//
// Memory ordering: masks and pending bit share one atomic word per vector,
// changed only by compare-and-swap, so "raise while masked" and "clear the
// last mask" are ordered against each other: a raise is delivered at once,
// or becomes pending and is delivered by exactly one unmask. Eventfds live
// in EventfdSlot (eventfd_slot.h), which keeps a closed fd number from
// being written to.
#ifndef VFU_IRQ_IRQ_CONTROLLER_H_
#define VFU_IRQ_IRQ_CONTROLLER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "vfu/base/unique_fd.h"
#include "vfu/irq/eventfd_slot.h"
#include "vfu/wire/irq.h"

namespace vfu {

class IrqController {
 public:
  static constexpr uint32_t kNumIndexes = 5;  // VFIO_PCI_NUM_IRQS

  // Vectors per VFIO IRQ index (INTx, MSI, MSI-X, ERR, REQ); 0 = not
  // supported. ERR and REQ have at most 1 (VFU_CHECKed). `auto_mask_intx`:
  // INTx masks itself on every delivery, as the kernel's vfio-pci does.
  explicit IrqController(std::array<uint32_t, kNumIndexes> vectors, bool auto_mask_intx = false);
  // Closes every eventfd. No thread may be inside Trigger or SetDeviceMask.
  ~IrqController();

  IrqController(const IrqController&) = delete;
  IrqController& operator=(const IrqController&) = delete;

  // The vector count of `index`; 0 for an unsupported or unknown index.
  uint32_t vectors(uint32_t index) const;

  // DEVICE_SET_IRQS on a request DecodeSetIrqsRequest() accepted, with the
  // fds that came with it. `fds` is taken: on return every fd is either
  // installed or closed, and `fds` is empty.
  //
  // Every eventfd installed is made non-blocking (O_NONBLOCK).
  //
  //   TRIGGER + EVENTFD, count fds   install trigger eventfds for
  //                                  [start, start + count), closing any
  //                                  they replace (vectors become enabled)
  //   TRIGGER + EVENTFD, 0 fds       de-assign them (disabled; pending
  //                                  bits cleared: nowhere to deliver)
  //   TRIGGER + NONE, count 0        disable the whole index: every eventfd
  //                                  of it closed, VFIO masks and pending
  //                                  bits cleared; a no-op on an index
  //                                  with no vectors
  //   TRIGGER + NONE / BOOL          loopback: raise the vectors (BOOL: those
  //                                  whose byte is non-zero) as Trigger()
  //                                  does; vectors without an eventfd are
  //                                  skipped, as VFIO skips them
  //   MASK / UNMASK + NONE / BOOL    set / clear the VFIO mask; clearing
  //                                  delivers a pending interrupt
  //   MASK / UNMASK + EVENTFD        install / de-assign the notifiers
  //
  // Errors, all EINVAL (wire::WireError) and with nothing changed: anything
  // of PROTOCOL.md row 22 (the range against this index's vector count via
  // wire::CheckSetIrqsRange; the structural rules the decoder enforces are
  // checked again where this class relies on them), an fd that is not an
  // eventfd, and a loopback on an index with no eventfd at all (VFIO:
  // "index not enabled").
  absl::Status SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd>& fds);

  // Raises a vector. If it is unmasked, writes 1 to its eventfd (a full
  // counter: coalesced, see above); if masked, sets its pending bit
  // (several raises while masked coalesce into one). OK in all these cases. FailedPrecondition if the vector has no eventfd (not
  // enabled: nothing is recorded); InvalidArgument for an unknown index,
  // OutOfRange for a vector the index does not have; Internal if the
  // eventfd write fails. Any thread; no lock, and no allocation (the error
  // statuses are built once, on first use).
  absl::Status Trigger(uint32_t index, uint32_t vector);

  // Holds the vector's line asserted or not (level-triggered interrupts).
  // Rising: delivered if unmasked and enabled, as a raise is (an
  // auto-masking vector masks itself). While it stays up every unmask
  // delivers it again. Falling: drops a pending raise and ends the
  // in-service period (the line is low, there is nothing to handle). The
  // level is device state: it survives SetIrqs and the client's departure,
  // and a trigger eventfd installed while it is up fires at once. Errors
  // as Trigger for an unknown index or vector. Any thread; lock-free.
  absl::Status SetLevel(uint32_t index, uint32_t vector, bool asserted);

  // The device model's own mask of a vector. Clearing it delivers a
  // pending interrupt (if the VFIO mask is clear too). A change is
  // announced on the vector's MASK / UNMASK notifier eventfd. Unknown
  // index or vector: ignored (logged). Any thread; lock-free.
  void SetDeviceMask(uint32_t index, uint32_t vector, bool masked);

  // Snapshots; false for an unknown index or vector. Any thread.
  bool IsEnabled(uint32_t index, uint32_t vector) const;  // has a trigger eventfd
  bool IsMasked(uint32_t index, uint32_t vector) const;   // VFIO or device mask
  bool IsPending(uint32_t index, uint32_t vector) const;  // raised while masked
  // Pending, held up by SetLevel, or delivered and not yet unmasked
  // (auto-masking vectors): what PCI's Interrupt Status bit means for INTx.
  bool IsAsserted(uint32_t index, uint32_t vector) const;
  // Whether any vector of `index` has a trigger eventfd. Lock-free.
  bool AnyEnabled(uint32_t index) const;

  // Interrupt statistics since construction. `raised`: signals written to
  // a trigger eventfd (a raise, an unmask delivering a pending one, a level
  // delivered). `coalesced`: raises merged into one already pending
  // (masked, an auto-masked vector still in service, or a signal the
  // client's full eventfd counter absorbed, nothing written). `pending`:
  // vectors pending now. Relaxed counters, cheap on the raising path; any
  // thread.
  struct Counts {
    uint64_t raised = 0;
    uint64_t coalesced = 0;
    uint64_t pending = 0;
  };
  Counts counts() const;

  // The client is gone: closes every eventfd (trigger and notifiers),
  // clears the VFIO masks and pending bits. Device masks are device state
  // and stay. Not reported to the listener: the caller knows the client
  // left. Command strand.
  void ReleaseClientResources();

  // What SetIrqs changed for vectors [start, start + count) of `index`.
  // Only real changes are reported, as maximal runs of consecutive
  // vectors, after the whole request is applied.
  enum class Change {
    kEnabled,   // a trigger eventfd was installed where there was none
    kDisabled,  // the trigger eventfd was removed
    kMasked,    // the VFIO mask was set
    kUnmasked,  // the VFIO mask was cleared
  };
  using Listener = std::function<void(uint32_t index, uint32_t start, uint32_t count, Change)>;
  // Command strand, before SetIrqs is first called.
  void set_listener(Listener listener) { listener_ = std::move(listener); }

 private:
  struct Vector;
  struct Event {
    uint32_t index;
    uint32_t start;
    uint32_t count;
    Change change;
  };

  // The vector, or null for an unknown index or vector.
  Vector* Find(uint32_t index, uint32_t vector) const;
  // Every check of SetIrqs, before anything changes.
  absl::Status Validate(const wire::SetIrqsRequest& request,
                        const std::vector<UniqueFd>& fds) const;
  bool IndexEnabled(uint32_t index) const;
  // Raises `v` (Trigger after the lookup).
  absl::Status Raise(Vector& v);
  // Counts an eventfd signal: raised_ if written, coalesced_ if the full
  // counter absorbed it. Returns false if the write failed.
  bool CountSignal(EventfdSlot::NotifyResult notified);
  // Delivers `v`'s level if it is up, unmasked and has an eventfd.
  void DeliverLevel(Vector& v);
  // Refreshes enabled_vectors_[index] (command strand).
  void RecountEnabled(uint32_t index);
  // Sets or clears one mask bit; delivers a pending interrupt if that
  // cleared the last mask. Returns whether the bit changed.
  bool UpdateMask(Vector& v, uint32_t bit, bool masked);
  // Empties `v`'s trigger slot and drops its pending bit. Returns whether
  // it had an eventfd.
  bool DisableTrigger(Vector& v);
  // Appends `vector` to the events, extending the last run if it fits.
  static void Note(std::vector<Event>& events, uint32_t index, uint32_t vector, Change change);

  const std::array<uint32_t, kNumIndexes> counts_;
  std::array<std::unique_ptr<Vector[]>, kNumIndexes> vectors_;
  // Vectors with a trigger eventfd, per index; written on the strand.
  std::array<std::atomic<uint32_t>, kNumIndexes> enabled_vectors_{};
  Listener listener_;  // command strand only
  std::atomic<uint64_t> raised_{0};
  std::atomic<uint64_t> coalesced_{0};
};

}  // namespace vfu

#endif  // VFU_IRQ_IRQ_CONTROLLER_H_
