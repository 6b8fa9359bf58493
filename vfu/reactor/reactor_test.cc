#include "vfu/reactor/reactor.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <iostream>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/unique_fd.h"


namespace vfu {
namespace {

using ::vfu::testing::StatusIs;

// Bounds waits for events that a broken reactor would never deliver, so
// such a test fails instead of hanging until Bazel's timeout.
constexpr absl::Duration kTimeout = absl::Seconds(30);

// A handler that forwards to a callable.
class FunctionHandler : public Reactor::Handler {
 public:
  explicit FunctionHandler(absl::AnyInvocable<void(uint32_t)> on_ready)
      : on_ready_(std::move(on_ready)) {}
  void OnReady(uint32_t epoll_events) override { on_ready_(epoll_events); }

 private:
  absl::AnyInvocable<void(uint32_t)> on_ready_;
};

struct SocketPair {
  UniqueFd a;
  UniqueFd b;
};

SocketPair MakeSocketPair() {
  int fds[2];
  int rc =
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
  EXPECT_EQ(rc, 0) << "socketpair: errno " << errno;
  if (rc != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void WriteByte(int fd) {
  ASSERT_EQ(::write(fd, "x", 1), 1) << "errno " << errno;
}

// Reads until EAGAIN; returns the byte count.
size_t ReadAll(int fd) {
  char buffer[256];
  size_t total = 0;
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) total += n;
  return total;
}

// Runs `fn` on the IO thread and waits for it to finish.
void RunOnIoThread(Reactor& reactor, absl::AnyInvocable<void()> fn) {
  absl::Notification done;
  reactor.Post([&] {
    fn();
    done.Notify();
  });
  done.WaitForNotification();
}

std::unique_ptr<Reactor> MakeReactor() {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create();
  EXPECT_TRUE(reactor.ok()) << reactor.status();
  return reactor.ok() ? std::move(reactor).value() : nullptr;
}

// A posted task runs on the IO thread, and only there is IsIoThread() true.
TEST(ReactorTest, PostedTaskRunsOnIoThread) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  bool inside = false;
  std::thread::id task_thread;
  RunOnIoThread(*reactor, [&] {
    inside = reactor->IsIoThread();
    task_thread = std::this_thread::get_id();
  });
  EXPECT_TRUE(inside);
  EXPECT_NE(task_thread, std::this_thread::get_id());
  EXPECT_FALSE(reactor->IsIoThread());
  reactor->Stop();  // the counters are final once the thread is joined
  EXPECT_EQ(reactor->tasks_run(), 1u);
  EXPECT_GE(reactor->loop_iterations(), 1u);
}

// Tasks posted before Start() wait in the queue and run once it starts.
TEST(ReactorTest, TaskPostedBeforeStartRunsAfterStart) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  absl::Notification ran;
  reactor->Post([&] { ran.Notify(); });
  reactor->Start();
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(kTimeout));
}

// 10 000 tasks from one thread run in the order they were posted.
TEST(ReactorTest, TasksFromOneThreadRunInPostOrder) {
  constexpr int kTasks = 10000;
  std::vector<int> order;  // IO thread only until `done`
  absl::Notification done;
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  for (int i = 0; i < kTasks; ++i) {
    reactor->Post([&order, &done, i] {
      order.push_back(i);
      if (i == kTasks - 1) done.Notify();
    });
  }
  done.WaitForNotification();
  ASSERT_EQ(order.size(), size_t{kTasks});
  for (int i = 0; i < kTasks; ++i)
    ASSERT_EQ(order[i], i) << "at position " << i;
}

