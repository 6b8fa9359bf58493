#include "vfu/dispatch/worker_pool.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace vfu {
namespace {

// Generous deadline for waits that only fail when the pool is broken.
constexpr absl::Duration kDeadline = absl::Seconds(10);

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
