#include "vfu/dispatch/worker_pool.h"

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

}  // namespace

WorkerPool::WorkerPool(size_t num_threads) : num_threads_(num_threads) {
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
  ready_.signal();
}

WorkerPool::Task WorkerPool::Dequeue(moodycamel::ConsumerToken& token) {
  Task task;
  // The semaphore unit guarantees an item, but the queue is not
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

void WorkerPool::WorkerLoop() {
  current_pool = this;
  moodycamel::ConsumerToken token(queue_);
  for (;;) {
    while (!ready_.wait()) continue;  // As BlockingConcurrentQueue does.
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