// 4 threads x 10 000 posts: every task runs exactly once, and each
// thread's tasks run in the order that thread posted them.
TEST(ReactorTest, TasksFromManyThreadsRunOnceInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10000;
  // IO thread only until `all_ran`.
  std::vector<int> runs(kThreads * kPerThread, 0);
  std::vector<int> next_expected(kThreads, 0);
  int out_of_order = 0;
  absl::BlockingCounter all_ran(kThreads * kPerThread);
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();

  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        reactor->Post([&, t, i] {
          ++runs[t * kPerThread + i];
          if (next_expected[t] != i) ++out_of_order;
          next_expected[t] = i + 1;
          all_ran.DecrementCount();
        });
      }
    });
  }
  for (std::thread& producer : producers) producer.join();
  all_ran.Wait();
  reactor->Stop();

  EXPECT_EQ(out_of_order, 0);
  for (int k = 0; k < kThreads * kPerThread; ++k) {
    ASSERT_EQ(runs[k], 1) << "task " << k % kPerThread << " of thread "
                          << k / kPerThread;
  }
  EXPECT_EQ(reactor->tasks_run(), uint64_t{kThreads * kPerThread});
}

// The eventfd is written only when the queue goes from empty to non-empty:
// 1000 tasks posted while the IO thread is busy in a task cost about one
// wake-up, not 1000.
TEST(ReactorTest, BurstPostedWhileBusyCostsOneWakeup) {
  constexpr int kTasks = 1000;
  absl::Notification entered;
  absl::Notification release;
  absl::BlockingCounter all_ran(kTasks);
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  reactor->Post([&] {
    entered.Notify();
    release.WaitForNotification();
  });
  entered.WaitForNotification();

  const uint64_t before = reactor->wakeups();
  for (int i = 0; i < kTasks; ++i)
    reactor->Post([&] { all_ran.DecrementCount(); });
  release.Notify();
  all_ran.Wait();
  const uint64_t wakeups = reactor->wakeups() - before;
  EXPECT_LE(wakeups, 3u);
  EXPECT_GE(wakeups, 1u);  // the first post found the queue empty
  std::cout << "[ INFO     ] " << kTasks << " posts cost " << wakeups
            << " wake-up(s)\n";
}

// Round trips with a pause after each, long enough for a loop that does not
// spin to block in epoll_wait; returns the eventfd writes they cost. The
// pause is not synchronization: it creates the idle gap busy polling covers.
uint64_t WakeupsForPausedRoundTrips(Reactor& reactor, int round_trips) {
  RunOnIoThread(reactor, [] {});  // work: a spinning loop starts to spin
  const uint64_t before = reactor.wakeups();
  for (int i = 0; i < round_trips; ++i) {
    RunOnIoThread(reactor, [] {});
    absl::SleepFor(absl::Microseconds(200));
  }
  return reactor.wakeups() - before;
}

// With busy polling the loop keeps looking at the queue after work and
// holds the wake-pending flag, so posts skip the eventfd. At most the first
// post can race with the loop entering the spin and still write it.
TEST(ReactorTest, BusyPollLetsPostsSkipTheEventfd) {
  constexpr int kRoundTrips = 100;
  std::unique_ptr<Reactor> spinning = MakeReactor();
  ASSERT_NE(spinning, nullptr);
  // Far longer than the test: the loop never stops spinning on its own.
  spinning->set_busy_poll(absl::Minutes(10));
  spinning->Start();
  EXPECT_LE(WakeupsForPausedRoundTrips(*spinning, kRoundTrips), 1u);
  spinning->Stop();

  // For contrast (timing-dependent, so only reported): the default loop
  // blocks in every pause and needs a wake-up for nearly every round trip.
  std::unique_ptr<Reactor> blocking = MakeReactor();
  ASSERT_NE(blocking, nullptr);
  blocking->Start();
  std::cout << "[ INFO     ] without busy poll " << kRoundTrips
            << " paused round trips cost "
            << WakeupsForPausedRoundTrips(*blocking, kRoundTrips)
            << " wake-ups\n";
}

// A spin window that ends hands wake-ups back to posters: a post after it
// still runs.
TEST(ReactorTest, TaskPostedAfterBusyPollEndsRuns) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->set_busy_poll(absl::Microseconds(50));
  reactor->Start();
  for (int i = 0; i < 200; ++i) {
    absl::Notification ran;
    reactor->Post([&] { ran.Notify(); });
    ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kTimeout)) << "round " << i;
    // Give the spin window time to lapse about every other round; a lost
    // wake-up would then hang the next round.
    if (i % 2 == 0) absl::SleepFor(absl::Microseconds(100));
  }
}

