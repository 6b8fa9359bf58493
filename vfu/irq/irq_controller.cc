#include "vfu/irq/irq_controller.h"

#include <linux/vfio.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/irq/eventfd_slot.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

static_assert(IrqController::kNumIndexes == VFIO_PCI_NUM_IRQS);

// Bits of Vector::state.
constexpr uint32_t kVfioMasked = 1u << 0;
constexpr uint32_t kDeviceMasked = 1u << 1;
constexpr uint32_t kPending = 1u << 2;
// The device holds the line asserted (SetLevel).
constexpr uint32_t kLevel = 1u << 3;
// Delivered by an auto-masking vector and not yet unmasked by the client.
constexpr uint32_t kInService = 1u << 4;
constexpr uint32_t kMaskBits = kVfioMasked | kDeviceMasked;
// What a delivery on an auto-masking vector adds to the state.
constexpr uint32_t kAutoMaskBits = kVfioMasked | kInService;

// Trigger() runs on device threads that must not allocate, so its error
// statuses are built once; copying one only bumps a reference count.

absl::Status NotEnabledError() {
  static const absl::Status* const kStatus = new absl::Status(
      absl::StatusCode::kFailedPrecondition, "IRQ vector not enabled (it has no eventfd)");
  return *kStatus;
}

absl::Status UnknownIndexError() {
  static const absl::Status* const kStatus =
      new absl::Status(absl::StatusCode::kInvalidArgument, "no such IRQ index");
  return *kStatus;
}

absl::Status UnknownVectorError() {
  static const absl::Status* const kStatus =
      new absl::Status(absl::StatusCode::kOutOfRange, "IRQ vector beyond the index's count");
  return *kStatus;
}

absl::Status WriteFailedError() {
  static const absl::Status* const kStatus =
      new absl::Status(absl::StatusCode::kInternal, "IRQ eventfd write failed");
  return *kStatus;
}

absl::Status SetIrqsError(const wire::SetIrqsRequest& r, std::string_view problem) {
  return wire::WireError(
      EINVAL, absl::StrCat("DEVICE_SET_IRQS (flags 0x", absl::Hex(r.flags), ", index ", r.index,
                           ", start ", r.start, ", count ", r.count, "): ", problem));
}

}  // namespace

struct IrqController::Vector {
  // kVfioMasked | kDeviceMasked | kPending; every change is one CAS (or
  // fetch_and) so a raise and an unmask cannot both miss the pending bit.
  std::atomic<uint32_t> state{0};
  EventfdSlot trigger;
  EventfdSlot on_mask;    // written when the device mask gets set
  EventfdSlot on_unmask;  // written when the device mask gets cleared
  bool auto_mask = false;  // fixed at construction
};

IrqController::IrqController(std::array<uint32_t, kNumIndexes> vectors, bool auto_mask_intx)
    : counts_(vectors) {
  VFU_CHECK(vectors[VFIO_PCI_ERR_IRQ_INDEX] <= 1 && vectors[VFIO_PCI_REQ_IRQ_INDEX] <= 1,
            "ERR and REQ IRQ indexes have at most one vector");
  for (uint32_t i = 0; i < kNumIndexes; ++i) {
    if (counts_[i] > 0) vectors_[i] = std::make_unique<Vector[]>(counts_[i]);
  }
  if (auto_mask_intx && counts_[VFIO_PCI_INTX_IRQ_INDEX] > 0) {
    vectors_[VFIO_PCI_INTX_IRQ_INDEX][0].auto_mask = true;
  }
}

IrqController::~IrqController() = default;

uint32_t IrqController::vectors(uint32_t index) const {
  return index < kNumIndexes ? counts_[index] : 0;
}

IrqController::Vector* IrqController::Find(uint32_t index, uint32_t vector) const {
  if (index >= kNumIndexes || vector >= counts_[index]) return nullptr;
  return &vectors_[index][vector];
}

bool IrqController::IndexEnabled(uint32_t index) const {
  for (uint32_t i = 0; i < counts_[index]; ++i) {
    if (vectors_[index][i].trigger.has_fd()) return true;
  }
  return false;
}

