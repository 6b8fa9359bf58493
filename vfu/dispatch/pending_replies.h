// PendingReplies: one connection's table of server-initiated requests that
// wait for the client's reply (DMA_READ, DMA_WRITE).
//
// A device thread (a worker, or a thread of the device's own) registers a
// Slot, which allocates a 16-bit message ID, sends its request with that ID,
// and waits with a deadline. The IO thread, on reading a reply, hands it to
// Complete(), which wakes that waiter. Main calls:
//
//   PendingReplies::Slot slot;                         // waiter owns it
//   VFU_ASSIGN_OR_RETURN(uint16_t id, replies.Register(&slot));
//   ... send the request with message ID `id` ...
//   VFU_ASSIGN_OR_RETURN(PendingReplies::Reply reply,
//                        replies.Wait(&slot, absl::Now() + timeout));
//
//   replies.Complete(id, std::move(reply));    // IO thread; false: unknown
//   replies.FailAll(absl::UnavailableError(...));  // client gone
//   replies.Reset();                           // a new client attached
//
// Message IDs. IDs are handed out round-robin, skipping IDs still in
// flight, so an ID is reused only after the other 65535 have been tried;
// with all 65536 in flight, Register() fails with ResourceExhausted. A
// timed-out request frees its ID: a reply that arrives later finds no slot
// and Complete() returns false; should the ID have been reissued in between
// (only after a full lap of the ID space) the late reply would be taken for
// the new request's, so callers check that a reply's command matches.
//
// Slot lifetime. The waiter owns the Slot (usually on its stack) and may
// destroy it as soon as Wait() returns. The table only borrows it while it
// is linked; Complete() and FailAll() unlink it under the table's mutex,
// fill it outside the lock, and call Notify() on it as their very last
// touch (as for absl::Notification: whoever observes the notification may
// free the object). A waiter that times out unlinks its own slot, unless
// Complete() got there first; then the reply is already on its way and the
// waiter waits for it rather than free a slot that is about to be written.
// A Slot destroyed while registered (the request could not be sent) is
// unlinked by its destructor the same way. A Slot is used for one request.
//
// Memory ordering: everything the completing thread did before Complete()
// (or FailAll()) is visible to the waiter once Wait() returns.
//
// Thread safety: all PendingReplies methods are thread-safe. A Slot belongs
// to one waiter: Register(), Wait() and its destructor are called by that
// thread (or with external synchronization). The PendingReplies must outlive
// every registered Slot.
#ifndef VFU_DISPATCH_PENDING_REPLIES_H_
#define VFU_DISPATCH_PENDING_REPLIES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/transport/reply_sink.h"

namespace vfu {

class PendingReplies {
 public:
  // A reply as the transport received it: the whole message (header
  // included) and any fds that came with it. The table does not parse it.
  struct Reply {
    std::vector<uint8_t> bytes;
    std::vector<UniqueFd> fds;
    // Bytes the transport received into the request's ReplySink instead of
    // `bytes` (see InboundMessage::sunk_bytes).
    size_t sunk_bytes = 0;
  };

  // Where one waiter's reply lands. Owned by the waiter; see "Slot
  // lifetime" above. Neither copyable nor movable: the table points to it.
  class Slot {
   public:
    Slot() = default;
    // If still registered (never waited for), unlinks itself, waiting out a
    // Complete() that is already writing to it.
    ~Slot();

    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    // The message ID Register() gave this slot.
    uint16_t id() const { return id_; }
    // Names this registration and no other, unlike the ID, which is reused
    // (see Waiting()).
    uint64_t ticket() const { return ticket_; }

   private:
    friend class PendingReplies;

    enum class State {
      kUnused,      // Not registered yet (or Register() failed).
      kRegistered,  // Linked in the table, or filled and notified.
      kFinished,    // Wait() or the destructor has taken it back.
    };

    // Set by Register() before the slot is linked, then read under the
    // table's mutex (SinkFor) until the owner takes the slot back.
    std::shared_ptr<ReplySink> sink_;
    // Touched only by the owning thread.
    PendingReplies* table_ = nullptr;
    State state_ = State::kUnused;
    uint16_t id_ = 0;
    // Set by Register() under the table's mutex before the slot is linked.
    uint64_t ticket_ = 0;

    // Written by whoever unlinked the slot (Complete/FailAll) before
    // done_.Notify(); read by the owner after the notification.
    absl::Status status_;
    Reply reply_;
    absl::Notification done_;
  };

  PendingReplies() = default;
  // Requires: no registered Slot.
  ~PendingReplies();

  PendingReplies(const PendingReplies&) = delete;
  PendingReplies& operator=(const PendingReplies&) = delete;

  // Links `slot` (unused) under a fresh message ID and returns the ID.
  // `sink`, if given, is where the reply's data may be received (the
  // waiter revokes it once Wait() returns). Errors: ResourceExhausted when
  // all 65536 IDs are in flight; after FailAll(status), `status` until
  // Reset().
  absl::StatusOr<uint16_t> Register(Slot* slot, std::shared_ptr<ReplySink> sink = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // IO thread: the sink registered for the request with message ID `id`
  // still waiting for its reply, or nullptr.
  std::shared_ptr<ReplySink> SinkFor(uint16_t id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until `slot` (registered) gets its reply or `deadline` passes.
  // Returns the reply; DeadlineExceeded on timeout (the ID is freed); the
  // FailAll() status if the connection failed first. A reply that was
  // already being delivered when the deadline hit is returned, not dropped.
  absl::StatusOr<Reply> Wait(Slot* slot, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_);

  // IO thread: delivers `reply` to the waiter of message `id` and wakes it.
  // Returns false if no request with that ID is in flight (timed out, or
  // the client made it up); the caller logs and drops the reply.
  bool Complete(uint16_t id, Reply reply) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes every waiter at once with `status` (not OK; Unavailable for a
  // disconnect) and makes later Register() calls fail with it until Reset().
  void FailAll(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  // Accepts Register() calls again after FailAll().
  void Reset() ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the registration with message `id` and `ticket` (Slot::id(),
  // Slot::ticket()) still waits for its reply: false once it was completed,
  // failed or timed out, even if the ID has been reissued since. The IO
  // thread asks before sending a request, so that nothing is sent for a
  // caller that has given up.
  bool Waiting(uint16_t id, uint64_t ticket) const ABSL_LOCKS_EXCLUDED(mu_);

  // Requests in flight (registered and not yet completed, failed or timed
  // out).
  size_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr size_t kNumIds = size_t{1} << 16;

  // The next free ID at or after next_id_, which moves past it.
  // Requires slots_.size() < kNumIds.
  uint16_t AllocateIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes `slot` from the table if it is still linked there; returns
  // whether it was (false: Complete() or FailAll() took it first).
  bool UnlinkLocked(const Slot* slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unlinks `slot` if still linked; otherwise waits for the notification
  // that whoever unlinked it is about to send. Returns whether we unlinked.
  bool UnlinkOrAwaitDelivery(Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint16_t, Slot*> slots_ ABSL_GUARDED_BY(mu_);
  uint16_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  // OK, or the FailAll() status that Register() returns until Reset().
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu

#endif  // VFU_DISPATCH_PENDING_REPLIES_H_
