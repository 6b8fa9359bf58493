// Reactor: the IO thread of one server. It owns an epoll set of
// non-blocking fds (level-triggered) and a queue of tasks other threads post
// to it.
//
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<Reactor> reactor, Reactor::Create());
//   VFU_RETURN_IF_ERROR(reactor->Watch(listen_fd, EPOLLIN, &acceptor));
//   reactor->Start();                       // spawns the IO thread
//   ...
//   reactor->Post([conn] { conn->Send(reply); });  // from a worker thread
//   ...
//   reactor->Stop();                        // or let the destructor do it
//
// Each loop iteration waits in epoll_wait, calls Handler::OnReady for every
// ready fd, then runs posted tasks (an iteration polling for a Poller may
// skip the epoll_wait; see Poller). Only the IO thread touches sockets;
// every other thread hands it work with Post().
//
// Threads:
//   Create, Start, Stop, destructor   any thread but the IO thread.
//   Post, IsIoThread, counters,
//   set_busy_poll, set_poll_backoff   any thread.
//   Watch, Modify, Unwatch,
//   AddPoller, RemovePoller           the IO thread (from OnReady or a
//                                     task), or any thread while the loop is
//                                     not running: before Start() or after
//                                     Stop() returned, synchronized with
//                                     those calls by the caller. Checked
//                                     (VFU_CHECK) in every build mode.
//
// Task order: tasks posted by one thread run in the order that thread posted
// them. Tasks from different threads interleave in no promised order (the
// queue is moodycamel's ConcurrentQueue, FIFO per producer, not globally).
// Every task runs on the IO thread and is destroyed there right after it
// runs.
//
// Wake-ups: a Post only writes the eventfd when the queue may have gone from
// empty to non-empty (an atomic "wake pending" flag, see Post() in the .cc),
// so a burst of posts costs one wake-up. While the loop polls instead of
// blocking (set_busy_poll, or a registered Poller that expects a post) it
// holds that flag, so posts cost none.
//
// Lifetime and shutdown: Start() once; Stop() exits the loop and joins the
// thread; it is idempotent and the destructor calls it. Every task whose
// Post() happened before Stop() was called runs before Stop() returns, and
// so do tasks those tasks post while the loop drains (a task that keeps
// re-posting itself would keep Stop() from returning). A task posted after
// Stop() was called may run if the loop has not exited yet; otherwise it is
// destroyed without running, on the posting thread or on the thread running
// Stop() or the destructor. Stop() without Start() destroys every queued
// task without running it. Handlers are not owned: a handler must stay alive
// until it is unwatched or the loop has stopped, and the reactor must not be
// destroyed from its own IO thread.
#ifndef VFU_REACTOR_REACTOR_H_
#define VFU_REACTOR_REACTOR_H_

#include <concurrentqueue/concurrentqueue.h>
#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/reactor/wakeup_fd.h"

namespace vfu {

class Reactor {
 public:
  // Receives readiness of one watched fd. Called on the IO thread only.
  class Handler {
   public:
    virtual ~Handler();

    // `epoll_events` is the ready subset of the watched events (EPOLLIN,
    // EPOLLOUT, ...) plus EPOLLERR / EPOLLHUP, which epoll always reports.
    // The reactor is level-triggered: the call repeats every iteration while
    // the condition holds, so a handler reads until EAGAIN or stops watching
    // the event. OnReady may Watch, Modify or Unwatch any fd, including its
    // own, and may destroy handlers it unwatched, itself included: an event
    // already fetched for an fd unwatched earlier in the same iteration is
    // dropped, never delivered.
    virtual void OnReady(uint32_t epoll_events) = 0;
  };

  // Keeps the loop polling instead of blocking while something on the IO
  // thread expects another thread to Post() soon: a connection whose
  // command runs on a worker and whose reply the IO thread must write. The
  // poll makes that post skip the eventfd write, and so the IO thread skips
  // a wake-up (on a 2-CPU VM about half a raw socket round trip). Unlike
  // set_busy_poll it costs nothing while nothing is expected.
  //
  // A polling iteration that finds nothing to do yields the CPU (the
  // awaited worker may share it), and only every few such iterations call
  // epoll_wait: the awaited post lands in the task queue, which is looked
  // at every time, and each syscall costs about as much as the hand-off.
  // Fds are still served while polling, a few microseconds later at worst.
  // A yield that keeps the loop off its CPU for a time slice means the CPU
  // is wanted elsewhere (another process, a busy-polling client): polling
  // would then delay the awaited post by slices, so pollers are not asked
  // for a while (see set_poll_backoff) and posts wake the loop as usual.
  class Poller {
   public:
    virtual ~Poller();

