// WorkerPool: a fixed set of threads that run submitted tasks.
//
// The IO thread never runs device code; it hands each complete message to a
// worker through this pool (usually via a per-connection SerialQueue, which
// keeps one client's commands in order). Main calls:
//
//   WorkerPool pool(4);
//   pool.Submit([] { ... });   // from any thread
//   pool.Shutdown();           // runs what is queued, then joins
//
// Tasks run in no particular order and in parallel: the queue (moodycamel's
// lock-free ConcurrentQueue plus its LightweightSemaphore, i.e. what its
// BlockingConcurrentQueue is made of) is FIFO per submitting thread only.
// Ordering is SerialQueue's job. An idle worker spins briefly in the
// semaphore before sleeping, which keeps the wake-up latency of a burst of
// requests low. With PollOptions::idle_spin, a worker that goes idle while
// no other task is queued or running polls for the next task that long
// first, yielding its CPU between looks (one poller at a time), and a task
// submitted meanwhile goes to it rather than to a sleeping worker: it needs
// neither a futex wake nor a sleeping CPU woken, which on a small machine
// costs about a third of a socket round trip. A yield that took a time
// slice (the CPU is wanted elsewhere) stops polling for a while.
//
// Shutdown runs every queued task, including tasks that running tasks submit
// while the pool drains (a SerialQueue rescheduling itself, say), and joins
// the threads once the pool is empty and idle. A task submitted after that is
// destroyed, unrun, on the submitting thread and counted in tasks_dropped():
// stop every producer (the IO thread, the strands) before shutting down.
//
// Memory ordering: everything a thread did before Submit(task) is visible to
// `task` when it runs.
//
// Thread safety: Submit() and the counters are thread-safe. Shutdown() is
// thread-safe and idempotent but must not be called from one of the pool's
// own threads (it would join itself); a second caller waits for the first.
#ifndef VFU_DISPATCH_WORKER_POOL_H_
#define VFU_DISPATCH_WORKER_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace vfu {

class WorkerPool {
 public:
  using Task = absl::AnyInvocable<void()>;

  // Polling for the next task; see the file comment.
  struct PollOptions {
    // How long an idle worker polls before it sleeps; zero: never polls.
    absl::Duration idle_spin = absl::ZeroDuration();
    // A yield while polling that took at least `slow_yield` (another
    // thread held the CPU for most of a time slice) stops polling in every
    // worker during `backoff`; zero `backoff`: never stops.
    absl::Duration slow_yield = absl::Microseconds(500);
    absl::Duration backoff = absl::Milliseconds(10);
  };

  // Starts `num_threads` (> 0) worker threads; without PollOptions they
  // never poll.
  explicit WorkerPool(size_t num_threads);
  WorkerPool(size_t num_threads, PollOptions poll);

  // Calls Shutdown().
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` (non-empty) to run once on some worker thread. Never
  // blocks. After Shutdown() has finished, destroys `task` without running it.
  void Submit(Task task);

  // Runs every queued task (and those they submit), then joins the workers.
  // Blocks as long as any task does. Idempotent. Not from a pool thread.
  void Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_, idle_mu_);

  // True when called from one of this pool's worker threads.
  bool IsPoolThread() const;

  size_t num_threads() const { return num_threads_; }

  // Tasks that have finished running. Relaxed: a statistic, not a fence.
  uint64_t tasks_run() const {
    return tasks_run_.load(std::memory_order_relaxed);
  }
  // Tasks an idle worker took while polling, without a wake-up.
  uint64_t spin_hits() const {
    return spin_hits_.load(std::memory_order_relaxed);
  }
  // Times polling stopped for a slow yield.
  uint64_t poll_backoffs() const {
    return poll_backoffs_.load(std::memory_order_relaxed);
  }
  // True while an idle worker polls for a task (a snapshot, for tests).
  bool worker_polling() const {
    return poll_state_.load(std::memory_order_acquire) == kPolling;
  }
  // Tasks destroyed unrun because they came after Shutdown().
  uint64_t tasks_dropped() const {
    return tasks_dropped_.load(std::memory_order_relaxed);
  }

 private:
  // outstanding_ packs a count of submitted-but-unfinished tasks with a
  // "closed" bit that Shutdown() sets once the count reaches zero.
  static constexpr uint64_t kClosed = uint64_t{1} << 63;

  // poll_state_: no worker polls; one polls; a submitter handed the polling
  // worker a task (claimed it) instead of signalling ready_.
  static constexpr int kNoPoller = 0;
  static constexpr int kPolling = 1;
  static constexpr int kClaimed = 2;

  void WorkerLoop();
  // Returns once the caller may dequeue a task: it took a unit of ready_ or
  // a claim. Polls first if idle_spin_ns_ > 0, the pool has nothing else
  // to do and no other worker polls; then sleeps in the semaphore.
  void WaitForTask();
  // The queue proper. Enqueue() hands the task to the polling worker if
  // there is one, else signals ready_; Dequeue() requires a unit taken from
  // ready_ or a claim, each of which stands for one enqueued task.
  void Enqueue(Task task) ABSL_LOCKS_EXCLUDED(tsan_queue_mu_);
  Task Dequeue(moodycamel::ConsumerToken& token)
      ABSL_LOCKS_EXCLUDED(tsan_queue_mu_);
  // True once no submitted task is queued or running.
  bool Quiescent() const;

  const size_t num_threads_;
  const int64_t idle_spin_ns_;
  const int64_t slow_yield_ns_;
  const int64_t backoff_ns_;
  // kNoPoller, kPolling or kClaimed. One poller at most: on 2 CPUs a
  // second one would take the CPU the IO thread or the client needs.
  std::atomic<int> poll_state_{kNoPoller};
  // steady_clock ticks before which no worker polls (contention backoff).
  std::atomic<int64_t> no_poll_until_{0};
  std::atomic<uint64_t> spin_hits_{0};
  std::atomic<uint64_t> poll_backoffs_{0};
  moodycamel::ConcurrentQueue<Task> queue_;
  // Counts queued tasks; workers sleep on it. Composed by hand rather than
  // taken as BlockingConcurrentQueue so that ThreadSanitizer builds can
  // wrap the queue operations alone in tsan_queue_mu_.
  moodycamel::LightweightSemaphore ready_;
  // Held around queue_ operations in ThreadSanitizer builds only. The
  // queue orders its slots with standalone atomic fences, which TSan does
  // not model, so it would report races on task storage that the queue
  // does order. The lock makes that order visible; other builds skip it.
  absl::Mutex tsan_queue_mu_;
  std::atomic<uint64_t> outstanding_{0};
  // Set (seq_cst) when Shutdown() starts waiting for quiescence; from then on
  // a worker that drops outstanding_ to zero wakes it through idle_mu_.
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> tasks_run_{0};
  std::atomic<uint64_t> tasks_dropped_{0};

  // Guards no data: Shutdown() waits on it for Quiescent().
  mutable absl::Mutex idle_mu_;

  absl::Mutex shutdown_mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(shutdown_mu_);
};

}  // namespace vfu

#endif  // VFU_DISPATCH_WORKER_POOL_H_
