#include "vfu/base/guarded_write.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/base/log.h"

namespace vfu {
namespace {

// One per thread that has made a guarded write. Owned by the registry;
// freed when its thread exits.
struct ThreadRecord {
  // Incremented on entering and on leaving a guarded write: odd while
  // inside, and a different value for every write.
  std::atomic<uint64_t> guard{0};
  std::atomic<int> fd{-1};  // of the current (or last) write, for the log
  pthread_t thread;
  pid_t tid;
  // The watchdog's view, under Watchdog::mu_.
  uint64_t last_seen = 0;
  absl::Time seen_since;
};

void IgnoreGuardSignal(int) {}  // its only job is to make a syscall return EINTR

absl::Mutex options_mu(absl::kConstInit);
GuardedWriteOptions options ABSL_GUARDED_BY(options_mu);
bool started ABSL_GUARDED_BY(options_mu) = false;

std::atomic<uint64_t> interruptions{0};

int ResolvedSignal(const GuardedWriteOptions& o) {
  return o.signal != 0 ? o.signal : SIGRTMIN + kDefaultGuardSignalOffset;
}

class Watchdog {
 public:
  // The process-wide watchdog, created (handler installed, thread started)
  // on first use and never destroyed: threads may make guarded writes
  // during static destruction.
  static Watchdog& Get() {
    static Watchdog* const watchdog = new Watchdog();
    return *watchdog;
  }

  // Registers the calling thread and unblocks the guard signal for it.
  ThreadRecord* Register() ABSL_LOCKS_EXCLUDED(mu_) {
    auto* record = new ThreadRecord();
    record->thread = ::pthread_self();
    record->tid = static_cast<pid_t>(::syscall(SYS_gettid));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal_);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    absl::MutexLock lock(&mu_);
    records_.push_back(record);
    return record;
  }

  // The thread of `record` is exiting. Taking mu_ also waits out a
  // pthread_kill aimed at it, so the watchdog never signals a dead thread.
  void Unregister(ThreadRecord* record) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      std::erase(records_, record);
    }
    delete record;
  }

  // Entered a guarded write while the watchdog sleeps without a deadline.
  void Wake() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    parked_.store(false, std::memory_order_seq_cst);
    wake_.Signal();
  }

  // True while the watchdog sleeps until the next guarded write. A writer
  // stores its guard, then loads this; the watchdog stores this, then
  // loads every guard (both seq_cst), so one of them sees the other.
  std::atomic<bool> parked_{false};

 private:
  Watchdog() {
    absl::MutexLock lock(&options_mu);
    started = true;
    bound_ = options.stall_bound;
    signal_ = ResolvedSignal(options);
    handler_installed_ = InstallHandler();
    std::thread(&Watchdog::Run, this).detach();
  }

  bool InstallHandler() {
    struct sigaction previous;
    if (::sigaction(signal_, nullptr, &previous) != 0) return false;
    const bool has_handler = (previous.sa_flags & SA_SIGINFO) != 0
                                 ? previous.sa_sigaction != nullptr
                                 : (previous.sa_handler != SIG_DFL &&
                                    previous.sa_handler != SIG_IGN);
    if (has_handler) {
      VFU_LOG(kError, "signal ", signal_, " already has a handler: blocked eventfd writes will "
              "not be interrupted (choose a free signal with SetGuardedWriteOptions)");
      return false;
    }
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = IgnoreGuardSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the blocked write must return EINTR
    return ::sigaction(signal_, &action, nullptr) == 0;
  }

  // Whether the guard signal still runs our handler (someone may have
  // replaced it; the default action of a realtime signal kills).
  bool HandlerStillOurs() const {
    struct sigaction current;
    return ::sigaction(signal_, nullptr, &current) == 0 &&
           (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == IgnoreGuardSignal;
  }

  struct Stuck {
    pid_t tid;
    int fd;
  };

  // One look at every record: notes guard changes, signals threads stuck
  // in one write for stall_bound. Returns whether any thread made or is
  // making a guarded write since the last look.
  bool Scan(absl::Time now, std::vector<Stuck>& stuck) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool active = false;
    for (ThreadRecord* r : records_) {
      const uint64_t guard = r->guard.load(std::memory_order_seq_cst);
      if (guard != r->last_seen) {
        r->last_seen = guard;
        r->seen_since = now;
        active = true;
        continue;
      }
      if ((guard & 1) == 0) continue;
      active = true;
      if (now - r->seen_since < bound_ || !handler_installed_) continue;
      if (!HandlerStillOurs()) {
        handler_installed_ = false;
        VFU_LOG(kError, "the handler of signal ", signal_,
                " was replaced: blocked eventfd writes are no longer interrupted");
        continue;
      }
      // Still inside the same write (looked again just now): a write that
      // ends between this load and the kill lets the signal land later.
      if (r->guard.load(std::memory_order_seq_cst) != guard) continue;
      // Counted first, so whoever sees the write return sees the count.
      interruptions.fetch_add(1, std::memory_order_relaxed);
      ::pthread_kill(r->thread, signal_);
      stuck.push_back(Stuck{r->tid, r->fd.load(std::memory_order_relaxed)});
    }
    return active;
  }

  void Run() {
    const absl::Duration tick = bound_ / 2;
    std::vector<Stuck> stuck;
    absl::Time last_log = absl::InfinitePast();
    uint64_t unlogged = 0;
    mu_.Lock();
    while (true) {
      wake_.WaitWithTimeout(&mu_, tick);
      stuck.clear();
      const bool active = Scan(absl::Now(), stuck);
      if (!stuck.empty()) {
        // Logged without mu_: stderr may be slow, and writers take mu_ to
        // wake us. At most one line a second.
        mu_.Unlock();
        unlogged += stuck.size();
        const absl::Time now = absl::Now();
        if (now - last_log >= absl::Seconds(1)) {
          VFU_LOG(kWarning, "interrupted a write to fd ", stuck.front().fd, " (thread ",
                  stuck.front().tid, ") blocked for over ", absl::FormatDuration(bound_),
                  "; ", unlogged, " such interruptions since the last line. The peer "
                  "that passed the fd made it blocking and keeps it full (a misbehaving "
                  "client; its interrupts are coalesced)");
          last_log = now;
          unlogged = 0;
        }
        mu_.Lock();
        continue;
      }
      if (active) continue;
      parked_.store(true, std::memory_order_seq_cst);
      // A write that started after the look above but before the store
      // did not see parked_: look once more.
      if (Scan(absl::Now(), stuck)) {
        parked_.store(false, std::memory_order_seq_cst);
        continue;
      }
      while (parked_.load(std::memory_order_seq_cst)) wake_.Wait(&mu_);
    }
  }

  absl::Duration bound_;
  int signal_ = 0;
  absl::Mutex mu_;
  absl::CondVar wake_;
  std::vector<ThreadRecord*> records_ ABSL_GUARDED_BY(mu_);
  bool handler_installed_ ABSL_GUARDED_BY(mu_) = false;
};