// A poller the test steers: it asks for polling while `keep` holds, counts
// its calls, notifies `called` on the first and `declined` when it first
// returns false.
class TestPoller : public Reactor::Poller {
 public:
  bool KeepPolling() override {
    if (calls.fetch_add(1) == 0) called.Notify();
    const bool result = keep.load();
    if (!result && !declined.HasBeenNotified()) declined.Notify();
    return result;
  }

  std::atomic<bool> keep{true};
  std::atomic<int> calls{0};
  absl::Notification called;
  absl::Notification declined;
};

// From AddPoller() on, and while the poller asks for it, the loop polls, so
// posts skip the eventfd: 100 round trips cost no wake-up at all. Without
// the poller each would need its own (the loop blocks in between).
TEST(ReactorTest, PollerLetsPostsSkipTheEventfd) {
  constexpr int kRoundTrips = 100;
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  // A loaded machine must not pause the polling this test counts on.
  reactor->set_poll_backoff(absl::ZeroDuration());
  reactor->Start();
  TestPoller poller;
  RunOnIoThread(*reactor, [&] { reactor->AddPoller(&poller); });
  const uint64_t before = reactor->wakeups();
  for (int i = 0; i < kRoundTrips; ++i) {
    // Post only once the loop has finished an iteration since the last
    // task (the poller is asked at the end of each), so that every post
    // meets a polling loop rather than one still busy running tasks.
    const int calls = poller.calls.load();
    RunOnIoThread(*reactor, [] {});
    const absl::Time deadline = absl::Now() + kTimeout;
    while (poller.calls.load() == calls && absl::Now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_GT(poller.calls.load(), calls) << "round trip " << i;
  }
  EXPECT_EQ(reactor->wakeups(), before);
  EXPECT_GT(reactor->poller_polls(), 0u);
  RunOnIoThread(*reactor, [&] { reactor->RemovePoller(&poller); });
  reactor->Stop();
}

// A poller that declines is dropped: it is not asked again and the loop
// stops polling for it, and tasks posted around that moment still run (the
// wake duty goes back to posters without losing one).
TEST(ReactorTest, PollerThatDeclinesIsDropped) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  TestPoller poller;
  RunOnIoThread(*reactor, [&] { reactor->AddPoller(&poller); });
  ASSERT_TRUE(poller.called.WaitForNotificationWithTimeout(kTimeout));
  // Posts race with the loop dropping the poller; they go on until it has
  // (each post also makes the loop iterate, and so ask the poller).
  poller.keep.store(false);
  for (int i = 0; !poller.declined.HasBeenNotified(); ++i) {
    ASSERT_LT(i, 1000000);
    absl::Notification ran;
    reactor->Post([&] { ran.Notify(); });
    ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kTimeout)) << "task " << i;
  }
  // It declined once and is gone.
  const int calls = poller.calls.load();
  const uint64_t polls = reactor->poller_polls();
  for (int i = 0; i < 10; ++i) RunOnIoThread(*reactor, [] {});
  EXPECT_EQ(poller.calls.load(), calls);
  EXPECT_EQ(reactor->poller_polls(), polls);
  reactor->Stop();
}

// Polling ends and starts again, many times, with posts racing each end:
// none is lost. Each round registers the poller afresh and lets it decline
// after a few iterations.
TEST(ReactorTest, TaskPostedAsPollingEndsRuns) {
  class CountdownPoller : public Reactor::Poller {
   public:
    bool KeepPolling() override { return --left > 0; }
    int left = 0;  // IO thread only
  };
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  CountdownPoller poller;
  for (int round = 0; round < 500; ++round) {
    reactor->Post([&, round] {
      poller.left = round % 7 + 1;
      reactor->AddPoller(&poller);
    });
    absl::Notification ran;
    reactor->Post([&] { ran.Notify(); });
    ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kTimeout)) << "round " << round;
  }
  RunOnIoThread(*reactor, [&] { reactor->RemovePoller(&poller); });
  reactor->Stop();
}

