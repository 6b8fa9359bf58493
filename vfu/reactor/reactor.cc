#include "vfu/reactor/reactor.h"

#include <sched.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"

namespace vfu {
namespace {

// The reactor whose loop runs on this thread, if any.
thread_local const Reactor* current_reactor = nullptr;

// Events fetched per epoll_wait.
constexpr int kMaxEvents = 64;

// While polling only for pollers, one iteration in this many calls
// epoll_wait; see Loop().
constexpr int kPollerIterationsPerEpoll = 4;

// Tasks run per iteration before fds get another look; the rest run in the
// next iteration, which then does not block.
constexpr size_t kMaxTasksPerIteration = 1024;

}  // namespace

Reactor::Handler::~Handler() = default;

Reactor::Poller::~Poller() = default;

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create() {
  UniqueFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd.valid()) return absl::ErrnoToStatus(errno, "epoll_create1");
  VFU_ASSIGN_OR_RETURN(WakeupFd wakeup, WakeupFd::Create());
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = kWakeupToken;
  if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wakeup.fd(), &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(ADD, eventfd)");
  }
  return std::unique_ptr<Reactor>(
      new Reactor(std::move(epoll_fd), std::move(wakeup)));
}

Reactor::Reactor(UniqueFd epoll_fd, WakeupFd wakeup)
    : epoll_fd_(std::move(epoll_fd)),
      wakeup_(std::move(wakeup)),
      consumer_token_(tasks_) {}

Reactor::~Reactor() { Stop(); }

void Reactor::Start() {
  VFU_CHECK(!IsIoThread(), "Start() on the IO thread");
  absl::MutexLock lock(&mu_);
  VFU_CHECK(state_ == State::kIdle, "Start() called twice or after Stop()");
  state_ = State::kRunning;
  running_.store(true);
  thread_ = std::thread([this] { Loop(); });
}

void Reactor::Stop() {
  VFU_CHECK(!IsIoThread(), "Stop() on the IO thread would join itself");
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return;
    stop_requested_.store(true);
    if (state_ == State::kRunning) {
      Wake();
      thread_.join();
      running_.store(false);
    }
    state_ = State::kStopped;
  }
  // Tasks posted too late for the loop's final drain. Destroyed outside mu_
  // in case a task's destructor posts or stops.
  absl::AnyInvocable<void()> task;
  while (tasks_.try_dequeue(task)) task = nullptr;
}

bool Reactor::IsIoThread() const { return current_reactor == this; }

void Reactor::CheckRegistrationThread() const {
  VFU_CHECK(IsIoThread() || !running_.load(std::memory_order_relaxed),
            "Watch/Modify/Unwatch off the IO thread while the loop runs");
}

absl::Status Reactor::Watch(int fd, uint32_t events, Handler* handler) {
  CheckRegistrationThread();
  if (fd < 0) return absl::InvalidArgumentError("Watch: negative fd");
  if (handler == nullptr) {
    return absl::InvalidArgumentError("Watch: null handler");
  }
  const size_t index = static_cast<size_t>(fd);
  if (index < registrations_.size() &&
      registrations_[index].handler != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("Watch: fd ", fd, " is watched already"));
  }
  const uint32_t generation = next_generation_++;
  struct epoll_event event = {};
  event.events = events;
  event.data.u64 = Token(fd, generation);
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(ADD)");
  }
  if (index >= registrations_.size()) registrations_.resize(index + 1);
  registrations_[index] = Registration{handler, events, generation};
  return absl::OkStatus();
}

absl::Status Reactor::Modify(int fd, uint32_t events) {
  CheckRegistrationThread();
  const size_t index = static_cast<size_t>(fd);
  if (fd < 0 || index >= registrations_.size() ||
      registrations_[index].handler == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("Modify: fd ", fd, " is not watched"));
  }
  Registration& registration = registrations_[index];
  struct epoll_event event = {};
  event.events = events;
  event.data.u64 = Token(fd, registration.generation);
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(MOD)");
  }
  registration.events = events;
  return absl::OkStatus();
}

