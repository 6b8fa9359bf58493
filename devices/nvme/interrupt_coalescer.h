// InterruptCoalescer: applies NVMe interrupt coalescing (Set Features 08h,
// Interrupt Coalescing, and 09h, Interrupt Vector Configuration) to the
// interrupts of I/O completion queues.
//
// Semantics (the NVMe spec was not at hand: checked against Microsoft's
// NVME_CDW11_FEATURE_INTERRUPT_COALESCING reference, which restates the
// spec's field definitions; the versions of QEMU's hw/nvme/ctrl.c seen only
// store and report the value, so offer no behaviour to compare with):
// - THR (bits 7:0) is 0-based: aggregate THR + 1 completion entries per
//   interrupt vector. TIME (bits 15:8) is the longest delay in 100 us units
//   since the first entry not yet signalled. The vector is signalled when
//   either condition is met.
// - "If either TIME or THR is cleared to 0h, interrupt coalescing is
//   implicitly disabled": TIME 0 means no delay, THR 0 one entry. So THR=3
//   with TIME=0 signals every batch, like the reset value 0/0.
// - Not applied to the admin completion queue; CD=1 in Feature 09h turns it
//   off for one vector. A controller reset returns both features to 0.
// A vector signalled for another reason (the admin CQ sharing vector 0)
// covers the entries waiting on it.
//
// Bounds: state is fixed per vector (kMsixVectors); one timer thread per
// controller, sleeping on a CondVar until the earliest deadline (no busy
// wait); an entry waits at most TIME (<= 25.5 ms) plus the thread's wake-up
// latency. The timer only raises vectors through `signal`: it never touches
// a queue, so deleting a completion queue with entries waiting is safe (the
// vector is still signalled on time; a spurious interrupt is harmless).
//
// Thread-safe. `signal` runs without the coalescer's lock held, on the
// thread that called Completed / SignalNow / Pause / Configure, or on the
// timer thread; it must not call back into the coalescer.
#ifndef VFU_DEVICES_NVME_INTERRUPT_COALESCER_H_
#define VFU_DEVICES_NVME_INTERRUPT_COALESCER_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "devices/nvme/nvme_defs.h"

namespace vfu::nvme {

class InterruptCoalescer {
 public:
  using Signal = std::function<void(uint16_t vector)>;
  using Clock = std::chrono::steady_clock;
  // TIME's unit.
  static constexpr std::chrono::microseconds kTimeUnit{100};

  // Starts the timer thread. No coalescing until Configure.
  explicit InterruptCoalescer(Signal signal);
  // Stop().
  ~InterruptCoalescer();
  InterruptCoalescer(const InterruptCoalescer&) = delete;
  InterruptCoalescer& operator=(const InterruptCoalescer&) = delete;

  // Ends the timer thread; entries still waiting are not signalled. Later
  // calls signal at once. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The Feature 08h value (THR 7:0, TIME 15:8; other bits ignored) and the
  // CD bit of every vector (Feature 09h). Entries waiting are signalled now
  // (early is always allowed), so a changed setting never strands them.
  void Configure(uint32_t coalescing, const std::array<bool, kMsixVectors>& disabled)
      ABSL_LOCKS_EXCLUDED(mu_);

  // `entries` completions were posted to an I/O completion queue with
  // interrupts enabled on `vector`: signals it now or once THR + 1 entries
  // or TIME have passed.
  void Completed(uint16_t vector, uint32_t entries) ABSL_LOCKS_EXCLUDED(mu_);

  // Signals `vector` now (a completion never coalesced, e.g. the admin CQ);
  // entries waiting on it are covered by this interrupt.
  void SignalNow(uint16_t vector) ABSL_LOCKS_EXCLUDED(mu_);

  // Quiesce or migration stop: signals every vector with entries waiting,
  // then, until Resume, signals each completion at once and fires no timer.
  // Returns once no timer signal is in progress, so nothing waits after it.
  void Pause() ABSL_LOCKS_EXCLUDED(mu_);
  void Resume() ABSL_LOCKS_EXCLUDED(mu_);

  // Controller reset: drops the entries waiting without signalling them
  // (NVMe 1.4 section 7.3: no completion survives a reset) and clears the
  // settings. Returns once no timer signal is in progress. Keeps Pause.
  void Reset() ABSL_LOCKS_EXCLUDED(mu_);

  // Interrupts the timer raised (for tests and the benchmark).
  uint64_t timer_signals() const ABSL_LOCKS_EXCLUDED(mu_);

  // Tests: while held, the timer signals nothing (once it returns, no timer
  // signal is in progress either); released, it signals whatever came due
  // meanwhile. Lets a test assert that entries are held back without
  // racing TIME (at most 25.5 ms) on a slow machine.
  void HoldTimerForTesting(bool hold) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every vector's waiting entries; the ones that had some.
  uint32_t TakeAllLocked(std::array<uint16_t, kMsixVectors>& vectors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until the timer thread is not signalling.
  void AwaitTimerIdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ActiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return threshold_ > 1 && delay_.count() > 0 && !paused_ && !stopped_;
  }

  const Signal signal_;

  mutable absl::Mutex mu_;
  absl::CondVar timer_cv_;  // new deadline, stop
  absl::CondVar idle_cv_;   // `firing_` went false
  // THR + 1 (entries) and TIME (as a duration); 1 and 0: no coalescing.
  uint32_t threshold_ ABSL_GUARDED_BY(mu_) = 1;
  std::chrono::microseconds delay_ ABSL_GUARDED_BY(mu_){0};
  std::array<bool, kMsixVectors> disabled_ ABSL_GUARDED_BY(mu_) = {};
  // Per vector: entries posted since its last interrupt, and when the first
  // of them must be signalled at the latest.
  std::array<uint32_t, kMsixVectors> pending_ ABSL_GUARDED_BY(mu_) = {};
  std::array<Clock::time_point, kMsixVectors> deadline_ ABSL_GUARDED_BY(mu_) = {};
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  // ActiveLocked(), readable without the lock (written under it).
  std::atomic<bool> active_{false};
  bool timer_held_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // The timer thread is calling `signal_` outside the lock.
  bool firing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t timer_signals_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread timer_;  // last: started once the state above exists
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_INTERRUPT_COALESCER_H_