// RemovePoller() takes effect at once: a poller removed and destroyed by a
// task is never called again (ASan would catch a call on the freed one).
TEST(ReactorTest, RemovedPollerIsNotCalled) {
  std::atomic<int> calls{0};
  absl::Notification called;
  class CountingPoller : public Reactor::Poller {
   public:
    CountingPoller(std::atomic<int>* calls, absl::Notification* called)
        : calls_(calls), called_(called) {}
    bool KeepPolling() override {
      if (calls_->fetch_add(1) == 0) called_->Notify();
      return true;
    }

   private:
    std::atomic<int>* calls_;
    absl::Notification* called_;
  };
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  auto* poller = new CountingPoller(&calls, &called);
  RunOnIoThread(*reactor, [&] {
    reactor->AddPoller(poller);
    reactor->AddPoller(poller);  // a no-op: registered once
  });
  ASSERT_TRUE(called.WaitForNotificationWithTimeout(kTimeout));
  int seen = 0;
  RunOnIoThread(*reactor, [&] {
    reactor->RemovePoller(poller);
    delete poller;
    seen = calls.load();
  });
  for (int i = 0; i < 10; ++i) RunOnIoThread(*reactor, [] {});
  EXPECT_EQ(calls.load(), seen);
  reactor->Stop();
}

// Fds are still served while the loop polls for a poller (which skips
// epoll_wait on most iterations): a socket becoming readable reaches its
// handler, again and again.
TEST(ReactorTest, WatchedFdServedWhilePolling) {
  SocketPair pair = MakeSocketPair();
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  std::atomic<int> reads{0};
  FunctionHandler handler([&](uint32_t) {
    if (ReadAll(pair.a.get()) > 0) reads.fetch_add(1);
  });
  ASSERT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));
  reactor->Start();
  TestPoller poller;
  RunOnIoThread(*reactor, [&] { reactor->AddPoller(&poller); });
  for (int i = 1; i <= 100; ++i) {
    WriteByte(pair.b.get());
    const absl::Time deadline = absl::Now() + kTimeout;
    while (reads.load() < i && absl::Now() < deadline) std::this_thread::yield();
    ASSERT_EQ(reads.load(), i);
  }
  EXPECT_GT(poller.calls.load(), 0);
  RunOnIoThread(*reactor, [&] {
    reactor->RemovePoller(&poller);
    reactor->Unwatch(pair.a.get());
  });
  reactor->Stop();
}

// A slow polling yield (here every yield counts as slow) pauses the
// pollers: they are not asked, the loop stops polling although the poller
// would still want it, and posts wake it through the eventfd again.
TEST(ReactorTest, SlowYieldPausesPollers) {
  constexpr int kRoundTrips = 20;
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->set_poll_backoff(absl::Minutes(10), absl::ZeroDuration());
  reactor->Start();
  TestPoller poller;
  RunOnIoThread(*reactor, [&] { reactor->AddPoller(&poller); });
  const absl::Time deadline = absl::Now() + kTimeout;
  while (reactor->poll_backoffs() == 0 && absl::Now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(reactor->poll_backoffs(), 1u);
  const int calls = poller.calls.load();
  const uint64_t polls = reactor->poller_polls();
  const uint64_t before = reactor->wakeups();
  for (int i = 0; i < kRoundTrips; ++i) RunOnIoThread(*reactor, [] {});
  EXPECT_EQ(poller.calls.load(), calls);
  EXPECT_EQ(reactor->poller_polls(), polls);
  // Posts wake the loop again (a polling loop would have needed none;
  // posts that meet it busy running tasks share one wake-up).
  EXPECT_GE(reactor->wakeups() - before, 1u);
  RunOnIoThread(*reactor, [&] { reactor->RemovePoller(&poller); });
  reactor->Stop();
}

// Stop() returns while a poller still asks for polling.
TEST(ReactorTest, StopWhilePollingReturns) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  TestPoller poller;
  RunOnIoThread(*reactor, [&] { reactor->AddPoller(&poller); });
  ASSERT_TRUE(poller.called.WaitForNotificationWithTimeout(kTimeout));
  bool ran = false;
  reactor->Post([&] { ran = true; });
  reactor->Stop();
  EXPECT_TRUE(ran);
}

