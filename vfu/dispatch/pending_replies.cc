#include "vfu/dispatch/pending_replies.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"

namespace vfu {

PendingReplies::Slot::~Slot() {
  if (state_ == State::kRegistered) {
    table_->UnlinkOrAwaitDelivery(this);  // Any reply dies with the slot.
    state_ = State::kFinished;
  }
  // done_'s destructor then waits for a Notify() still inside its mutex.
}

PendingReplies::~PendingReplies() {
  absl::MutexLock lock(&mu_);
  VFU_CHECK(slots_.empty(), "PendingReplies destroyed with requests in flight");
}

absl::StatusOr<uint16_t> PendingReplies::Register(Slot* slot, std::shared_ptr<ReplySink> sink) {
  VFU_CHECK(slot->state_ == Slot::State::kUnused,
            "PendingReplies::Register: a Slot serves one request");
  slot->sink_ = std::move(sink);
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  if (slots_.size() >= kNumIds) {
    return absl::ResourceExhaustedError(
        "all 65536 message IDs are waiting for replies");
  }
  const uint16_t id = AllocateIdLocked();
  slots_.emplace(id, slot);
  slot->table_ = this;
  slot->id_ = id;
  slot->ticket_ = next_ticket_++;
  slot->state_ = Slot::State::kRegistered;
  return id;
}

absl::StatusOr<PendingReplies::Reply> PendingReplies::Wait(
    Slot* slot, absl::Time deadline) {
  VFU_CHECK(slot->state_ == Slot::State::kRegistered && slot->table_ == this,
            "PendingReplies::Wait needs a slot registered with this table");
  if (!slot->done_.WaitForNotificationWithDeadline(deadline) &&
      UnlinkOrAwaitDelivery(slot)) {
    slot->state_ = Slot::State::kFinished;
    return absl::DeadlineExceededError(
        absl::StrCat("no reply to message ", slot->id_, " by the deadline"));
  }
  // Notified: the slot is unlinked and filled, and ours again.
  slot->state_ = Slot::State::kFinished;
  if (!slot->status_.ok()) return slot->status_;
  return std::move(slot->reply_);
}

std::shared_ptr<ReplySink> PendingReplies::SinkFor(uint16_t id) const {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(id);
  return it == slots_.end() ? nullptr : it->second->sink_;
}

bool PendingReplies::Complete(uint16_t id, Reply reply) {
  Slot* slot;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(id);
    if (it == slots_.end()) return false;
    slot = it->second;
    slots_.erase(it);
  }
  // Unlinked, the slot is ours alone until Notify(): a waiter that times
  // out now finds it gone and waits for the notification instead of
  // freeing it.
  slot->reply_ = std::move(reply);
  slot->done_.Notify();  // Last touch: the waiter may free the slot now.
  return true;
}

void PendingReplies::FailAll(absl::Status status) {
  VFU_CHECK(!status.ok(), "PendingReplies::FailAll needs an error status");
  std::vector<Slot*> failed;
  {
    absl::MutexLock lock(&mu_);
    failed_ = status;
    failed.reserve(slots_.size());
    for (const auto& [id, slot] : slots_) failed.push_back(slot);
    slots_.clear();
  }
  // As in Complete(): each slot is ours until its Notify(), the last touch.
  for (Slot* slot : failed) {
    slot->status_ = status;
    slot->done_.Notify();
  }
}

void PendingReplies::Reset() {
  absl::MutexLock lock(&mu_);
  failed_ = absl::OkStatus();
}

bool PendingReplies::Waiting(uint16_t id, uint64_t ticket) const {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(id);
  return it != slots_.end() && it->second->ticket_ == ticket;
}

size_t PendingReplies::in_flight() const {
  absl::MutexLock lock(&mu_);
  return slots_.size();
}

uint16_t PendingReplies::AllocateIdLocked() {
  // Terminates within kNumIds steps: the caller checked that an ID is free.
  for (;;) {
    const uint16_t id = next_id_++;  // Wraps from 65535 to 0.
    if (!slots_.contains(id)) return id;
  }
}

bool PendingReplies::UnlinkLocked(const Slot* slot) {
  auto it = slots_.find(slot->id_);
  // The ID may have been freed and reissued to another slot meanwhile.
  if (it == slots_.end() || it->second != slot) return false;
  slots_.erase(it);
  return true;
}

bool PendingReplies::UnlinkOrAwaitDelivery(Slot* slot) {
  {
    absl::MutexLock lock(&mu_);
    if (UnlinkLocked(slot)) return true;
  }
  // Complete() or FailAll() unlinked the slot before we took mu_ and is
  // filling it now, outside the lock; its Notify() is imminent. Returning
  // would let the owner free the slot under that write, so wait for it,
  // without a deadline.
  slot->done_.WaitForNotification();
  return false;
}

}  // namespace vfu
