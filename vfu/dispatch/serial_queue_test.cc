#include "vfu/dispatch/serial_queue.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "vfu/dispatch/worker_pool.h"

namespace vfu {
namespace {

// Generous deadline for waits that only fail when the strand is broken.
constexpr absl::Duration kDeadline = absl::Seconds(10);

// Per-strand bookkeeping that catches overlapping or reordered tasks.
struct Checker {
  std::atomic<bool> running{false};
  std::atomic<int> overlaps{0};
  std::atomic<int> out_of_order{0};
  int next = 0;  // Only strand tasks touch it; they are serialized.

  void Run(int index) {
    if (running.exchange(true, std::memory_order_acquire)) {
      overlaps.fetch_add(1);
    }
    if (index != next) out_of_order.fetch_add(1);
    next = index + 1;
    running.store(false, std::memory_order_release);
  }
};

// 4 strands x 10 000 tasks on 2 workers: each strand's tasks run in post
// order and never two at once.
TEST(SerialQueueTest, KeepsOrderAndNeverOverlaps) {
  constexpr int kStrands = 4;
  constexpr int kTasks = 10000;
  WorkerPool pool(2);
  std::vector<std::unique_ptr<SerialQueue>> strands;
  std::vector<Checker> checkers(kStrands);
  for (int s = 0; s < kStrands; ++s) {
    strands.push_back(std::make_unique<SerialQueue>(pool));
  }
  absl::BlockingCounter done(kStrands * kTasks);
  for (int i = 0; i < kTasks; ++i) {
    for (int s = 0; s < kStrands; ++s) {
      strands[s]->Post([&checker = checkers[s], &done, i] {
        checker.Run(i);
        done.DecrementCount();
      });
    }
  }
  done.Wait();
  for (int s = 0; s < kStrands; ++s) {
    strands[s]->WaitIdle();
    EXPECT_EQ(checkers[s].overlaps.load(), 0) << "strand " << s;
    EXPECT_EQ(checkers[s].out_of_order.load(), 0) << "strand " << s;
    EXPECT_EQ(checkers[s].next, kTasks) << "strand " << s;
    EXPECT_EQ(strands[s]->tasks_run(), uint64_t{kTasks});
  }
}

// Several threads post to one strand: no overlap, and each poster's tasks
// run in that poster's order.
TEST(SerialQueueTest, ManyPostersKeepTheirOwnOrder) {
  constexpr int kPosters = 4;
  constexpr int kTasks = 5000;
  WorkerPool pool(2);
  SerialQueue strand(pool);
  std::atomic<bool> running{false};
  int overlaps = 0;
  int out_of_order = 0;
  std::vector<int> next(kPosters, 0);  // Touched by strand tasks only.
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        strand.Post([&, p, i] {
          if (running.exchange(true)) ++overlaps;
          if (next[p] != i) ++out_of_order;
          next[p] = i + 1;
          running.store(false);
        });
      }
    });
  }
  for (std::thread& poster : posters) poster.join();
  strand.WaitIdle();
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(out_of_order, 0);
  for (int p = 0; p < kPosters; ++p) EXPECT_EQ(next[p], kTasks);
}

// A task posted after another Post() returned on a different thread runs
// after it: ordering follows happens-before, not just one poster.
TEST(SerialQueueTest, OrderFollowsHappensBeforeAcrossPosters) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  constexpr int kRounds = 2000;
  std::vector<int> order;  // Strand tasks only.
  for (int i = 0; i < kRounds; ++i) {
    std::thread first([&, i] { strand.Post([&, i] { order.push_back(2 * i); }); });
    first.join();
    strand.Post([&, i] { order.push_back(2 * i + 1); });
  }
  strand.WaitIdle();
  ASSERT_EQ(order.size(), size_t{2 * kRounds});
  for (int i = 0; i < 2 * kRounds; ++i) ASSERT_EQ(order[i], i);
}

// Different strands run in parallel: strand A's task blocks until strand
// B's task releases it. Serializing strands would deadlock (time out here).
TEST(SerialQueueTest, StrandsRunInParallel) {
  WorkerPool pool(2);
  SerialQueue a(pool);
  SerialQueue b(pool);
  absl::Notification released;
  bool saw_release = false;
  a.Post([&] { saw_release = released.WaitForNotificationWithTimeout(kDeadline); });
  b.Post([&] { released.Notify(); });
  a.WaitIdle();
  b.WaitIdle();
  EXPECT_TRUE(saw_release);
}

// A long strand yields its worker after max_batch tasks: on a single
// worker, strand B's one task runs before strand A's 1000 are done.
TEST(SerialQueueTest, BatchLimitLetsOtherStrandsRun) {
  constexpr int kTasks = 1000;
  WorkerPool pool(1);
  SerialQueue a(pool, /*max_batch=*/8);
  SerialQueue b(pool);
  absl::Notification go;
  pool.Submit([&go] { go.WaitForNotification(); });  // Hold the worker.
  std::atomic<int> a_done{0};
  int a_done_when_b_ran = -1;
  for (int i = 0; i < kTasks; ++i) {
    a.Post([&a_done] { a_done.fetch_add(1, std::memory_order_relaxed); });
  }
  b.Post([&] { a_done_when_b_ran = a_done.load(std::memory_order_relaxed); });
  go.Notify();
  a.WaitIdle();
  b.WaitIdle();
  EXPECT_GE(a_done_when_b_ran, 0);
  EXPECT_LT(a_done_when_b_ran, kTasks);
}