absl::Status IrqController::Validate(const wire::SetIrqsRequest& r,
                                     const std::vector<UniqueFd>& fds) const {
  // The decoder has checked the flags and the ERR/REQ and count-0 rules;
  // they are checked again only because the code below relies on them.
  if (r.index >= kNumIndexes) return SetIrqsError(r, "no such IRQ index");
  const uint32_t data = r.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const uint32_t action = r.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (std::popcount(data) != 1 || std::popcount(action) != 1 ||
      (r.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) != 0) {
    return SetIrqsError(r, "not exactly one data type and one action");
  }
  if (r.count == 0 &&
      (data != VFIO_IRQ_SET_DATA_NONE || action != VFIO_IRQ_SET_ACTION_TRIGGER)) {
    return SetIrqsError(r, "count 0 is only TRIGGER|NONE");
  }
  if ((r.index == VFIO_PCI_ERR_IRQ_INDEX || r.index == VFIO_PCI_REQ_IRQ_INDEX) &&
      action != VFIO_IRQ_SET_ACTION_TRIGGER) {
    return SetIrqsError(r, "ERR and REQ take only TRIGGER");
  }
  VFU_RETURN_IF_ERROR(wire::CheckSetIrqsRange(r, counts_[r.index]));
  if (data == VFIO_IRQ_SET_DATA_BOOL && r.data.size() != r.count) {
    return SetIrqsError(r, absl::StrCat(r.data.size(), " BOOL bytes, need count"));
  }
  if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
    if (!fds.empty() && fds.size() != r.count) {
      return SetIrqsError(r, absl::StrCat(fds.size(), " fds, need 0 or count"));
    }
    for (const UniqueFd& fd : fds) {
      // VFIO answers a non-eventfd with EINVAL too; and writing to an
      // arbitrary file (a full pipe) could block a device thread.
      if (!IsEventfd(fd.get())) {
        return SetIrqsError(r, absl::StrCat("fd ", fd.get(), " is not an eventfd"));
      }
    }
  } else if (!fds.empty()) {
    return SetIrqsError(r, absl::StrCat(fds.size(), " fds without DATA_EVENTFD"));
  }
  if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data != VFIO_IRQ_SET_DATA_EVENTFD &&
      r.count > 0 && !IndexEnabled(r.index)) {
    return SetIrqsError(r, "loopback on an index with no eventfd");
  }
  return absl::OkStatus();
}

absl::Status IrqController::SetIrqs(const wire::SetIrqsRequest& r, std::vector<UniqueFd>& fds) {
  // Whatever is not installed below is closed on the way out.
  absl::Cleanup close_rest = [&fds] { fds.clear(); };
  VFU_RETURN_IF_ERROR(Validate(r, fds));

  const uint32_t data = r.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const uint32_t action = r.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  // Reported after the whole request is applied, so a listener that looks
  // at the state sees all of it.
  std::vector<Event> events;

  if (r.count == 0) {
    // Disable the whole index (a no-op on an index with no vectors).
    for (uint32_t i = 0; i < counts_[r.index]; ++i) {
      Vector& v = vectors_[r.index][i];
      if (DisableTrigger(v)) Note(events, r.index, i, Change::kDisabled);
      v.on_mask.Replace(UniqueFd());
      v.on_unmask.Replace(UniqueFd());
    }
    for (uint32_t i = 0; i < counts_[r.index]; ++i) {
      const uint32_t previous = vectors_[r.index][i].state.fetch_and(
          ~(kVfioMasked | kPending | kInService), std::memory_order_acq_rel);
      if (previous & kVfioMasked) Note(events, r.index, i, Change::kUnmasked);
    }
  } else {
    for (uint32_t j = 0; j < r.count; ++j) {
      const uint32_t i = r.start + j;
      Vector& v = vectors_[r.index][i];
      if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        UniqueFd fd = fds.empty() ? UniqueFd() : std::move(fds[j]);
        if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
          if (fd.valid()) {
            // A pending bit survives a replacement: it belongs to the
            // vector, and the new eventfd is where it will be delivered.
            if (!v.trigger.Replace(std::move(fd))) {
              Note(events, r.index, i, Change::kEnabled);
              // A line the device holds asserted fires on its new eventfd,
              // as enabling INTx on an asserting device does under VFIO.
              DeliverLevel(v);
            }
          } else if (DisableTrigger(v)) {
            Note(events, r.index, i, Change::kDisabled);
          }
        } else {
          EventfdSlot& slot = action == VFIO_IRQ_SET_ACTION_MASK ? v.on_mask : v.on_unmask;
          slot.Replace(std::move(fd));
        }
        continue;
      }
      if (data == VFIO_IRQ_SET_DATA_BOOL && r.data[j] == 0) continue;
      if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
        // Loopback. A vector without an eventfd is skipped (VFIO does the
        // same); a failed eventfd write has no one to report to but the
        // log, as on real hardware.
        absl::Status raised = Raise(v);
        if (!raised.ok() && raised.code() != absl::StatusCode::kFailedPrecondition) {
          VFU_LOG_RATE_LIMITED(kWarning, "loopback of IRQ ", r.index, ".", i, ": ",
                               raised.ToString());
        }
      } else {
        const bool mask = action == VFIO_IRQ_SET_ACTION_MASK;
        if (UpdateMask(v, kVfioMasked, mask)) {
          Note(events, r.index, i, mask ? Change::kMasked : Change::kUnmasked);
        }
      }
    }
  }

  RecountEnabled(r.index);
  if (listener_) {
    for (const Event& e : events) listener_(e.index, e.start, e.count, e.change);
  }
  return absl::OkStatus();
}

