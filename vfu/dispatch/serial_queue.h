// SerialQueue: a strand that runs its tasks on a WorkerPool one at a time,
// in the order they were posted.
//
// Each client connection owns one, so that a client's commands never run
// concurrently or out of order, while different connections share the pool
// and run in parallel. Main calls:
//
//   SerialQueue strand(pool);
//   strand.Post([] { ... });   // any thread
//   strand.Pause();            // back-pressure: start nothing new
//   strand.Resume();
//   strand.WaitIdle();         // before destroying it
//
// Scheduling. The strand is never bound to a thread. When the queue goes
// from empty to non-empty (and the strand is neither scheduled nor paused)
// Post() submits one "runner" task to the pool. The runner claims and runs up
// to `max_batch` tasks, then either resubmits itself (more work is waiting:
// this bounds how long one busy client holds a worker while others wait) or
// clears its "scheduled" mark and returns. The mark and the count of
// unclaimed tasks share one atomic word, so "the runner found the queue
// empty" and "Post() added a task" cannot both conclude that the other one
// will schedule the runner; see serial_queue.cc.
//
// Ordering and memory: tasks posted by one thread run in that thread's order;
// a task posted after another Post() returned (as seen through any
// happens-before edge) runs after that one. Everything a thread did before
// Post(task) is visible to `task`, and everything a task did is visible to
// the next task of the strand and to a WaitIdle() that returns after it.
// Never two tasks of one strand at once, but consecutive tasks may run on
// different threads.
//
// Thread safety: every method is thread-safe (Post is multi-producer), and
// may be called from this strand's own tasks, except WaitIdle() (it would
// wait for itself).
//
// Lifetime: the WorkerPool must outlive the strand, and the strand must
// outlive every runner it submitted. To destroy it: stop every producer
// (nothing may Post() any more), call WaitIdle(), then delete. Tasks still
// queued at that point (the strand was paused) are destroyed without running.
// The destructor checks that no runner is scheduled. Shutting the pool down
// first also works (its drain runs the strand's runners to the end), but a
// Post() after the pool's Shutdown() strands its task: the pool drops the
// runner, and WaitIdle() would never return.
#ifndef VFU_DISPATCH_SERIAL_QUEUE_H_
#define VFU_DISPATCH_SERIAL_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "vfu/dispatch/worker_pool.h"

namespace vfu {

class SerialQueue {
 public:
  using Task = absl::AnyInvocable<void()>;

  // Tasks one runner executes before yielding its worker to other strands.
  static constexpr int kDefaultMaxBatch = 64;

  // `pool` must outlive the strand. `max_batch` > 0.
  explicit SerialQueue(WorkerPool& pool, int max_batch = kDefaultMaxBatch);

  // Requires: idle (see WaitIdle()) and no concurrent Post(). Destroys the
  // tasks that never ran.
  ~SerialQueue();

  SerialQueue(const SerialQueue&) = delete;
  SerialQueue& operator=(const SerialQueue&) = delete;

  // Queues `task` (non-empty) to run after every task posted before it.
  // Never blocks: one allocation, one atomic exchange and a short
  // compare-and-swap loop; on an idle strand also a WorkerPool::Submit().
  void Post(Task task);

  // From the next task on, no task of this strand starts until Resume().
  // A task already claimed when Pause() returns (at most one, possibly
  // running now) still completes. Called from inside a task, that task is
  // the last one to run. Posting continues to queue. Pauses do not nest.
  void Pause();

  // Lets tasks start again; schedules the strand if work is pending.
  void Resume();

  // Blocks until no runner is scheduled or running: either every task
  // posted before the call has run, or the strand is paused and the rest
  // wait for Resume(). Not from one of this strand's tasks.
  void WaitIdle() ABSL_LOCKS_EXCLUDED(idle_mu_);

  // True when called from one of this strand's tasks.
  bool IsCurrent() const;

  bool paused() const {
    return (state_.load(std::memory_order_relaxed) & kPaused) != 0;
  }
  // Posted tasks that have not started. Relaxed: a snapshot.
  uint64_t pending() const {
    return state_.load(std::memory_order_relaxed) & kCountMask;
  }
  // Tasks that have finished. Relaxed: a statistic, not a fence.
  uint64_t tasks_run() const {
    return tasks_run_.load(std::memory_order_relaxed);
  }

 private:
  // A node of the intrusive multi-producer single-consumer list (Dmitry
  // Vyukov's): producers swap themselves in at head_, the single consumer
  // (the current runner) walks from tail_. stub_ keeps the list non-empty.
  struct Node {
    Node() = default;
    explicit Node(Task t) : task(std::move(t)) {}
    std::atomic<Node*> next{nullptr};
    Task task;
  };

  // state_ layout:
  //
  //    63     62       61       60       59..48   47 ............ 0
  //   +-----+--------+--------+---------+--------+-------------------+
  //   |  0  | waiter | paused | sched'd |   0    | unclaimed tasks   |
  //   +-----+--------+--------+---------+--------+-------------------+
  //
  // kScheduled: a runner is queued on the pool or running.
  // kPaused:    Pause() is in effect.
  // kIdleWaiter: a WaitIdle() may be blocked on idle_mu_; the runner then
  //             clears kScheduled while holding idle_mu_.
  static constexpr uint64_t kCountMask = (uint64_t{1} << 48) - 1;
  static constexpr uint64_t kScheduled = uint64_t{1} << 60;
  static constexpr uint64_t kPaused = uint64_t{1} << 61;
  static constexpr uint64_t kIdleWaiter = uint64_t{1} << 62;

  void Schedule();
  // The runner: runs up to max_batch_ tasks, then reschedules or goes idle.
  void Run() ABSL_LOCKS_EXCLUDED(idle_mu_);
  // True while no runner is scheduled (WaitIdle's condition).
  bool NotScheduled() const;

  // Intrusive list operations. PushNode() from any thread; PopNode() only
  // by the runner, after claiming a task from state_.
  void PushNode(Node* node);
  Node* TryPopNode();
  Node* PopNode();

  WorkerPool& pool_;
  const int max_batch_;
  std::atomic<uint64_t> state_{0};
  std::atomic<uint64_t> tasks_run_{0};

  std::atomic<Node*> head_;  // Producers' end.
  Node* tail_;               // Consumer's end; runner (or destructor) only.
  Node stub_;

  // Guards no data: WaitIdle() waits on it for NotScheduled().
  mutable absl::Mutex idle_mu_;
};

}  // namespace vfu

#endif  // VFU_DISPATCH_SERIAL_QUEUE_H_