void Reactor::Unwatch(int fd) {
  CheckRegistrationThread();
  const size_t index = static_cast<size_t>(fd);
  if (fd < 0 || index >= registrations_.size() ||
      registrations_[index].handler == nullptr) {
    return;
  }
  registrations_[index] = Registration{};
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
    // EBADF: the fd was closed first. Harmless unless a duplicate of it is
    // open, in which case epoll keeps reporting it; Dispatch() drops those
    // events, but level-triggered ones would keep the loop busy.
    VFU_LOG(kWarning, "Unwatch: epoll_ctl(DEL) of fd ", fd, " failed: errno ",
            errno);
  }
}

void Reactor::AddPoller(Poller* poller) {
  CheckRegistrationThread();
  VFU_CHECK(poller != nullptr, "AddPoller: null poller");
  if (std::find(pollers_.begin(), pollers_.end(), poller) == pollers_.end()) {
    pollers_.push_back(poller);
  }
  // At once, not at the end of the iteration: the post the poller expects
  // may come before that.
  if (std::chrono::steady_clock::now() >= pollers_paused_until_) StartSpinning();
}

void Reactor::RemovePoller(Poller* poller) {
  CheckRegistrationThread();
  pollers_.erase(std::remove(pollers_.begin(), pollers_.end(), poller),
                 pollers_.end());
}

bool Reactor::AskPollers() {
  // Pollers may not add or remove pollers, so the vector is stable here.
  pollers_.erase(std::remove_if(pollers_.begin(), pollers_.end(),
                                [](Poller* p) { return !p->KeepPolling(); }),
                 pollers_.end());
  return !pollers_.empty();
}

void Reactor::Wake() {
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  absl::Status status = wakeup_.Wake();
  VFU_CHECK(status.ok(), status.ToString().c_str());
}

void Reactor::Post(absl::AnyInvocable<void()> task) {
  // The loop is gone for good: destroy `task` here instead of leaving it in
  // the queue until the destructor. (A post racing with Stop() may still
  // land in the queue; Stop() or the destructor destroys it.)
  if (stop_requested_.load(std::memory_order_acquire) &&
      !running_.load(std::memory_order_acquire)) {
    return;
  }
  VFU_CHECK(tasks_.enqueue(std::move(task)), "out of memory queueing a task");
  // Exactly one poster per cleared flag writes the eventfd. Why no task is
  // stranded: every write to wake_pending_ is an acq_rel exchange (here, in
  // clear_wake_pending and when spinning starts), so they form one
  // modification order, and each exchange reads the value of the one just
  // before it. Take this exchange E and the IO thread's clearing exchange C:
  //  - C after E: C reads from E or from later exchanges, which extend E's
  //    release sequence, so C synchronizes with E. The enqueue above
  //    happens before the IO thread's look at the queue that follows C.
  //  - E after the last C: some exchange after that C read false and either
  //    wrote the eventfd (then the IO thread runs another iteration whose C
  //    comes after E: the case above) or started a spin (which ends with a
  //    C, and looks at the queue meanwhile).
  // A plain load of the flag as a fast path would break the first case (a
  // poster that only reads publishes nothing), so every post pays one RMW.
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) Wake();
}

void Reactor::set_busy_poll(absl::Duration duration) {
  const int64_t ns = absl::ToInt64Nanoseconds(duration);
  busy_poll_ns_.store(std::max<int64_t>(ns, 0), std::memory_order_relaxed);
}

void Reactor::set_poll_backoff(absl::Duration backoff, absl::Duration slow_yield) {
  poll_backoff_ns_.store(std::max<int64_t>(absl::ToInt64Nanoseconds(backoff), 0),
                         std::memory_order_relaxed);
  slow_yield_ns_.store(std::max<int64_t>(absl::ToInt64Nanoseconds(slow_yield), 0),
                       std::memory_order_relaxed);
}

