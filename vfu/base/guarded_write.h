// GuardedWrite: a write(2) to an fd someone else controls that cannot hold
// the calling thread for longer than a short bound.
//
//   switch (GuardedWrite(fd, &one, sizeof(one)).outcome) {
//     case GuardedWriteOutcome::kWritten: ...
//     case GuardedWriteOutcome::kWouldBlock: ...   // EAGAIN
//     case GuardedWriteOutcome::kInterrupted: ...  // blocked, then cut short
//     case GuardedWriteOutcome::kFailed: ...       // any other errno
//   }
//
// Why: an fd a peer passed us shares its open file description with the
// peer, so the peer can clear O_NONBLOCK on it at any moment, even after we
// set it. A write that then blocks (a full eventfd, a full pipe) would hold
// a device thread forever. Nothing in the kernel bounds such a write for us
// (RWF_NOWAIT is refused by eventfds, and reopening the file through /proc
// gives ENXIO), so the bound comes from outside: a signal.
//
// How: the calling thread marks itself "inside guarded write number N" in
// its own record (two stores to a thread-local atomic around the syscall;
// no syscall, lock or allocation besides the write itself, once the thread
// is registered). A process-wide watchdog thread, started on the first
// guarded write, looks at every record every stall_bound / 2. A thread seen
// inside the same guarded write for at least stall_bound gets the guard
// signal (pthread_kill), whose handler does nothing and is installed
// without SA_RESTART, so the blocked write returns EINTR: kInterrupted. The
// watchdog signals again on every later look while the thread is still in
// that write, because the signal may land just before the syscall starts
// (its handler then runs in user space and the write blocks afterwards).
// When a look finds no guarded write since the last one, the watchdog
// sleeps until the next guarded write wakes it, so an idle process pays no
// periodic wake-ups.
//
// The guard signal is SIGRTMIN + kDefaultGuardSignalOffset unless
// SetGuardedWriteOptions chose another before the first guarded write. A
// realtime signal, because those have no predefined meaning and are left
// to applications (standard ones like SIGUSR1 are often taken); not the
// first few above SIGRTMIN (glibc keeps two below it for itself, and libraries
// that want one tend to take SIGRTMIN or the next). It
// is installed on first use; if something else already has a handler for
// it, guarded writes still work but are not interrupted (logged once as an
// error): pick a free signal then. Each thread unblocks the signal for
// itself when it first makes a guarded write; a thread that blocks it again
// later loses the bound.
//
// Side effect to know about: the watchdog decides and signals in two steps,
// so a write that completes just between them (after blocking for at least
// stall_bound) lets the signal land on whatever the thread does next. It
// runs the empty handler and, only if the thread is already inside another
// blocking syscall by then, makes that one fail with EINTR, as any signal
// can. Threads that make guarded writes must retry EINTR elsewhere (vfu's
// own code does).
//
// Threads: everything here may be called from any thread.
#ifndef VFU_BASE_GUARDED_WRITE_H_
#define VFU_BASE_GUARDED_WRITE_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace vfu {

enum class GuardedWriteOutcome {
  kWritten,      // write returned >= 0 (`bytes` may be short for non-eventfds)
  kWouldBlock,   // EAGAIN / EWOULDBLOCK: the fd is non-blocking and full
  kInterrupted,  // EINTR: the write would have blocked and a signal (the
                 // watchdog's, or another one) cut it short
  kFailed,       // any other error, in `error`
};

struct GuardedWriteResult {
  GuardedWriteOutcome outcome;
  ssize_t bytes = 0;  // kWritten only
  int error = 0;      // errno for every other outcome
};

// Writes `size` bytes of `data` to `fd` once (no retry on EINTR: an
// interrupted write reports kInterrupted). Blocks for at most about
// 1.5 * stall_bound plus scheduling delays, if the guard signal could be
// installed. Never allocates after the thread's first call.
GuardedWriteResult GuardedWrite(int fd, const void* data, size_t size);

inline constexpr int kDefaultGuardSignalOffset = 5;  // SIGRTMIN + 5

struct GuardedWriteOptions {
  // How long a write may block before the watchdog interrupts it.
  absl::Duration stall_bound = absl::Milliseconds(20);
  // The guard signal; 0 means SIGRTMIN + kDefaultGuardSignalOffset.
  int signal = 0;
};

// Chooses the options. Only before the first GuardedWrite of the process
// (returns false, changing nothing, afterwards or for a signal outside
// [SIGRTMIN, SIGRTMAX] or a non-positive bound).
bool SetGuardedWriteOptions(const GuardedWriteOptions& options);

// The options in force (the defaults until SetGuardedWriteOptions).
GuardedWriteOptions GetGuardedWriteOptions();

// Whether the watchdog has started and now sleeps until the next guarded
// write (it does after a look that finds no guarded write since the last
// one). For tests of the wake-up path.
bool GuardedWriteWatchdogIdle();

// How many times the watchdog has signalled a thread stuck in a guarded
// write, since the process started. For tests and statistics.
uint64_t GuardedWriteInterruptions();

}  // namespace vfu

#endif  // VFU_BASE_GUARDED_WRITE_H_