// The calling thread's record; trivially destructible so the fast path
// needs no TLS guard. RecordOwner frees it at thread exit.
thread_local ThreadRecord* this_thread_record = nullptr;

struct RecordOwner {
  ~RecordOwner() {
    if (this_thread_record != nullptr) Watchdog::Get().Unregister(this_thread_record);
    this_thread_record = nullptr;
  }
};

ABSL_ATTRIBUTE_NOINLINE ThreadRecord* RegisterThisThread() {
  static thread_local RecordOwner owner;
  (void)owner;
  this_thread_record = Watchdog::Get().Register();
  return this_thread_record;
}

}  // namespace

GuardedWriteResult GuardedWrite(int fd, const void* data, size_t size) {
  ThreadRecord* record = this_thread_record;
  if (ABSL_PREDICT_FALSE(record == nullptr)) record = RegisterThisThread();
  const uint64_t guard = record->guard.load(std::memory_order_relaxed);
  record->fd.store(fd, std::memory_order_relaxed);
  record->guard.store(guard + 1, std::memory_order_seq_cst);
  Watchdog& watchdog = Watchdog::Get();
  if (ABSL_PREDICT_FALSE(watchdog.parked_.load(std::memory_order_seq_cst))) watchdog.Wake();
  const ssize_t n = ::write(fd, data, size);
  const int error = errno;
  record->guard.store(guard + 2, std::memory_order_release);
  if (n >= 0) return GuardedWriteResult{GuardedWriteOutcome::kWritten, n, 0};
  if (error == EAGAIN || error == EWOULDBLOCK) {
    return GuardedWriteResult{GuardedWriteOutcome::kWouldBlock, 0, error};
  }
  if (error == EINTR) return GuardedWriteResult{GuardedWriteOutcome::kInterrupted, 0, error};
  return GuardedWriteResult{GuardedWriteOutcome::kFailed, 0, error};
}

bool SetGuardedWriteOptions(const GuardedWriteOptions& o) {
  const int signal = ResolvedSignal(o);
  if (signal < SIGRTMIN || signal > SIGRTMAX || o.stall_bound <= absl::ZeroDuration()) {
    return false;
  }
  absl::MutexLock lock(&options_mu);
  if (started) return false;
  options = o;
  return true;
}

GuardedWriteOptions GetGuardedWriteOptions() {
  absl::MutexLock lock(&options_mu);
  return options;
}

bool GuardedWriteWatchdogIdle() {
  {
    absl::MutexLock lock(&options_mu);
    if (!started) return false;
  }
  return Watchdog::Get().parked_.load(std::memory_order_seq_cst);
}

uint64_t GuardedWriteInterruptions() { return interruptions.load(std::memory_order_relaxed); }

}  // namespace vfu