bool Reactor::YieldWhilePolling() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point before = Clock::now();
  ::sched_yield();
  const Clock::time_point after = Clock::now();
  const int64_t backoff_ns = poll_backoff_ns_.load(std::memory_order_relaxed);
  if (backoff_ns > 0 &&
      after - before >= std::chrono::nanoseconds(
                            slow_yield_ns_.load(std::memory_order_relaxed))) {
    pollers_paused_until_ = after + std::chrono::nanoseconds(backoff_ns);
    poll_backoffs_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void Reactor::StartSpinning() {
  if (spinning_) return;
  spinning_ = true;
  // From here every iteration looks at the queue, so posters may skip the
  // eventfd; one that already saw false just wakes us needlessly. An
  // exchange, not a store: see Post().
  wake_pending_.exchange(true, std::memory_order_acq_rel);
}

void Reactor::Loop() {
  using Clock = std::chrono::steady_clock;
  current_reactor = this;
  struct epoll_event events[kMaxEvents];
  // The busy-poll window, while spinning for set_busy_poll().
  Clock::time_point spin_until = Clock::time_point::min();
  // The queue must be looked at this iteration without waiting for a
  // wake-up: the last look stopped at kMaxTasksPerIteration, or spinning
  // just ended.
  bool look_at_queue = false;
  // Polling only for pollers (no busy-poll window): epoll_wait then runs
  // only every kPollerIterationsPerEpoll-th iteration. The post a poller
  // awaits lands in the task queue, and each syscall costs about as much as
  // the hand-off it waits for (a microsecond on small VMs).
  bool polling_for_pollers = false;
  int iterations_since_epoll = 0;

  // Hands the wake duty back to posters. The caller looks at the queue
  // next; that look finds every task whose poster saw the flag still set
  // and so did not write the eventfd (see Post()).
  auto clear_wake_pending = [this] {
    wake_pending_.exchange(false, std::memory_order_acq_rel);
  };

  while (true) {
    int count = 0;
    if (polling_for_pollers && ++iterations_since_epoll < kPollerIterationsPerEpoll) {
      // This iteration only looks at the queue.
    } else {
      iterations_since_epoll = 0;
      const int timeout_ms = (spinning_ || look_at_queue) ? 0 : -1;
      count = ::epoll_wait(epoll_fd_.get(), events, kMaxEvents, timeout_ms);
      loop_iterations_.store(loop_iterations_.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
      if (count < 0) {
        VFU_CHECK(errno == EINTR, "epoll_wait failed");
        count = 0;
      }
    }

    bool woken = false;
    // Handlers may start spinning (AddPoller); the queue is then looked at
    // below, in this iteration.
    const int delivered = Dispatch(events, count, &woken);
    if (woken) {
      // Drain first, then clear the flag: a poster that sets the flag after
      // the clear writes the eventfd after this drain, so the fd stays
      // readable for the next epoll_wait. The other order could drain that
      // write away while the flag stays set, and no poster would wake us
      // again: every later task would wait for an unrelated event.
      absl::Status status = wakeup_.Drain();
      VFU_CHECK(status.ok(), status.ToString().c_str());
      // While spinning the flag stays set: the queue is looked at below
      // anyway, and clear_wake_pending() runs when spinning ends.
      if (!spinning_) clear_wake_pending();
    }

    size_t ran = 0;
    if (woken || spinning_ || look_at_queue) {
      ran = RunTasks(kMaxTasksPerIteration);
      look_at_queue = ran == kMaxTasksPerIteration;
    }

    if (stop_requested_.load(std::memory_order_acquire)) {
      // Stop() stored the flag after every Post() that happened before it,
      // so this drain sees those tasks. It runs until the queue looks
      // empty, so it also runs what they post.
      RunTasks(std::numeric_limits<size_t>::max());
      break;
    }

    // Whether the next iteration polls: the busy-poll window is open, or a
    // poller asks for it. Pollers are asked after this iteration's handlers
    // and tasks, which register them and (by writing a reply) satisfy them.
    bool spin = false;
    const int64_t busy_poll_ns = busy_poll_ns_.load(std::memory_order_relaxed);
    if (busy_poll_ns > 0 && (delivered > 0 || ran > 0)) {
      const Clock::time_point now = Clock::now();
      const std::chrono::nanoseconds window(busy_poll_ns);
      spin_until = window < Clock::time_point::max() - now
                       ? now + window
                       : Clock::time_point::max();
      spin = true;
    } else if (spinning_ && spin_until != Clock::time_point::min()) {
      spin = Clock::now() < spin_until;
      if (!spin) spin_until = Clock::time_point::min();
    }
    polling_for_pollers = false;
    if (!pollers_.empty() && Clock::now() >= pollers_paused_until_ &&
        AskPollers()) {
      polling_for_pollers = !spin;
      spin = true;
      if (polling_for_pollers) {
        poller_polls_.store(poller_polls_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
        // Nothing to do yet: let a thread that shares this CPU run; it may
        // be the worker whose post we wait for. A slow yield pauses the
        // pollers, and this iteration already stops spinning for them.
        if (delivered == 0 && ran == 0 && !YieldWhilePolling()) {
          polling_for_pollers = false;
          spin = false;  // Only the pollers asked for it.
        }
      }
    }
    if (spin) {
      StartSpinning();
    } else if (spinning_) {
      spinning_ = false;
      clear_wake_pending();
      // The look at the queue the clear calls for, now rather than after
      // another epoll_wait: the thread that was polled for (say, a client
      // just sent its reply) may be waiting for this CPU. If tasks ran,
      // the next iteration does not block, as after any work.
      look_at_queue = RunTasks(kMaxTasksPerIteration) > 0;
    }
  }
  current_reactor = nullptr;
}

int Reactor::Dispatch(const struct epoll_event* events, int count,
                      bool* woken) {
  int delivered = 0;
  for (int i = 0; i < count; ++i) {
    const uint64_t token = events[i].data.u64;
    if (token == kWakeupToken) {
      *woken = true;
      continue;
    }
    // The race this handles: the whole batch was fetched before any handler
    // ran. A handler earlier in the batch may have unwatched this fd and
    // destroyed its handler, then perhaps closed the fd and watched a new
    // file that got the same number. The stale event is still in `events`,
    // so the registration is looked up again here, and the generation
    // carried in the token tells a new registration from the one the event
    // belongs to. Handler pointers never travel through epoll_data.
    const size_t fd = static_cast<uint32_t>(token);
    const uint32_t generation = static_cast<uint32_t>(token >> 32);
    if (fd >= registrations_.size()) continue;
    const Registration& registration = registrations_[fd];
    if (registration.handler == nullptr ||
        registration.generation != generation) {
      continue;
    }
    // A handler earlier in the batch may also have modified this fd's events.
    const uint32_t ready =
        events[i].events & (registration.events | EPOLLERR | EPOLLHUP);
    if (ready == 0) continue;
    Handler* handler = registration.handler;
    ++delivered;
    // May watch or unwatch, resizing registrations_: `registration` is
    // not used past this call.
    handler->OnReady(ready);
  }
  return delivered;
}

size_t Reactor::RunTasks(size_t limit) {
  size_t ran = 0;
  while (ran < limit) {
    const size_t want = std::min(task_batch_.size(), limit - ran);
    const size_t got =
        tasks_.try_dequeue_bulk(consumer_token_, task_batch_.begin(), want);
    if (got == 0) break;
    for (size_t i = 0; i < got; ++i) {
      task_batch_[i]();
      // Destroy the task (and what it captured) on the IO thread, now.
      task_batch_[i] = nullptr;
    }
    ran += got;
    tasks_run_.store(tasks_run_.load(std::memory_order_relaxed) + got,
                     std::memory_order_relaxed);
  }
  return ran;
}

}  // namespace vfu
