#include "vfu/base/rcu.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace vfu {
namespace {

// What readers find through the published pointer; `alive` is cleared just
// before the writer deletes it, so a reader that still sees the object after
// its grace period would read alive == false (or, under ASan, freed memory).
struct Snapshot {
  explicit Snapshot(int v) : value(v) {}
  int value;
  std::atomic<bool> alive{true};
};

void Retire(std::atomic<Snapshot*>& published, Snapshot* next) {
  Snapshot* old = published.exchange(next, std::memory_order_acq_rel);
  RcuSynchronize();
  old->alive.store(false, std::memory_order_relaxed);
  delete old;
}

TEST(RcuTest, GracePeriodWaitsForASectionInProgress) {
  std::atomic<Snapshot*> published{new Snapshot(1)};
  absl::Notification reader_inside;
  absl::Notification writer_published;
  std::atomic<bool> writer_done{false};
  bool saw_dead = false;
  bool writer_done_inside = false;

  std::thread reader([&] {
    RcuReadSection section;
    Snapshot* seen = published.load(std::memory_order_acquire);
    reader_inside.Notify();
    writer_published.WaitForNotification();
    // The writer is now in (or past) RcuSynchronize. Keep using the old
    // snapshot for a while: it must stay alive until this section ends.
    for (int i = 0; i < 2000; ++i) {
      if (!seen->alive.load(std::memory_order_relaxed) || seen->value != 1) saw_dead = true;
      if (writer_done.load(std::memory_order_acquire)) writer_done_inside = true;
      std::this_thread::yield();
    }
  });
  reader_inside.WaitForNotification();
  std::thread writer([&] {
    Snapshot* old = published.exchange(new Snapshot(2), std::memory_order_acq_rel);
    writer_published.Notify();
    RcuSynchronize();
    writer_done.store(true, std::memory_order_release);
    old->alive.store(false, std::memory_order_relaxed);
    delete old;
  });
  reader.join();
  writer.join();
  EXPECT_FALSE(saw_dead);
  EXPECT_FALSE(writer_done_inside);
  EXPECT_EQ(published.load()->value, 2);
  delete published.load();
}

TEST(RcuTest, SectionsNest) {
  std::atomic<Snapshot*> published{new Snapshot(1)};
  absl::Notification inner_left;
  absl::Notification outer_may_leave;
  std::atomic<bool> writer_done{false};
  bool done_before_outer_left = false;
  std::thread reader([&] {
    RcuReadSection outer;
    Snapshot* seen = published.load(std::memory_order_acquire);
    { RcuReadSection inner; }
    inner_left.Notify();
    outer_may_leave.WaitForNotification();
    for (int i = 0; i < 1000; ++i) {
      if (writer_done.load(std::memory_order_acquire)) done_before_outer_left = true;
      std::this_thread::yield();
    }
    EXPECT_TRUE(seen->alive.load(std::memory_order_relaxed));
  });
  inner_left.WaitForNotification();
  std::thread writer([&] {
    outer_may_leave.Notify();
    Snapshot* old = published.exchange(new Snapshot(2), std::memory_order_acq_rel);
    RcuSynchronize();
    writer_done.store(true, std::memory_order_release);
    old->alive.store(false, std::memory_order_relaxed);
    delete old;
  });
  reader.join();
  writer.join();
  EXPECT_FALSE(done_before_outer_left);
  delete published.load();
}

// Readers on several threads while a writer replaces and frees the snapshot
// thousands of times: a reader must never meet a freed one (ASan and TSan
// builds check the memory itself).
TEST(RcuTest, ReadersNeverSeeAFreedSnapshot) {
  std::atomic<Snapshot*> published{new Snapshot(0)};
  std::atomic<bool> stop{false};
  std::atomic<int> dead_seen{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  constexpr int kReaders = 3;
  std::atomic<int> readers_started{0};
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&] {
      bool first = true;
      while (!stop.load(std::memory_order_relaxed)) {
        RcuReadSection section;
        Snapshot* s = published.load(std::memory_order_acquire);
        if (!s->alive.load(std::memory_order_relaxed)) dead_seen.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
        if (first) readers_started.fetch_add(1);
        first = false;
      }
    });
  }
  // Replace only once every reader reads: on a loaded machine the writer
  // could otherwise be done before any reader got a CPU.
  while (readers_started.load() < kReaders) std::this_thread::yield();
  for (int i = 1; i <= 2000; ++i) Retire(published, new Snapshot(i));
  stop.store(true);
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(dead_seen.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(published.load()->value, 2000);
  delete published.load();
}

}  // namespace
}  // namespace vfu
