#include "vfu/dispatch/worker_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/base/config.h"
#include "vfu/base/check.h"

namespace vfu {
namespace {

// The pool whose worker is the current thread, for IsPoolThread().
thread_local const WorkerPool* current_pool = nullptr;

#ifdef ABSL_HAVE_THREAD_SANITIZER
constexpr bool kUnderThreadSanitizer = true;
#else
constexpr bool kUnderThreadSanitizer = false;
#endif

int64_t NonNegativeNanoseconds(absl::Duration d) {
  return std::max<int64_t>(absl::ToInt64Nanoseconds(d), 0);
}

}  // namespace

WorkerPool::WorkerPool(size_t num_threads)
    : WorkerPool(num_threads, PollOptions()) {}

WorkerPool::WorkerPool(size_t num_threads, PollOptions poll)
    : num_threads_(num_threads),
      idle_spin_ns_(NonNegativeNanoseconds(poll.idle_spin)),
      slow_yield_ns_(NonNegativeNanoseconds(poll.slow_yield)),
      backoff_ns_(NonNegativeNanoseconds(poll.backoff)) {
  VFU_CHECK(num_threads > 0, "a WorkerPool needs at least one thread");
  threads_.reserve(num_threads);
  for (size_t i = 0; i < num_threads; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::IsPoolThread() const { return current_pool == this; }

void WorkerPool::Submit(Task task) {
  VFU_CHECK(task != nullptr, "WorkerPool::Submit needs a non-empty task");
  // Count before enqueueing, so that outstanding_ never falls below the
  // number of tasks queued or running: Shutdown() cannot see zero while a
  // task is on its way into the queue.
  const uint64_t before = outstanding_.fetch_add(1, std::memory_order_seq_cst);
  if (before & kClosed) {
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
    tasks_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;  // `task` is destroyed here, unrun.
  }
  Enqueue(std::move(task));
}

void WorkerPool::Enqueue(Task task) {
  {
    absl::MutexLockMaybe lock(kUnderThreadSanitizer ? &tsan_queue_mu_
                                                    : nullptr);
    const bool queued = queue_.enqueue(std::move(task));
    VFU_CHECK(queued, "WorkerPool queue allocation failed");
  }
  // A polling worker takes the task without a wake-up; a sleeping one
  // would otherwise get it first (ready_ wakes waiters before pollers see a
  // unit). The claim is made after the enqueue, so the poller finds it.
  int polling = kPolling;
  if (poll_state_.compare_exchange_strong(polling, kClaimed,
                                          std::memory_order_acq_rel)) {
    return;
  }
  ready_.signal();
}

WorkerPool::Task WorkerPool::Dequeue(moodycamel::ConsumerToken& token) {
  Task task;
  // The semaphore unit (or claim) guarantees an item, but the queue is not
  // linearizable: a just-enqueued item can take a moment to show up.
  for (;;) {
    absl::MutexLockMaybe lock(kUnderThreadSanitizer ? &tsan_queue_mu_
                                                    : nullptr);
    if (queue_.try_dequeue(token, task)) return task;
  }
}

bool WorkerPool::Quiescent() const {
  return (outstanding_.load(std::memory_order_seq_cst) & ~kClosed) == 0;
}

void WorkerPool::Shutdown() {
  VFU_CHECK(!IsPoolThread(), "WorkerPool::Shutdown from its own worker");
  absl::MutexLock lock(&shutdown_mu_);
  if (threads_.empty()) return;  // Already shut down.

  // Dekker-style handshake with WorkerLoop(): we store draining_ and then
  // read outstanding_; a worker decrements outstanding_ and then reads
  // draining_. Both seq_cst, so either we see the zero or the worker sees
  // the flag and touches idle_mu_, which re-evaluates our condition.
  draining_.store(true, std::memory_order_seq_cst);
  for (;;) {
    idle_mu_.LockWhen(absl::Condition(this, &WorkerPool::Quiescent));
    idle_mu_.Unlock();
    // Close only at exactly zero: if a Submit() slipped in after the wait,
    // the exchange fails and we wait for that task as well.
    uint64_t expected = 0;
    if (outstanding_.compare_exchange_strong(expected, kClosed,
                                             std::memory_order_seq_cst)) {
      break;
    }
  }

  // The queue is empty and nothing can enter it now; one empty task per
  // worker tells it to exit.
  for (size_t i = 0; i < threads_.size(); ++i) Enqueue(Task());
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void WorkerPool::WaitForTask() {
  using Clock = std::chrono::steady_clock;
  // Poll only when no task is queued or running anywhere: a worker busy
  // with device code already holds a CPU, and on a small machine a poller
  // next to it would take the other one from the IO thread and the client.
  // (A queued task means a unit is ready for us anyway.)
  int none = kNoPoller;
  if (idle_spin_ns_ <= 0 ||
      (outstanding_.load(std::memory_order_relaxed) & ~kClosed) != 0 ||
      Clock::now().time_since_epoch().count() <
          no_poll_until_.load(std::memory_order_relaxed) ||
      !poll_state_.compare_exchange_strong(none, kPolling,
                                           std::memory_order_acq_rel)) {
    while (!ready_.wait()) continue;  // As BlockingConcurrentQueue does.
    return;
  }
  // Only this worker changes the state away from kClaimed, and submitters
  // only move it from kPolling to kClaimed.
  Clock::time_point now = Clock::now();
  Clock::time_point until = now + std::chrono::nanoseconds(idle_spin_ns_);
  for (;;) {
    if (poll_state_.load(std::memory_order_acquire) == kClaimed) {
      poll_state_.store(kNoPoller, std::memory_order_release);
      break;
    }
    // A unit signalled before we started polling (or while no one did).
    if (ready_.tryWait()) {
      // A claim that landed meanwhile is a second task: give it back to
      // the semaphore for another worker (or for our next wait).
      if (poll_state_.exchange(kNoPoller, std::memory_order_acq_rel) ==
          kClaimed) {
        ready_.signal();
      }
      break;
    }
    if (now >= until) {
      int polling = kPolling;
      if (poll_state_.compare_exchange_strong(polling, kNoPoller,
                                              std::memory_order_acq_rel)) {
        while (!ready_.wait()) continue;
        return;
      }
      // Claimed just now.
      poll_state_.store(kNoPoller, std::memory_order_release);
      break;
    }
    // Let a thread that shares this CPU (the IO thread, the client) run:
    // it is what produces the next task. A yield that took a time slice
    // means another thread (another process, a busy-polling client) wants
    // this CPU: polling would then delay the next task by slices instead
    // of saving a wake-up, so stop (see PollOptions::backoff).
    ::sched_yield();
    const Clock::time_point back = Clock::now();
    if (backoff_ns_ > 0 && back - now >= std::chrono::nanoseconds(slow_yield_ns_)) {
      no_poll_until_.store(
          (back + std::chrono::nanoseconds(backoff_ns_)).time_since_epoch().count(),
          std::memory_order_relaxed);
      poll_backoffs_.fetch_add(1, std::memory_order_relaxed);
      until = back;  // Stop at the next look, as at the end of the window.
    }
    now = back;
  }
  spin_hits_.fetch_add(1, std::memory_order_relaxed);
}

void WorkerPool::WorkerLoop() {
  current_pool = this;
  moodycamel::ConsumerToken token(queue_);
  for (;;) {
    WaitForTask();
    Task task = Dequeue(token);
    if (task == nullptr) break;  // Shutdown's exit marker.
    task();
    // Destroy the captures before the task counts as finished: once the
    // count reaches zero, Shutdown() may return and its caller tear down
    // whatever they point to.
    task = nullptr;
    tasks_run_.fetch_add(1, std::memory_order_relaxed);
    if (outstanding_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        draining_.load(std::memory_order_seq_cst)) {
      absl::MutexLock wake(&idle_mu_);  // Unlocking re-checks Quiescent().
    }
  }
  current_pool = nullptr;
}

}  // namespace vfu
