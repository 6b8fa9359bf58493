// EventfdSlot: one replaceable eventfd that any thread may signal while a
// single owner thread swaps it, without a lock.
//
//   EventfdSlot slot;
//   slot.Replace(std::move(fd));            // owner thread
//   if (EventfdSlot::Lease lease = slot.Acquire(); lease) {
//     lease.Notify();                       // any thread: adds 1
//   }
//
// The hazard this solves: a signaller reads the fd number, the owner closes
// that fd, the number is reused by an unrelated file, and the signaller's
// write lands there. A Lease pins the fd it read: Replace() installs the
// new fd at once but closes the old one only after every lease taken on it
// has ended, and every lease taken after the swap sees the new fd.
//
// How: one 64-bit word holds {fd + 1 (0 = none), number of live leases}.
// Acquire() is a single fetch_add that reads the fd and registers the lease
// in one step, so there is no window between "read fd" and "register".
// Replace() swaps in {new fd, 0} and moves the old lease count to drain_;
// a lease that finds the fd changed when it ends decrements drain_ instead
// of the word. Replace() waits (yielding, then sleeping in short steps)
// until drain_ is 0, then closes. Leases taken after the swap count against
// the new word, so the wait is bounded by the leases already in flight
// (each one a single guarded eventfd write, see below): a stream of new
// signallers cannot starve the owner.
//
// The eventfd belongs to the client, who shares its open file description
// and may fill its counter or clear O_NONBLOCK at any moment. Notify never
// blocks for long on it: Replace() sets O_NONBLOCK on every fd it installs,
// so a full counter answers EAGAIN; and the write is a GuardedWrite
// (vfu/base/guarded_write.h), which a watchdog interrupts after a short
// bound if the client made the fd blocking again. That in turn bounds
// Replace(), which waits only for leases already in flight.
//
// A full counter means the reader has a wake-up it has not consumed yet,
// so a Notify that finds it full is coalesced into that one (kCoalesced:
// nothing written, and no error), as several raises of a pending MSI
// coalesce into one.
//
// Threads: Acquire/Lease/has_fd from any thread (Acquire is wait-free,
// ending a lease is a short CAS loop; Notify is one guarded write). Replace
// and the destructor from one thread at a time; the destructor requires
// that no lease is alive.
#ifndef VFU_IRQ_EVENTFD_SLOT_H_
#define VFU_IRQ_EVENTFD_SLOT_H_

#include <atomic>
#include <cstdint>

#include "vfu/base/unique_fd.h"

namespace vfu {

class EventfdSlot {
 public:
  // What one Notify did.
  enum class NotifyResult {
    kWritten,    // 1 was added to the counter
    kCoalesced,  // the counter was full (the reader has a wake-up pending
                 // already) or the client made the fd blocking and the
                 // write was cut short: nothing added, not an error
    kFailed,     // the write failed otherwise, or the lease has no fd
  };

  // The right to use the fd read by Acquire() until this object dies.
  // Move-only; false when the slot had no fd.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    explicit operator bool() const { return fd_ >= 0; }
    int fd() const { return fd_; }

    // Adds 1 to the eventfd's counter (kWritten). A full counter (EAGAIN,
    // or EINTR when the client made the fd blocking and the guarded write
    // was cut short) already means "signalled": kCoalesced. kFailed only if
    // the write failed otherwise (or there is no fd). Returns within about
    // 1.5 * the guarded-write stall bound at worst; never allocates after
    // the calling thread's first Notify.
    NotifyResult Notify() const;

   private:
    friend class EventfdSlot;
    Lease(EventfdSlot* slot, int fd) : slot_(slot), fd_(fd) {}

    EventfdSlot* slot_;  // null once moved from
    int fd_;
  };

  EventfdSlot() = default;
  EventfdSlot(const EventfdSlot&) = delete;
  EventfdSlot& operator=(const EventfdSlot&) = delete;
  // Closes the fd. No lease may be alive.
  ~EventfdSlot();

  // Any thread, wait-free.
  Lease Acquire();

  // Any thread. A snapshot: another thread may replace the fd right after.
  bool has_fd() const;

  // Owner thread. Installs `fd` (an invalid UniqueFd empties the slot)
  // with O_NONBLOCK set on it, waits for the leases on the previous fd to
  // end (bounded, see Notify), then closes it.
  // Returns whether the slot held an fd before. Replacing "none" with
  // "none" changes nothing.
  bool Replace(UniqueFd fd);

 private:
  static constexpr int kTagShift = 32;
  static constexpr uint64_t kCountMask = (uint64_t{1} << kTagShift) - 1;

  // Ends one lease taken with fd tag `tag` (fd + 1).
  void EndLease(uint64_t tag);

  // {tag = fd + 1 : 32, live leases on that tag : 32}. Zero: empty, idle.
  std::atomic<uint64_t> word_{0};
  // Leases on the previous tag still running; signed because a lease may
  // end (and decrement) before Replace() has added the count it moved.
  std::atomic<int64_t> drain_{0};
};

// Whether `fd` is an open eventfd (what a slot may hold: any other file
// could block or misbehave on Notify). Reads the fd's /proc link, the only
// way to tell an eventfd from other anonymous-inode files; false when that
// cannot be read. Not for hot paths.
bool IsEventfd(int fd);

}  // namespace vfu

#endif  // VFU_IRQ_EVENTFD_SLOT_H_
