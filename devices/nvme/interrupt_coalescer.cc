#include "devices/nvme/interrupt_coalescer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/time/time.h"

namespace vfu::nvme {

InterruptCoalescer::InterruptCoalescer(Signal signal) : signal_(std::move(signal)) {
  timer_ = std::thread([this] { TimerLoop(); });
}

InterruptCoalescer::~InterruptCoalescer() { Stop(); }

void InterruptCoalescer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    active_.store(false, std::memory_order_relaxed);
    pending_.fill(0);
    timer_cv_.Signal();
  }
  if (timer_.joinable()) timer_.join();
}

void InterruptCoalescer::Configure(uint32_t coalescing,
                                   const std::array<bool, kMsixVectors>& disabled) {
  std::array<uint16_t, kMsixVectors> flush;
  uint32_t count = 0;
  {
    absl::MutexLock lock(&mu_);
    const uint32_t threshold = (coalescing & 0xff) + 1;
    const std::chrono::microseconds delay = kTimeUnit * ((coalescing >> 8) & 0xff);
    if (threshold == threshold_ && delay == delay_ && disabled == disabled_) return;
    threshold_ = threshold;
    delay_ = delay;
    active_.store(ActiveLocked(), std::memory_order_relaxed);
    disabled_ = disabled;
    count = TakeAllLocked(flush);
  }
  for (uint32_t i = 0; i < count; ++i) signal_(flush[i]);
}

void InterruptCoalescer::Completed(uint16_t vector, uint32_t entries) {
  if (entries == 0) return;
  // Coalescing off (the default): no lock on the I/O threads' path. Nothing
  // waits then (turning it off signals what waited), and a stale "off" only
  // signals early, which is always allowed.
  if (!active_.load(std::memory_order_relaxed)) {
    signal_(vector);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (vector < kMsixVectors && ActiveLocked() && !disabled_[vector]) {
      uint32_t& pending = pending_[vector];
      const bool first = pending == 0;
      // At most threshold_ - 1 wait, so this never overflows.
      pending += entries;
      if (pending < threshold_) {
        if (first) {
          deadline_[vector] = Clock::now() + delay_;
          timer_cv_.Signal();
        }
        return;
      }
      pending = 0;  // threshold reached: this interrupt covers them all
    }
  }
  signal_(vector);
}

void InterruptCoalescer::SignalNow(uint16_t vector) {
  {
    absl::MutexLock lock(&mu_);
    if (vector < kMsixVectors) pending_[vector] = 0;
  }
  signal_(vector);
}

void InterruptCoalescer::Pause() {
  std::array<uint16_t, kMsixVectors> flush;
  uint32_t count = 0;
  {
    absl::MutexLock lock(&mu_);
    paused_ = true;
    active_.store(false, std::memory_order_relaxed);
    count = TakeAllLocked(flush);
    AwaitTimerIdleLocked();
  }
  for (uint32_t i = 0; i < count; ++i) signal_(flush[i]);
}

void InterruptCoalescer::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
  active_.store(ActiveLocked(), std::memory_order_relaxed);
}

void InterruptCoalescer::Reset() {
  absl::MutexLock lock(&mu_);
  threshold_ = 1;
  delay_ = std::chrono::microseconds(0);
  active_.store(false, std::memory_order_relaxed);
  disabled_.fill(false);
  pending_.fill(0);
  AwaitTimerIdleLocked();
}

uint64_t InterruptCoalescer::timer_signals() const {
  absl::MutexLock lock(&mu_);
  return timer_signals_;
}

void InterruptCoalescer::HoldTimerForTesting(bool hold) {
  absl::MutexLock lock(&mu_);
  timer_held_ = hold;
  AwaitTimerIdleLocked();
  timer_cv_.Signal();
}

uint32_t InterruptCoalescer::TakeAllLocked(std::array<uint16_t, kMsixVectors>& vectors) {
  uint32_t count = 0;
  for (uint16_t vector = 0; vector < kMsixVectors; ++vector) {
    if (pending_[vector] == 0) continue;
    pending_[vector] = 0;
    vectors[count++] = vector;
  }
  return count;
}

void InterruptCoalescer::AwaitTimerIdleLocked() {
  while (firing_) idle_cv_.Wait(&mu_);
}

void InterruptCoalescer::TimerLoop() {
  std::array<uint16_t, kMsixVectors> due;
  for (;;) {
    uint32_t count = 0;
    {
      absl::MutexLock lock(&mu_);
      if (firing_) {
        firing_ = false;
        idle_cv_.SignalAll();
      }
      for (;;) {
        if (stopped_) return;
        const Clock::time_point now = Clock::now();
        std::optional<Clock::time_point> next;
        if (!paused_ && !timer_held_) {
          for (uint16_t vector = 0; vector < kMsixVectors; ++vector) {
            if (pending_[vector] == 0) continue;
            if (deadline_[vector] <= now) {
              pending_[vector] = 0;
              due[count++] = vector;
            } else if (!next || deadline_[vector] < *next) {
              next = deadline_[vector];
            }
          }
        }
        if (count > 0) break;
        if (next) {
          // Woken early by a new deadline or spuriously: the loop looks again.
          timer_cv_.WaitWithTimeout(&mu_, absl::FromChrono(*next - now));
        } else {
          timer_cv_.Wait(&mu_);
        }
      }
      firing_ = true;
      timer_signals_ += count;
    }
    for (uint32_t i = 0; i < count; ++i) signal_(due[i]);
  }
}

}  // namespace vfu::nvme