// A watched socket reports EPOLLIN once its peer writes.
TEST(ReactorTest, WatchedFdReportsEpollinAfterPeerWrites) {
  SocketPair pair = MakeSocketPair();
  absl::Notification readable;
  uint32_t seen_events = 0;
  size_t bytes = 0;
  FunctionHandler handler([&](uint32_t events) {
    seen_events |= events;
    bytes += ReadAll(pair.a.get());
    if (!readable.HasBeenNotified()) readable.Notify();
  });
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  ASSERT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));  // before Start
  reactor->Start();
  WriteByte(pair.b.get());
  ASSERT_TRUE(readable.WaitForNotificationWithTimeout(kTimeout));
  RunOnIoThread(*reactor, [&] {
    EXPECT_NE(seen_events & EPOLLIN, 0u);
    EXPECT_EQ(bytes, 1u);
  });
}

// Modify switches a watch from EPOLLIN to EPOLLOUT: an idle socket, which
// is writable, then reports EPOLLOUT.
TEST(ReactorTest, ModifyToEpolloutReportsWritable) {
  SocketPair pair = MakeSocketPair();
  absl::Notification writable;
  uint32_t seen_events = 0;
  Reactor* reactor_ptr = nullptr;
  FunctionHandler handler([&](uint32_t events) {
    seen_events |= events;
    // Level-triggered: stop the repeats.
    EXPECT_OK(reactor_ptr->Modify(pair.a.get(), 0));
    if (!writable.HasBeenNotified()) writable.Notify();
  });
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor_ptr = reactor.get();
  reactor->Start();
  RunOnIoThread(*reactor, [&] {
    EXPECT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));
    EXPECT_OK(reactor->Modify(pair.a.get(), EPOLLOUT));
  });
  ASSERT_TRUE(writable.WaitForNotificationWithTimeout(kTimeout));
  RunOnIoThread(*reactor, [&] {
    EXPECT_EQ(seen_events, uint32_t{EPOLLOUT});
    reactor->Unwatch(pair.a.get());
  });
}

// Registration errors carry specific codes; Unwatch of an unknown fd is a
// no-op.
TEST(ReactorTest, WatchAndModifyErrors) {
  SocketPair pair = MakeSocketPair();
  FunctionHandler handler([](uint32_t) {});
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  EXPECT_THAT(reactor->Watch(-1, EPOLLIN, &handler),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(reactor->Watch(pair.a.get(), EPOLLIN, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(reactor->Modify(pair.a.get(), EPOLLOUT),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));
  EXPECT_THAT(reactor->Watch(pair.a.get(), EPOLLOUT, &handler),
              StatusIs(absl::StatusCode::kAlreadyExists));
  reactor->Unwatch(pair.a.get());
  reactor->Unwatch(pair.a.get());
  reactor->Unwatch(pair.b.get());
  EXPECT_THAT(reactor->Modify(pair.a.get(), EPOLLOUT),
              StatusIs(absl::StatusCode::kNotFound));
  // After Unwatch the fd may be watched again.
  EXPECT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));
  reactor->Unwatch(pair.a.get());
}

