#include "vfu/dispatch/worker_pool.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace vfu {
namespace {

// Generous deadline for waits that only fail when the pool is broken.
constexpr absl::Duration kDeadline = absl::Seconds(10);

// Polls for `idle_spin` and never backs off, whatever the machine's load:
// the tests that count polled tasks need that to be deterministic.
WorkerPool::PollOptions NoBackoff(absl::Duration idle_spin) {
  return {.idle_spin = idle_spin, .backoff = absl::ZeroDuration()};
}

// Waits until `condition` holds; false if it did not within kDeadline.
bool AwaitTrue(absl::FunctionRef<bool()> condition) {
  const absl::Time deadline = absl::Now() + kDeadline;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Every task submitted from several threads runs exactly once.
TEST(WorkerPoolTest, RunsEveryTaskFromManySubmitters) {
  constexpr int kSubmitters = 4;
  constexpr int kTasksEach = 2000;
  WorkerPool pool(2);
  std::vector<std::atomic<int>> runs(kSubmitters * kTasksEach);
  absl::BlockingCounter done(kSubmitters * kTasksEach);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kTasksEach; ++i) {
        pool.Submit([&, index = t * kTasksEach + i] {
          runs[index].fetch_add(1, std::memory_order_relaxed);
          done.DecrementCount();
        });
      }
    });
  }
  for (std::thread& thread : submitters) thread.join();
  done.Wait();
  for (const std::atomic<int>& count : runs) ASSERT_EQ(count.load(), 1);
  pool.Shutdown();
  EXPECT_EQ(pool.tasks_run(), uint64_t{kSubmitters * kTasksEach});
  EXPECT_EQ(pool.tasks_dropped(), 0u);
}

// Two workers run two tasks at the same time: one blocks until the other,
// started later, releases it. With one effective worker this times out.
TEST(WorkerPoolTest, RunsTasksInParallel) {
  WorkerPool pool(2);
  absl::Notification released;
  absl::Notification first_done;
  bool saw_release = false;
  pool.Submit([&] {
    saw_release = released.WaitForNotificationWithTimeout(kDeadline);
    first_done.Notify();
  });
  pool.Submit([&] { released.Notify(); });
  first_done.WaitForNotification();
  EXPECT_TRUE(saw_release);
}

// Shutdown() runs what is queued, including tasks that running tasks submit
// while it drains: a chain of 1000 self-resubmitting tasks completes.
TEST(WorkerPoolTest, ShutdownRunsTasksSubmittedWhileDraining) {
  constexpr int kChain = 1000;
  WorkerPool pool(1);
  std::atomic<int> ran{0};
  struct Link {
    WorkerPool* pool;
    std::atomic<int>* ran;
    int remaining;
    void operator()() {
      ran->fetch_add(1, std::memory_order_relaxed);
      if (remaining > 1) pool->Submit(Link{pool, ran, remaining - 1});
    }
  };
  pool.Submit(Link{&pool, &ran, kChain});
  pool.Shutdown();
  EXPECT_EQ(ran.load(), kChain);
  EXPECT_EQ(pool.tasks_run(), uint64_t{kChain});
}

// Tasks still queued behind a busy worker when Shutdown() is called run
// before it returns.
TEST(WorkerPoolTest, ShutdownRunsQueuedTasks) {
  constexpr int kTasks = 5000;
  WorkerPool pool(1);
  int ran = 0;  // One worker: no data race; Shutdown's join publishes it.
  for (int i = 0; i < kTasks; ++i) pool.Submit([&ran] { ++ran; });
  pool.Shutdown();
  EXPECT_EQ(ran, kTasks);
}

// After Shutdown(), Submit() destroys the task on the caller's thread
// without running it, and counts it.
TEST(WorkerPoolTest, SubmitAfterShutdownDestroysTaskUnrun) {
  WorkerPool pool(2);
  pool.Shutdown();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  pool.Submit([token, &ran] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);  // The capture is gone already.
  EXPECT_EQ(pool.tasks_dropped(), 1u);
  EXPECT_EQ(pool.tasks_run(), 0u);
}

// Shutdown() may be called repeatedly and from two threads at once; the
// destructor calls it again.
TEST(WorkerPoolTest, ShutdownIsIdempotent) {
  WorkerPool pool(2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) pool.Submit([&ran] { ran.fetch_add(1); });
  std::thread other([&pool] { pool.Shutdown(); });
  pool.Shutdown();
  other.join();
  pool.Shutdown();
  EXPECT_EQ(ran.load(), 100);
}

// Shutdown() does not return while a task still runs.
TEST(WorkerPoolTest, ShutdownWaitsForRunningTask) {
  WorkerPool pool(1);
  absl::Notification started;
  absl::Notification release;
  std::atomic<bool> finished{false};
  pool.Submit([&] {
    started.Notify();
    release.WaitForNotification();
    finished.store(true);
  });
  started.WaitForNotification();
  bool finished_at_return = false;
  std::thread stopper([&] {
    pool.Shutdown();
    finished_at_return = finished.load();
  });
  release.Notify();
  stopper.join();
  EXPECT_TRUE(finished_at_return);
}