    // Called on the IO thread at the end of every loop iteration while the
    // poller is registered. True: keep polling; false: unregisters the
    // poller. Must not call AddPoller or RemovePoller, and should be cheap:
    // it runs once per polling iteration.
    virtual bool KeepPolling() = 0;
  };

  // Creates the epoll set and the wakeup eventfd; the loop does not run
  // until Start().
  static absl::StatusOr<std::unique_ptr<Reactor>> Create();

  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Calls Stop(). Must not run on the IO thread.
  ~Reactor();

  // Spawns the IO thread. Tasks posted and fds watched before Start() are
  // picked up by its first iteration. Call at most once, never after Stop().
  void Start() ABSL_LOCKS_EXCLUDED(mu_);

  // Asks the loop to exit, waits for it to run the tasks posted so far (see
  // the file comment) and joins the IO thread. Idempotent; concurrent
  // callers all return once the thread has exited. Must not be called on
  // the IO thread (it would wait for itself).
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Registers `fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP, ...;
  // level-triggered, so no EPOLLET or EPOLLONESHOT). `handler` is not owned
  // and must outlive the registration. Errors: InvalidArgument for a
  // negative fd or null handler, AlreadyExists if `fd` is watched, else
  // epoll_ctl's errno (e.g. PermissionDenied for a regular file).
  absl::Status Watch(int fd, uint32_t events, Handler* handler);

  // Replaces the events watched on `fd`; 0 pauses it. NotFound if `fd` is
  // not watched.
  absl::Status Modify(int fd, uint32_t events);

  // Stops watching `fd`; no event for it is delivered after this returns,
  // even one already fetched in the current iteration. A no-op if `fd` is
  // not watched. Call it before closing `fd`: epoll tracks the open file,
  // not the number, so a closed fd with a live duplicate keeps reporting.
  void Unwatch(int fd);

  // Registers `poller` (not owned), which the loop asks before each wait
  // whether to poll; see Poller. Posts skip the eventfd from this call on,
  // so register before handing out the work whose result will be posted.
  // Registering twice is a no-op.
  void AddPoller(Poller* poller);

  // Unregisters `poller`; it is not called after this returns, so it may be
  // destroyed. A no-op if it is not registered (KeepPolling returned false).
  void RemovePoller(Poller* poller);

  // Queues `task` to run on the IO thread. Thread-safe, takes no lock (the
  // queue allocates a block now and then), and writes the eventfd only if
  // no wake-up is pending already. After Stop() see the file comment.
  void Post(absl::AnyInvocable<void()> task);

  // True on this reactor's IO thread while its loop runs (including the
  // final drain in Stop()); false everywhere else.
  bool IsIoThread() const;

  // After an iteration that did work, keep polling (epoll_wait with a zero
  // timeout, plus the task queue) for up to `duration` before blocking.
  // While it spins, posters skip the eventfd write. Zero (the default)
  // blocks at once; spinning burns a core, so enable it only where cores
  // are spare. Thread-safe; takes effect at the next iteration.
  void set_busy_poll(absl::Duration duration);

  // A polling yield (see Poller) that took at least `slow_yield` stops
  // polling for pollers during `backoff`; a zero `backoff` never stops it.
  // Defaults: 10 ms, 500 us (another thread held the CPU for most of a
  // time slice; the hand-offs polling waits for take microseconds).
  // Thread-safe; takes effect at the next yield.
  void set_poll_backoff(absl::Duration backoff,
                        absl::Duration slow_yield = absl::Microseconds(500));

  // Counters for tests and benchmarks. Relaxed: a reading may lag.
  // Eventfd writes made by Post() and Stop().
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  // Returns from epoll_wait.
  uint64_t loop_iterations() const {
    return loop_iterations_.load(std::memory_order_relaxed);
  }
  // Tasks run.
  uint64_t tasks_run() const {
    return tasks_run_.load(std::memory_order_relaxed);
  }
  // Loop iterations that polled because a Poller asked for it.
  uint64_t poller_polls() const {
    return poller_polls_.load(std::memory_order_relaxed);
  }
  // Times polling for pollers stopped for a slow yield.
  uint64_t poll_backoffs() const {
    return poll_backoffs_.load(std::memory_order_relaxed);
  }

 private:
  // One slot per fd number, in registrations_.
  struct Registration {
    Handler* handler = nullptr;  // null: not watched
    uint32_t events = 0;
    // Distinguishes this Watch() from earlier ones on the same fd number;
    // stored in epoll_data with the fd (see Token()).
    uint32_t generation = 0;
  };

  enum class State { kIdle, kRunning, kStopped };

  Reactor(UniqueFd epoll_fd, WakeupFd wakeup);

  // epoll_data for a registration: generation in the high half, fd in the
  // low half. The wakeup fd uses kWakeupToken, which no fd can produce.
  static uint64_t Token(int fd, uint32_t generation) {
    return (uint64_t{generation} << 32) | static_cast<uint32_t>(fd);
  }
  static constexpr uint64_t kWakeupToken = ~uint64_t{0};

  // Aborts unless the caller may touch registrations (see the class comment).
  void CheckRegistrationThread() const;

  // Writes the eventfd and counts it.
  void Wake();
  // Enters the spinning state (see spinning_) unless in it already.
  void StartSpinning();
  // sched_yield() for a polling iteration. If it was slow, pauses the
  // pollers (see set_poll_backoff) and returns false.
  bool YieldWhilePolling();

  // The IO thread's body.
  void Loop();
  // Delivers one epoll_wait batch to handlers; returns how many calls it
  // made. Sets *woken if the wakeup fd was in the batch.
  int Dispatch(const struct epoll_event* events, int count, bool* woken);
  // Runs queued tasks, at most `limit` of them. Returns how many ran.
  size_t RunTasks(size_t limit);
  // Asks every registered poller (dropping those that decline); returns
  // whether any wants the loop to poll.
  bool AskPollers();

  // Constant after construction.
  const UniqueFd epoll_fd_;
  const WakeupFd wakeup_;

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kIdle;
  std::thread thread_ ABSL_GUARDED_BY(mu_);

  // True while the IO thread may run the loop: set by Start() before the
  // thread exists, cleared by Stop() after joining it (both under mu_).
  // Read without mu_ by CheckRegistrationThread() and Post().
  std::atomic<bool> running_{false};
  // Set by Stop() under mu_; the loop drains tasks and exits when it sees
  // it. Read by Post() too: once set and the loop is gone, posts are dropped.
  std::atomic<bool> stop_requested_{false};
  // True while the IO thread is sure to look at the task queue without
  // another eventfd write: a wake-up is in flight, or the loop is spinning.
  std::atomic<bool> wake_pending_{false};
  std::atomic<int64_t> busy_poll_ns_{0};
  std::atomic<int64_t> poll_backoff_ns_{10'000'000};
  std::atomic<int64_t> slow_yield_ns_{500'000};

  moodycamel::ConcurrentQueue<absl::AnyInvocable<void()>> tasks_;

  // IO-thread-only (or, when the loop is not running, the thread that may
  // call Watch): the registration table, indexed by fd number.
  std::vector<Registration> registrations_;
  uint32_t next_generation_ = 0;
  // Same threads as registrations_: the registered pollers (a handful),
  // and whether the loop spins: polls every iteration while holding
  // wake_pending_ true, for the busy-poll window or for pollers.
  std::vector<Poller*> pollers_;
  bool spinning_ = false;
  // Until then pollers are not asked and AddPoller does not start spinning
  // (a slow yield was seen; see set_poll_backoff).
  std::chrono::steady_clock::time_point pollers_paused_until_;
  // IO-thread-only: dequeue state and the buffer tasks are moved into.
  moodycamel::ConsumerToken consumer_token_;
  std::array<absl::AnyInvocable<void()>, 64> task_batch_;

  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> loop_iterations_{0};
  std::atomic<uint64_t> tasks_run_{0};
  std::atomic<uint64_t> poller_polls_{0};
  std::atomic<uint64_t> poll_backoffs_{0};
};

}  // namespace vfu

#endif  // VFU_REACTOR_REACTOR_H_