// While paused nothing starts; posting still queues; Resume() runs the
// backlog in order.
TEST(SerialQueueTest, PauseHoldsTasksUntilResume) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  std::vector<int> ran;  // Strand tasks only.
  strand.Pause();
  EXPECT_TRUE(strand.paused());
  for (int i = 0; i < 10; ++i) strand.Post([&ran, i] { ran.push_back(i); });
  strand.WaitIdle();  // Returns: a paused strand has no runner.
  EXPECT_TRUE(ran.empty());
  EXPECT_EQ(strand.pending(), 10u);
  strand.Resume();
  EXPECT_FALSE(strand.paused());
  strand.WaitIdle();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(strand.pending(), 0u);
}

// Pause() from inside a task makes that task the last one to run.
TEST(SerialQueueTest, PauseFromTaskStopsAfterIt) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  int ran = 0;  // Strand tasks only.
  strand.Post([&] {
    ++ran;
    strand.Pause();
  });
  strand.Post([&] { ++ran; });
  strand.Post([&] { ++ran; });
  strand.WaitIdle();
  EXPECT_EQ(ran, 1);
  strand.Resume();
  strand.WaitIdle();
  EXPECT_EQ(ran, 3);
}

// Pause() from another thread while a task runs: that task completes, the
// next one does not start.
TEST(SerialQueueTest, PauseWhileTaskRunsStopsAfterIt) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  absl::Notification started;
  absl::Notification release;
  int ran = 0;  // Strand tasks only.
  strand.Post([&] {
    started.Notify();
    release.WaitForNotification();
    ++ran;
  });
  strand.Post([&] { ++ran; });
  started.WaitForNotification();
  strand.Pause();
  release.Notify();
  strand.WaitIdle();
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(strand.pending(), 1u);
  strand.Resume();
  strand.WaitIdle();
  EXPECT_EQ(ran, 2);
}

// Resume() without pending work schedules nothing; pausing an idle strand
// and posting later works.
TEST(SerialQueueTest, ResumeWithoutWorkThenPost) {
  WorkerPool pool(1);
  SerialQueue strand(pool);
  strand.Pause();
  strand.Resume();
  strand.WaitIdle();
  int ran = 0;
  strand.Post([&ran] { ++ran; });
  strand.WaitIdle();
  EXPECT_EQ(ran, 1);
}

// WaitIdle() returns only after every task posted before it has run, and
// makes their writes visible (ran is a plain int).
TEST(SerialQueueTest, WaitIdleSeesAllPostedTasks) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  int ran = 0;
  for (int i = 0; i < 1000; ++i) strand.Post([&ran] { ++ran; });
  strand.WaitIdle();
  EXPECT_EQ(ran, 1000);
}

// The lifetime rule: after WaitIdle() the strand may be deleted at once,
// even while the runner is just leaving (ASan catches a late touch).
TEST(SerialQueueTest, DeleteRightAfterWaitIdle) {
  WorkerPool pool(2);
  for (int round = 0; round < 2000; ++round) {
    auto strand = std::make_unique<SerialQueue>(pool);
    int ran = 0;
    for (int i = 0; i <= round % 3; ++i) strand->Post([&ran] { ++ran; });
    strand->WaitIdle();
    ASSERT_EQ(ran, round % 3 + 1);
    strand.reset();
  }
}

// Deleting an idle, paused strand destroys its queued tasks unrun.
TEST(SerialQueueTest, DeletePausedStrandDropsQueuedTasks) {
  WorkerPool pool(1);
  auto token = std::make_shared<int>(0);
  bool ran = false;
  {
    SerialQueue strand(pool);
    strand.Pause();
    strand.Post([token, &ran] { ran = true; });
    strand.Post([token, &ran] { ran = true; });
    EXPECT_EQ(token.use_count(), 3);
    strand.WaitIdle();
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
}

// A task may post to its own strand; the new task runs after it, and
// IsCurrent() holds only inside the strand's tasks.
TEST(SerialQueueTest, TaskPostsToItsOwnStrand) {
  WorkerPool pool(2);
  SerialQueue strand(pool);
  SerialQueue other(pool);
  std::vector<int> order;  // Strand tasks only.
  bool current_inside = false;
  bool other_current_inside = true;
  strand.Post([&] {
    current_inside = strand.IsCurrent();
    other_current_inside = other.IsCurrent();
    strand.Post([&] { order.push_back(2); });
    order.push_back(1);
  });
  strand.WaitIdle();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_TRUE(current_inside);
  EXPECT_FALSE(other_current_inside);
  EXPECT_FALSE(strand.IsCurrent());
}

// Shutting the pool down runs strands to completion, batches included.
TEST(SerialQueueTest, PoolShutdownDrainsStrands) {
  WorkerPool pool(1);
  SerialQueue strand(pool, /*max_batch=*/4);
  int ran = 0;
  for (int i = 0; i < 100; ++i) strand.Post([&ran] { ++ran; });
  pool.Shutdown();
  EXPECT_EQ(ran, 100);
  strand.WaitIdle();
}

}  // namespace
}  // namespace vfu