// Two fds become readable before the loop's first epoll_wait, so one batch
// holds both events. Whichever handler runs first unwatches and deletes the
// other: the other's event, already fetched, must not be delivered (under
// ASan a delivery is a heap-use-after-free).
TEST(ReactorTest, UnwatchInOnReadyDropsEventAlreadyFetchedInSameBatch) {
  SocketPair pairs[2] = {MakeSocketPair(), MakeSocketPair()};
  // IO thread only until `first_ran`, then read after a round trip.
  int calls = 0;
  int first = -1;
  uint64_t first_iteration = 0;
  absl::Notification first_ran;
  FunctionHandler* handlers[2] = {nullptr, nullptr};
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  Reactor* r = reactor.get();
  for (int i = 0; i < 2; ++i) {
    handlers[i] = new FunctionHandler([&, i](uint32_t events) {
      ++calls;
      if (first >= 0) return;  // a second call: the failure counted above
      first = i;
      first_iteration = r->loop_iterations();
      const int other = 1 - i;
      r->Unwatch(pairs[other].a.get());
      delete handlers[other];
      handlers[other] = nullptr;
      r->Unwatch(pairs[i].a.get());  // stop level-triggered repeats
      first_ran.Notify();
    });
    ASSERT_OK(reactor->Watch(pairs[i].a.get(), EPOLLIN, handlers[i]));
    WriteByte(pairs[i].b.get());
  }
  reactor->Start();
  ASSERT_TRUE(first_ran.WaitForNotificationWithTimeout(kTimeout));
  // A task runs after the batch in which it was queued has been delivered.
  RunOnIoThread(*reactor, [] {});
  EXPECT_EQ(first_iteration, 1u) << "the two events were not in one batch";
  EXPECT_EQ(calls, 1);
  reactor->Stop();
  delete handlers[first];
}

// As above, but the first handler also closes the other fd and watches a
// new, idle socket that takes over its number: the stale event names that
// number, and must not reach the new registration.
TEST(ReactorTest, StaleEventNotDeliveredToNewRegistrationOfReusedFd) {
  SocketPair pairs[2] = {MakeSocketPair(), MakeSocketPair()};
  SocketPair fresh = MakeSocketPair();
  int calls = 0;
  int newcomer_calls = 0;
  int first = -1;
  uint64_t first_iteration = 0;
  absl::Notification first_ran;
  FunctionHandler newcomer([&](uint32_t) { ++newcomer_calls; });
  std::unique_ptr<FunctionHandler> handlers[2];
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  Reactor* r = reactor.get();
  for (int i = 0; i < 2; ++i) {
    handlers[i] = std::make_unique<FunctionHandler>([&, i](uint32_t events) {
      ++calls;
      if (first >= 0) return;
      first = i;
      first_iteration = r->loop_iterations();
      const int other = 1 - i;
      const int number = pairs[other].a.get();
      r->Unwatch(number);
      // The other fd's number now names the fresh, idle socket.
      EXPECT_EQ(::dup3(fresh.a.get(), number, O_CLOEXEC), number);
      EXPECT_OK(r->Watch(number, EPOLLIN, &newcomer));
      r->Unwatch(pairs[i].a.get());
      first_ran.Notify();
    });
    ASSERT_OK(reactor->Watch(pairs[i].a.get(), EPOLLIN, handlers[i].get()));
    WriteByte(pairs[i].b.get());
  }
  reactor->Start();
  ASSERT_TRUE(first_ran.WaitForNotificationWithTimeout(kTimeout));
  RunOnIoThread(*reactor, [&] { r->Unwatch(pairs[1 - first].a.get()); });
  EXPECT_EQ(first_iteration, 1u) << "the two events were not in one batch";
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(newcomer_calls, 0);
}

// A handler may unwatch and delete itself from inside OnReady.
TEST(ReactorTest, HandlerMayDeleteItselfInOnReady) {
  class SelfDeleting : public Reactor::Handler {
   public:
    SelfDeleting(Reactor* reactor, int fd, absl::Notification* done)
        : reactor_(reactor), fd_(fd), done_(done) {}
    void OnReady(uint32_t) override {
      absl::Notification* done = done_;
      reactor_->Unwatch(fd_);
      delete this;
      done->Notify();
    }

   private:
    Reactor* reactor_;
    int fd_;
    absl::Notification* done_;
  };
  SocketPair pair = MakeSocketPair();
  absl::Notification done;
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  ASSERT_OK(
      reactor->Watch(pair.a.get(), EPOLLIN,
                     new SelfDeleting(reactor.get(), pair.a.get(), &done)));
  reactor->Start();
  WriteByte(pair.b.get());
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kTimeout));
}

