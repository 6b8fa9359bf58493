#include "vfu/irq/eventfd_slot.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <thread>

#include "vfu/base/check.h"
#include "vfu/base/guarded_write.h"

namespace vfu {

EventfdSlot::Lease::Lease(Lease&& other) noexcept : slot_(other.slot_), fd_(other.fd_) {
  other.slot_ = nullptr;
  other.fd_ = -1;
}

EventfdSlot::Lease::~Lease() {
  if (slot_ != nullptr) slot_->EndLease(static_cast<uint64_t>(fd_ + 1));
}

EventfdSlot::NotifyResult EventfdSlot::Lease::Notify() const {
  if (fd_ < 0) return NotifyResult::kFailed;
  const uint64_t one = 1;
  switch (GuardedWrite(fd_, &one, sizeof(one)).outcome) {
    case GuardedWriteOutcome::kWritten:
      return NotifyResult::kWritten;
    // The counter is at its maximum, so the reader has a wake-up waiting
    // already: coalesced. EAGAIN on the non-blocking fd Replace() made;
    // EINTR if the peer made it blocking again and the write blocked until
    // the watchdog (or another signal) cut it short.
    case GuardedWriteOutcome::kWouldBlock:
    case GuardedWriteOutcome::kInterrupted:
      return NotifyResult::kCoalesced;
    case GuardedWriteOutcome::kFailed:
      return NotifyResult::kFailed;
  }
  return NotifyResult::kFailed;
}

EventfdSlot::~EventfdSlot() {
  const uint64_t word = word_.load(std::memory_order_acquire);
  VFU_CHECK((word & kCountMask) == 0, "EventfdSlot destroyed with a lease alive");
  const int fd = static_cast<int>(word >> kTagShift) - 1;
  if (fd >= 0) ::close(fd);
}

EventfdSlot::Lease EventfdSlot::Acquire() {
  // One RMW both reads the fd and registers the lease against it.
  const uint64_t word = word_.fetch_add(1, std::memory_order_acq_rel);
  return Lease(this, static_cast<int>(word >> kTagShift) - 1);
}

void EventfdSlot::EndLease(uint64_t tag) {
  uint64_t word = word_.load(std::memory_order_relaxed);
  while ((word >> kTagShift) == tag) {
    // Still the generation this lease registered on: its count is in the
    // word. The tag cannot have changed away and back, because Replace()
    // does not return (so cannot be called again) until this lease ends.
    if (word_.compare_exchange_weak(word, word - 1, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      return;
    }
  }
  // Replace() moved this lease's count to drain_ and is waiting on it;
  // release orders our write(fd) before its close(fd).
  drain_.fetch_sub(1, std::memory_order_release);
}

bool EventfdSlot::has_fd() const {
  return (word_.load(std::memory_order_acquire) >> kTagShift) != 0;
}

bool EventfdSlot::Replace(UniqueFd fd) {
  const uint64_t new_tag = fd.valid() ? static_cast<uint64_t>(fd.get()) + 1 : 0;
  if (fd.valid()) {
    // A full counter then gives EAGAIN instead of blocking. The peer shares
    // this flag and may clear it again; GuardedWrite bounds that case.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK) == 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  }
  uint64_t word = word_.load(std::memory_order_acquire);
  const uint64_t old_tag = word >> kTagShift;
  if (old_tag == new_tag) {
    // Only "none" over "none": a valid new fd is open, so its number
    // cannot equal the old fd, which is still open too.
    VFU_CHECK(new_tag == 0, "EventfdSlot::Replace given the fd it already holds");
    return false;
  }
  // Leases keep incrementing the count, so swap with a CAS to move exactly
  // the count that belongs to the old tag.
  while (!word_.compare_exchange_weak(word, new_tag << kTagShift, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
  }
  fd.release();
  drain_.fetch_add(static_cast<int64_t>(word & kCountMask), std::memory_order_acq_rel);
  // Each lease still on the old fd is one guarded eventfd write away from
  // ending: microseconds, or about 1.5 * the guarded-write stall bound if
  // the peer made the fd blocking and keeps it full. Yield first, so the
  // common wait is as short as the write; then sleep in short steps
  // rather than spin through a stall.
  for (int spins = 0; drain_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  if (old_tag != 0) ::close(static_cast<int>(old_tag) - 1);
  return old_tag != 0;
}

bool IsEventfd(int fd) {
  if (fd < 0) return false;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  char target[64];
  const ssize_t n = ::readlink(path, target, sizeof(target) - 1);
  if (n < 0) return false;
  target[n] = '\0';
  return std::strcmp(target, "anon_inode:[eventfd]") == 0;
}

}  // namespace vfu