void IrqController::RecountEnabled(uint32_t index) {
  uint32_t enabled = 0;
  for (uint32_t i = 0; i < counts_[index]; ++i) {
    if (vectors_[index][i].trigger.has_fd()) ++enabled;
  }
  enabled_vectors_[index].store(enabled, std::memory_order_release);
}

bool IrqController::AnyEnabled(uint32_t index) const {
  return index < kNumIndexes && enabled_vectors_[index].load(std::memory_order_acquire) != 0;
}

absl::Status IrqController::Trigger(uint32_t index, uint32_t vector) {
  if (index >= kNumIndexes) return UnknownIndexError();
  Vector* v = Find(index, vector);
  if (v == nullptr) return UnknownVectorError();
  return Raise(*v);
}

absl::Status IrqController::Raise(Vector& v) {
  // The lease comes first: a vector without an eventfd must not collect a
  // pending bit, and a de-assignment (which clears the pending bit after
  // its leases have drained) must not miss one set here.
  EventfdSlot::Lease lease = v.trigger.Acquire();
  if (!lease) return NotEnabledError();
  uint32_t state = v.state.load(std::memory_order_acquire);
  while (true) {
    if (state & kMaskBits) {
      // Masked: leave it pending; an unmask that clears the last mask in
      // the same word delivers it. Already pending: coalesced, like the
      // PBA bit.
      if (state & kPending) {
        coalesced_.fetch_add(1, std::memory_order_relaxed);
        return absl::OkStatus();
      }
      if (v.state.compare_exchange_weak(state, state | kPending, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        return absl::OkStatus();
      }
      continue;  // lost a race with a mask change: look again
    }
    if (!v.auto_mask) break;
    // Auto-masking (VFIO INTx): the delivery and the mask are one step, so
    // a second raise before the client unmasks becomes pending.
    if (v.state.compare_exchange_weak(state, state | kAutoMaskBits, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      break;
    }
  }
  return CountSignal(lease.Notify()) ? absl::OkStatus() : WriteFailedError();
}

bool IrqController::CountSignal(EventfdSlot::NotifyResult notified) {
  switch (notified) {
    case EventfdSlot::NotifyResult::kWritten:
      raised_.fetch_add(1, std::memory_order_relaxed);
      return true;
    case EventfdSlot::NotifyResult::kCoalesced:
      coalesced_.fetch_add(1, std::memory_order_relaxed);
      return true;
    case EventfdSlot::NotifyResult::kFailed:
      return false;
  }
  return false;
}

IrqController::Counts IrqController::counts() const {
  Counts counts{.raised = raised_.load(std::memory_order_relaxed),
                .coalesced = coalesced_.load(std::memory_order_relaxed)};
  for (uint32_t index = 0; index < kNumIndexes; ++index) {
    for (uint32_t vector = 0; vector < counts_[index]; ++vector) {
      if (vectors_[index][vector].state.load(std::memory_order_acquire) & kPending) {
        ++counts.pending;
      }
    }
  }
  return counts;
}

void IrqController::DeliverLevel(Vector& v) {
  EventfdSlot::Lease lease = v.trigger.Acquire();
  if (!lease) return;
  uint32_t state = v.state.load(std::memory_order_acquire);
  do {
    // Masked: the unmask delivers it, since the level is still up then.
    if ((state & kLevel) == 0 || (state & kMaskBits) != 0) return;
    if (!v.auto_mask) break;
  } while (!v.state.compare_exchange_weak(state, state | kAutoMaskBits,
                                          std::memory_order_acq_rel, std::memory_order_acquire));
  CountSignal(lease.Notify());
}

absl::Status IrqController::SetLevel(uint32_t index, uint32_t vector, bool asserted) {
  if (index >= kNumIndexes) return UnknownIndexError();
  Vector* v = Find(index, vector);
  if (v == nullptr) return UnknownVectorError();
  uint32_t state = v->state.load(std::memory_order_acquire);
  uint32_t next;
  do {
    // Deasserting drops what was waiting for delivery: the line is low, a
    // level-triggered handler would find nothing to do.
    next = asserted ? (state | kLevel) : (state & ~(kLevel | kPending | kInService));
    if (next == state) return absl::OkStatus();
  } while (!v->state.compare_exchange_weak(state, next, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
  if (asserted) DeliverLevel(*v);
  return absl::OkStatus();
}

bool IrqController::UpdateMask(Vector& v, uint32_t bit, bool masked) {
  // Taken before the state changes, so a delivery decided below has an fd.
  EventfdSlot::Lease lease = v.trigger.Acquire();
  uint32_t state = v.state.load(std::memory_order_acquire);
  uint32_t next;
  bool deliver;
  do {
    if (((state & bit) != 0) == masked) return false;
    next = masked ? (state | bit) : (state & ~bit);
    // The client's unmask ends the in-service period of an auto-masked
    // delivery (VFIO's "EOI").
    if (!masked && bit == kVfioMasked) next &= ~kInService;
    // Only the CAS that clears the last mask while pending (or while the
    // line is held asserted) delivers, so exactly one unmask does.
    deliver = lease && (next & kMaskBits) == 0 && (next & (kPending | kLevel)) != 0;
    if (deliver) {
      next &= ~kPending;
      if (v.auto_mask) next |= kAutoMaskBits;
    }
  } while (!v.state.compare_exchange_weak(state, next, std::memory_order_acq_rel,
                                          std::memory_order_acquire));
  if (deliver) CountSignal(lease.Notify());
  return true;
}

void IrqController::SetDeviceMask(uint32_t index, uint32_t vector, bool masked) {
  Vector* v = Find(index, vector);
  if (v == nullptr) {
    VFU_LOG(kWarning, "SetDeviceMask on unknown IRQ ", index, ".", vector);
    return;
  }
  if (!UpdateMask(*v, kDeviceMasked, masked)) return;
  EventfdSlot& notifier = masked ? v->on_mask : v->on_unmask;
  if (EventfdSlot::Lease lease = notifier.Acquire(); lease) lease.Notify();
}

bool IrqController::DisableTrigger(Vector& v) {
  const bool had = v.trigger.Replace(UniqueFd());
  // After Replace() no Raise() holds the old eventfd and new ones find
  // none, so nothing sets the bit again.
  v.state.fetch_and(~(kPending | kInService), std::memory_order_acq_rel);
  return had;
}

bool IrqController::IsEnabled(uint32_t index, uint32_t vector) const {
  const Vector* v = Find(index, vector);
  return v != nullptr && v->trigger.has_fd();
}

bool IrqController::IsMasked(uint32_t index, uint32_t vector) const {
  const Vector* v = Find(index, vector);
  return v != nullptr && (v->state.load(std::memory_order_acquire) & kMaskBits) != 0;
}

bool IrqController::IsPending(uint32_t index, uint32_t vector) const {
  const Vector* v = Find(index, vector);
  return v != nullptr && (v->state.load(std::memory_order_acquire) & kPending) != 0;
}

bool IrqController::IsAsserted(uint32_t index, uint32_t vector) const {
  const Vector* v = Find(index, vector);
  return v != nullptr &&
         (v->state.load(std::memory_order_acquire) & (kPending | kLevel | kInService)) != 0;
}

void IrqController::ReleaseClientResources() {
  for (uint32_t index = 0; index < kNumIndexes; ++index) {
    for (uint32_t i = 0; i < counts_[index]; ++i) {
      Vector& v = vectors_[index][i];
      DisableTrigger(v);
      v.on_mask.Replace(UniqueFd());
      v.on_unmask.Replace(UniqueFd());
      v.state.fetch_and(~(kVfioMasked | kPending | kInService), std::memory_order_acq_rel);
    }
    enabled_vectors_[index].store(0, std::memory_order_release);
  }
}

void IrqController::Note(std::vector<Event>& events, uint32_t index, uint32_t vector,
                         Change change) {
  if (!events.empty()) {
    Event& last = events.back();
    if (last.index == index && last.change == change && last.start + last.count == vector) {
      ++last.count;
      return;
    }
  }
  events.push_back(Event{index, vector, 1, change});
}

}  // namespace vfu
