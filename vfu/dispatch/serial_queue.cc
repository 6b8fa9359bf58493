#include "vfu/dispatch/serial_queue.h"

#include <thread>
#include <utility>

#include "vfu/base/check.h"

namespace vfu {
namespace {

// The strand whose task the current thread is running, for IsCurrent().
thread_local const SerialQueue* current_strand = nullptr;

class ScopedCurrentStrand {
 public:
  explicit ScopedCurrentStrand(const SerialQueue* strand)
      : saved_(current_strand) {
    current_strand = strand;
  }
  ~ScopedCurrentStrand() { current_strand = saved_; }

 private:
  const SerialQueue* saved_;
};

}  // namespace

SerialQueue::SerialQueue(WorkerPool& pool, int max_batch)
    : pool_(pool), max_batch_(max_batch), head_(&stub_), tail_(&stub_) {
  VFU_CHECK(max_batch > 0, "SerialQueue max_batch must be positive");
}

SerialQueue::~SerialQueue() {
  VFU_CHECK((state_.load(std::memory_order_acquire) & kScheduled) == 0,
            "SerialQueue destroyed with a runner scheduled; WaitIdle() first");
  // As absl::Notification does: wait until a runner that woke WaitIdle()
  // has left idle_mu_ before the mutex goes away.
  { absl::MutexLock lock(&idle_mu_); }
  // Unclaimed tasks (the strand was paused) are destroyed without running.
  // No producer may be mid-push, so every node is linked.
  while (Node* node = TryPopNode()) delete node;
}

void SerialQueue::Post(Task task) {
  VFU_CHECK(task != nullptr, "SerialQueue::Post needs a non-empty task");
  // Link the node before counting it: a runner that claims this count must
  // find a node to pop (at worst it waits for another poster's half-done
  // push, see PopNode()).
  PushNode(new Node(std::move(task)));

  uint64_t state = state_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = state + 1;
    if ((state & (kScheduled | kPaused)) == 0) next |= kScheduled;
  } while (!state_.compare_exchange_weak(state, next,
                                         std::memory_order_acq_rel,
                                         std::memory_order_relaxed));
  // Only the poster that set kScheduled submits the runner. The runner
  // clears kScheduled with a compare-and-swap on this same word, and only
  // if the count it sees is zero (or the strand is paused); so a Post()
  // racing with "the runner drained the queue" either lands before that
  // swap (which then fails, and the runner sees our task) or after it (we
  // see kScheduled clear and schedule a new runner). No task is stranded
  // and no strand gets two runners.
  if ((state & kScheduled) == 0 && (next & kScheduled) != 0) Schedule();
}

void SerialQueue::Pause() {
  state_.fetch_or(kPaused, std::memory_order_acq_rel);
}

void SerialQueue::Resume() {
  // Always a read-modify-write, even when not paused: callers rely on a
  // Resume() being ordered with a concurrent Pause() (Connection's strand
  // pauses itself while the IO thread may resume it for a close).
  uint64_t state = state_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = state & ~kPaused;
    // A runner that saw kPaused has cleared kScheduled and left; whoever
    // clears kPaused owns restarting it.
    if ((next & kCountMask) > 0 && (next & kScheduled) == 0) {
      next |= kScheduled;
    }
  } while (!state_.compare_exchange_weak(state, next,
                                         std::memory_order_acq_rel,
                                         std::memory_order_relaxed));
  if ((state & kScheduled) == 0 && (next & kScheduled) != 0) Schedule();
}

bool SerialQueue::NotScheduled() const {
  return (state_.load(std::memory_order_acquire) & kScheduled) == 0;
}

void SerialQueue::WaitIdle() {
  VFU_CHECK(!IsCurrent(), "SerialQueue::WaitIdle from its own task");
  // Announce ourselves first: a runner that clears kScheduled after this
  // sees kIdleWaiter and does so under idle_mu_, which wakes us. If it had
  // already cleared it, we see that here and never block.
  const uint64_t state =
      state_.fetch_or(kIdleWaiter, std::memory_order_acq_rel);
  if ((state & kScheduled) == 0) return;
  absl::MutexLock lock(&idle_mu_);
  idle_mu_.Await(absl::Condition(this, &SerialQueue::NotScheduled));
}

bool SerialQueue::IsCurrent() const { return current_strand == this; }

void SerialQueue::Schedule() {
  pool_.Submit([this] { Run(); });
}

void SerialQueue::Run() {
  int ran = 0;
  uint64_t state = state_.load(std::memory_order_acquire);
  for (;;) {
    const bool runnable =
        (state & kCountMask) > 0 && (state & kPaused) == 0;
    if (runnable && ran < max_batch_) {
      // Claim one task. Claiming with a compare-and-swap rather than
      // checking kPaused and then popping is what makes Pause() exact: once
      // it has returned, every later claim sees kPaused.
      if (!state_.compare_exchange_weak(state, state - 1,
                                        std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        continue;
      }
      Node* node = PopNode();
      {
        ScopedCurrentStrand scope(this);
        node->task();
        delete node;  // Runs the task's destructors on the strand too.
      }
      ++ran;
      tasks_run_.fetch_add(1, std::memory_order_relaxed);
      state = state_.load(std::memory_order_acquire);
      continue;
    }
    if (runnable) {
      // Batch used up: go to the back of the pool's queue so other strands
      // get a worker. kScheduled stays set; the next runner inherits it.
      Schedule();
      return;
    }
    // Nothing runnable (drained, or paused): drop kScheduled. If that swap
    // fails, a Post() or Pause() got in between; look again.
    if ((state & kIdleWaiter) != 0) {
      absl::MutexLock lock(&idle_mu_);
      if (state_.compare_exchange_strong(state,
                                         state & ~(kScheduled | kIdleWaiter),
                                         std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
        // The unlock is our last touch of *this: the waiter cannot return
        // before it, and ~SerialQueue takes idle_mu_ once more.
        return;
      }
    } else if (state_.compare_exchange_weak(state, state & ~kScheduled,
                                            std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
      // That swap was our last touch of *this; the owner may destroy it
      // now.
      return;
    }
  }
}

void SerialQueue::PushNode(Node* node) {
  node->next.store(nullptr, std::memory_order_relaxed);
  Node* prev = head_.exchange(node, std::memory_order_acq_rel);
  // Between the exchange and this store the list is cut after `prev`; the
  // consumer sees it as empty past that point (see TryPopNode()).
  prev->next.store(node, std::memory_order_release);
}

SerialQueue::Node* SerialQueue::TryPopNode() {
  Node* tail = tail_;
  Node* next = tail->next.load(std::memory_order_acquire);
  if (tail == &stub_) {
    if (next == nullptr) return nullptr;
    tail_ = next;
    tail = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  if (tail != head_.load(std::memory_order_acquire)) {
    return nullptr;  // A push is half done; its node is not reachable yet.
  }
  // `tail` is the last node: put the stub behind it so it can be unlinked.
  PushNode(&stub_);
  next = tail->next.load(std::memory_order_acquire);
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  return nullptr;
}

SerialQueue::Node* SerialQueue::PopNode() {
  // We hold a claim, so a node is there; TryPopNode() only fails while some
  // poster sits between its exchange and its link, a few instructions.
  for (;;) {
    if (Node* node = TryPopNode()) return node;
    std::this_thread::yield();
  }
}

}  // namespace vfu