// Tasks pending when Stop() is called all run before it returns, and so do
// tasks they post. More tasks than one iteration runs, so they need the
// final drain.
TEST(ReactorTest, StopRunsTasksPostedBeforeIt) {
  constexpr int kTasks = 5000;
  absl::Notification entered;
  absl::Notification release;
  int ran = 0;  // IO thread only until Stop() joins it
  bool nested_ran = false;
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  Reactor* r = reactor.get();
  reactor->Start();
  reactor->Post([&] {
    entered.Notify();
    release.WaitForNotification();
  });
  entered.WaitForNotification();
  for (int i = 0; i < kTasks; ++i) reactor->Post([&] { ++ran; });
  reactor->Post([&] { r->Post([&] { nested_ran = true; }); });

  // Stop() sets its flag and then writes the eventfd; only this test posts,
  // so the counter moving means Stop() is under way while every task above
  // is still queued behind the blocked one.
  const uint64_t wakeups = reactor->wakeups();
  std::thread stopper([&] { r->Stop(); });
  while (reactor->wakeups() == wakeups) std::this_thread::yield();
  release.Notify();
  stopper.join();

  EXPECT_EQ(ran, kTasks);
  EXPECT_TRUE(nested_ran);
}

// A task posted after Stop() returned never runs and is destroyed at once,
// on the posting thread.
TEST(ReactorTest, TaskPostedAfterStopIsDestroyedWithoutRunning) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  reactor->Stop();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  reactor->Post([token, &ran] { ran = true; });
  EXPECT_EQ(token.use_count(), 1);
  reactor.reset();
  EXPECT_FALSE(ran);
}

// Stop() without Start() destroys queued tasks without running them.
TEST(ReactorTest, StopWithoutStartDestroysQueuedTasks) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  auto token = std::make_shared<int>(0);
  bool ran = false;
  reactor->Post([token, &ran] { ran = true; });
  EXPECT_EQ(token.use_count(), 2);
  reactor->Stop();
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_FALSE(ran);
}

// Stop() may be called again, also from two threads at once; each call
// returns with the thread gone.
TEST(ReactorTest, StopIsIdempotent) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  std::thread other([&] { reactor->Stop(); });
  reactor->Stop();
  other.join();
  reactor->Stop();
  // Registration calls are legal again once the loop is gone.
  SocketPair pair = MakeSocketPair();
  FunctionHandler handler([](uint32_t) {});
  EXPECT_OK(reactor->Watch(pair.a.get(), EPOLLIN, &handler));
  reactor->Unwatch(pair.a.get());
}

// A reactor that never started is destroyed cleanly.
TEST(ReactorTest, DestructorWithoutStart) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor.reset();
}

// The destructor of a running reactor stops it.
TEST(ReactorTest, DestructorStopsRunningReactor) {
  std::unique_ptr<Reactor> reactor = MakeReactor();
  ASSERT_NE(reactor, nullptr);
  reactor->Start();
  bool ran = false;
  reactor->Post([&] { ran = true; });
  reactor.reset();
  EXPECT_TRUE(ran);
}

// Touching registrations from another thread while the loop runs aborts.
TEST(ReactorDeathTest, WatchOffIoThreadWhileRunningAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        SocketPair pair = MakeSocketPair();
        FunctionHandler handler([](uint32_t) {});
        std::unique_ptr<Reactor> reactor = MakeReactor();
        reactor->Start();
        (void)reactor->Watch(pair.a.get(), EPOLLIN, &handler);
      },
      "off the IO thread");
}

}  // namespace
}  // namespace vfu