// Without an idle spin window no worker ever polls.
TEST(WorkerPoolTest, WithoutIdleSpinNoWorkerPolls) {
  WorkerPool pool(2);
  for (int i = 0; i < 50; ++i) {
    absl::Notification done;
    pool.Submit([&done] { done.Notify(); });
    done.WaitForNotification();
    EXPECT_FALSE(pool.worker_polling());
  }
  pool.Shutdown();
  EXPECT_EQ(pool.spin_hits(), 0u);
}

// A worker that goes idle while another task still runs sleeps rather than
// polls: while a long task runs, ten short ones are each taken by a worker
// woken through the semaphore, none by a poller.
TEST(WorkerPoolTest, NoPollingWhileAnotherTaskRuns) {
  WorkerPool pool(2, NoBackoff(absl::Minutes(10)));
  absl::Notification long_started;
  absl::Notification release;
  pool.Submit([&] {
    long_started.Notify();
    release.WaitForNotification();
  });
  long_started.WaitForNotification();
  const uint64_t hits = pool.spin_hits();
  for (int i = 0; i < 10; ++i) {
    absl::Notification done;
    pool.Submit([&done] { done.Notify(); });
    done.WaitForNotification();
  }
  EXPECT_EQ(pool.spin_hits(), hits);
  release.Notify();
  pool.Shutdown();  // before `release` goes away under the long task
}

// A polling worker gets a submitted task ahead of a worker asleep in the
// semaphore (which would need a wake-up): with two idle workers, one of
// them polling, each of 50 tasks is taken by the poller.
TEST(WorkerPoolTest, PollingWorkerGetsTaskBeforeSleepingOne) {
  constexpr int kTasks = 50;
  WorkerPool pool(2, NoBackoff(absl::Minutes(10)));
  for (int i = 0; i < kTasks; ++i) {
    // Wait for a worker to poll again after the last task (it never stops
    // on its own: the window outlasts the test).
    ASSERT_TRUE(AwaitTrue([&] { return pool.worker_polling(); })) << "task " << i;
    absl::Notification done;
    pool.Submit([&done] { done.Notify(); });
    done.WaitForNotification();
    ASSERT_EQ(pool.spin_hits(), uint64_t(i + 1)) << "task " << i;
  }
}

// A slow yield (here every yield counts as slow) stops polling for the
// backoff period: tasks submitted then go to workers asleep in the
// semaphore.
TEST(WorkerPoolTest, SlowYieldStopsPolling) {
  WorkerPool pool(1, {.idle_spin = absl::Minutes(10),
                      .slow_yield = absl::ZeroDuration(),
                      .backoff = absl::Minutes(10)});
  // The idle worker polls, yields once and backs off.
  ASSERT_TRUE(AwaitTrue([&] { return pool.poll_backoffs() > 0; }));
  const uint64_t hits = pool.spin_hits();
  for (int i = 0; i < 10; ++i) {
    absl::Notification done;
    pool.Submit([&done] { done.Notify(); });
    done.WaitForNotification();
  }
  EXPECT_EQ(pool.spin_hits(), hits);
  EXPECT_FALSE(pool.worker_polling());
}

// Only one worker polls at a time; the others sleep in the semaphore and
// are still woken for work: a task that blocks until a second task runs
// completes.
TEST(WorkerPoolTest, IdleSpinLeavesOtherWorkersWakeable) {
  WorkerPool pool(3, NoBackoff(absl::Minutes(10)));
  for (int round = 0; round < 100; ++round) {
    absl::Notification released;
    absl::Notification first_done;
    bool saw_release = false;
    pool.Submit([&] {
      saw_release = released.WaitForNotificationWithTimeout(kDeadline);
      first_done.Notify();
    });
    pool.Submit([&] { released.Notify(); });
    first_done.WaitForNotification();
    ASSERT_TRUE(saw_release) << "round " << round;
  }
}

// Tasks from several threads with a short poll window (so polls start, end
// and get claimed all the time): every task runs exactly once, and
// Shutdown() still finds every worker.
TEST(WorkerPoolTest, IdleSpinRunsEveryTaskOnce) {
  constexpr int kSubmitters = 3;
  constexpr int kTasksEach = 3000;
  WorkerPool pool(2, WorkerPool::PollOptions{.idle_spin = absl::Microseconds(5)});
  std::vector<std::atomic<int>> runs(kSubmitters * kTasksEach);
  absl::BlockingCounter done(kSubmitters * kTasksEach);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kTasksEach; ++i) {
        pool.Submit([&, index = t * kTasksEach + i] {
          runs[index].fetch_add(1, std::memory_order_relaxed);
          done.DecrementCount();
        });
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
  }
  for (std::thread& thread : submitters) thread.join();
  done.Wait();
  for (const std::atomic<int>& count : runs) ASSERT_EQ(count.load(), 1);
  pool.Shutdown();
  EXPECT_EQ(pool.tasks_run(), uint64_t{kSubmitters * kTasksEach});
}

// IsPoolThread() tells the pool's workers from other threads.
TEST(WorkerPoolTest, IsPoolThread) {
  WorkerPool pool(1);
  WorkerPool other(1);
  EXPECT_FALSE(pool.IsPoolThread());
  absl::Notification done;
  bool inside = false;
  bool inside_other = true;
  pool.Submit([&] {
    inside = pool.IsPoolThread();
    inside_other = other.IsPoolThread();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_TRUE(inside);
  EXPECT_FALSE(inside_other);
}

}  // namespace
}  // namespace vfu
