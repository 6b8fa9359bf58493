#include "vfu/irq/eventfd_slot.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "absl/synchronization/notification.h"
#include "vfu/base/hang_rescue.h"
#include "vfu/base/unique_fd.h"

namespace vfu {
namespace {

using Result = EventfdSlot::NotifyResult;

UniqueFd MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid()) << "eventfd: errno " << errno;
  return fd;
}

// The eventfd's counter (read and reset); 0 when nothing was written.
uint64_t ReadCount(int fd) {
  uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != sizeof(count)) {
    EXPECT_EQ(errno, EAGAIN);
    return 0;
  }
  return count;
}

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// An empty slot gives a false lease that cannot notify.
TEST(EventfdSlotTest, EmptySlotGivesNoFd) {
  EventfdSlot slot;
  EXPECT_FALSE(slot.has_fd());
  EventfdSlot::Lease lease = slot.Acquire();
  EXPECT_FALSE(lease);
  EXPECT_EQ(lease.Notify(), Result::kFailed);
}

// Notify adds exactly 1 to the installed eventfd's counter.
TEST(EventfdSlotTest, NotifyWritesOne) {
  EventfdSlot slot;
  UniqueFd fd = MakeEventfd();
  UniqueFd observer = DuplicateFd(fd.get());
  EXPECT_FALSE(slot.Replace(std::move(fd)));
  EXPECT_TRUE(slot.has_fd());
  EXPECT_EQ(slot.Acquire().Notify(), Result::kWritten);
  EXPECT_EQ(slot.Acquire().Notify(), Result::kWritten);
  EXPECT_EQ(ReadCount(observer.get()), 2u);
}

// Replacing closes the old fd and routes later notifies to the new one.
TEST(EventfdSlotTest, ReplaceClosesPreviousFd) {
  EventfdSlot slot;
  UniqueFd first = MakeEventfd();
  const int first_number = first.get();
  slot.Replace(std::move(first));
  UniqueFd second = MakeEventfd();
  UniqueFd observer = DuplicateFd(second.get());
  EXPECT_TRUE(slot.Replace(std::move(second)));
  EXPECT_FALSE(IsOpen(first_number));
  EXPECT_EQ(slot.Acquire().Notify(), Result::kWritten);
  EXPECT_EQ(ReadCount(observer.get()), 1u);
}

// Replacing with nothing empties the slot; emptying an empty slot is a no-op.
TEST(EventfdSlotTest, ReplaceWithNoneEmpties) {
  EventfdSlot slot;
  EXPECT_FALSE(slot.Replace(UniqueFd()));
  UniqueFd fd = MakeEventfd();
  const int number = fd.get();
  slot.Replace(std::move(fd));
  EXPECT_TRUE(slot.Replace(UniqueFd()));
  EXPECT_FALSE(IsOpen(number));
  EXPECT_FALSE(slot.has_fd());
  EXPECT_FALSE(slot.Acquire());
}

// The destructor closes the fd it holds.
TEST(EventfdSlotTest, DestructorCloses) {
  UniqueFd fd = MakeEventfd();
  const int number = fd.get();
  {
    EventfdSlot slot;
    slot.Replace(std::move(fd));
  }
  EXPECT_FALSE(IsOpen(number));
}

// A moved-from lease ends nothing; the moved-to one keeps the fd pinned.
TEST(EventfdSlotTest, MovedLeaseKeepsPin) {
  EventfdSlot slot;
  slot.Replace(MakeEventfd());
  EventfdSlot::Lease first = slot.Acquire();
  EventfdSlot::Lease second(std::move(first));
  EXPECT_FALSE(first);
  EXPECT_TRUE(second);
  EXPECT_EQ(second.Notify(), Result::kWritten);
}

// Replace() installs the new fd at once but closes the old one only after
// the lease taken on it ends: the lease holder can still write to it.
TEST(EventfdSlotTest, ReplaceWaitsForLeaseOnOldFd) {
  EventfdSlot slot;
  UniqueFd old_fd = MakeEventfd();
  const int old_number = old_fd.get();
  UniqueFd old_observer = DuplicateFd(old_number);
  slot.Replace(std::move(old_fd));
  UniqueFd new_fd = MakeEventfd();
  const int new_number = new_fd.get();

  std::atomic<bool> replaced{false};
  auto lease = std::make_unique<EventfdSlot::Lease>(slot.Acquire());
  std::thread owner([&] {
    slot.Replace(std::move(new_fd));
    replaced.store(true);
  });
  // Wait until the swap is visible: new leases see the new fd.
  while (slot.Acquire().fd() != new_number) std::this_thread::yield();
  EXPECT_FALSE(replaced.load());
  EXPECT_TRUE(IsOpen(old_number));
  EXPECT_EQ(lease->Notify(), Result::kWritten);
  EXPECT_EQ(ReadCount(old_observer.get()), 1u);
  lease.reset();
  owner.join();
  EXPECT_TRUE(replaced.load());
  EXPECT_FALSE(IsOpen(old_number));
}

// Signallers never write to a closed fd while the owner keeps replacing:
// every notify succeeds and lands on one of the eventfds, so the counters
// add up to the number of notifies. All fds exist before the threads start,
// so a write through a stale number would fail (EBADF) rather than hit a
// reused number.
TEST(EventfdSlotTest, ConcurrentNotifyAndReplace) {
  constexpr int kFds = 100;
  constexpr int kSignallers = 3;
  std::vector<UniqueFd> fds;
  std::vector<UniqueFd> observers;
  for (int i = 0; i < kFds; ++i) {
    fds.push_back(MakeEventfd());
    observers.push_back(DuplicateFd(fds.back().get()));
  }
  EventfdSlot slot;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> notified{0};
  std::atomic<uint64_t> failed{0};
  std::vector<std::thread> signallers;
  for (int t = 0; t < kSignallers; ++t) {
    signallers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        EventfdSlot::Lease lease = slot.Acquire();
        if (!lease) continue;
        if (lease.Notify() == Result::kWritten) {
          notified.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (int i = 0; i < kFds; ++i) {
    // Every few rounds the slot is empty for a moment as well.
    if (i % 7 == 0) slot.Replace(UniqueFd());
    slot.Replace(std::move(fds[i]));
    // Let the signallers get at this fd before it is replaced.
    const uint64_t before = notified.load();
    while (notified.load() < before + kSignallers) std::this_thread::yield();
  }
  slot.Replace(UniqueFd());
  stop.store(true);
  for (std::thread& t : signallers) t.join();

  EXPECT_EQ(failed.load(), 0u);
  uint64_t total = 0;
  for (const UniqueFd& observer : observers) total += ReadCount(observer.get());
  EXPECT_EQ(total, notified.load());
  EXPECT_GT(total, 0u);
}

constexpr uint64_t kFullCount = 0xfffffffffffffffe;  // an eventfd's maximum

// A blocking eventfd, as a hostile client passes it.
UniqueFd MakeBlockingEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << "eventfd: errno " << errno;
  return fd;
}

// The client's move: make the shared file description blocking again and
// fill the counter, so that a write of 1 would block.
void MakeBlockingAndFull(int fd) {
  ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
  ASSERT_EQ(::write(fd, &kFullCount, sizeof(kFullCount)), 8);
}

// Reads the counter of a blocking eventfd that is known to be non-zero.
void DrainBlocking(int fd) {
  uint64_t count;
  EXPECT_EQ(::read(fd, &count, sizeof(count)), 8);
}

// Replace makes the fd non-blocking, so a full counter answers EAGAIN.
TEST(EventfdSlotTest, ReplaceSetsNonBlocking) {
  EventfdSlot slot;
  UniqueFd fd = MakeBlockingEventfd();
  UniqueFd client = DuplicateFd(fd.get());
  slot.Replace(std::move(fd));
  EXPECT_NE(::fcntl(client.get(), F_GETFL) & O_NONBLOCK, 0);
}

// The client filled the counter of the eventfd it passed: Notify returns
// at once, coalesced, and adds nothing.
TEST(EventfdSlotTest, NotifyOnFullEventfdIsCoalesced) {
  EventfdSlot slot;
  UniqueFd fd = MakeBlockingEventfd();
  UniqueFd client = DuplicateFd(fd.get());
  ASSERT_EQ(::write(client.get(), &kFullCount, sizeof(kFullCount)), 8);
  slot.Replace(std::move(fd));
  HangRescue rescue([&client] { DrainBlocking(client.get()); });
  EXPECT_EQ(slot.Acquire().Notify(), Result::kCoalesced);
  ASSERT_TRUE(rescue.Finish()) << "Notify blocked until the test drained the eventfd";
  EXPECT_EQ(ReadCount(client.get()), kFullCount);
}

// The client cleared O_NONBLOCK again after Replace and filled the
// counter: the write blocks, the watchdog cuts it short, Notify reports
// it coalesced.
TEST(EventfdSlotTest, NotifyAfterClientClearsNonBlockingReturns) {
  EventfdSlot slot;
  UniqueFd fd = MakeBlockingEventfd();
  UniqueFd client = DuplicateFd(fd.get());
  slot.Replace(std::move(fd));
  MakeBlockingAndFull(client.get());
  HangRescue rescue([&client] { DrainBlocking(client.get()); });
  EXPECT_EQ(slot.Acquire().Notify(), Result::kCoalesced);
  ASSERT_TRUE(rescue.Finish()) << "Notify blocked until the test drained the eventfd";
}

// Replace waits for the leases in flight; one of them stuck in a write to
// a blocking, full eventfd must not hold Replace (the strand) forever.
TEST(EventfdSlotTest, ReplaceWhileWriterIsStuckReturns) {
  EventfdSlot slot;
  UniqueFd fd = MakeBlockingEventfd();
  UniqueFd client = DuplicateFd(fd.get());
  slot.Replace(std::move(fd));
  MakeBlockingAndFull(client.get());

  absl::Notification leased;
  std::thread writer([&] {
    EventfdSlot::Lease lease = slot.Acquire();
    leased.Notify();
    lease.Notify();  // blocks until interrupted
  });
  leased.WaitForNotification();
  // The lease is in flight, so Replace must wait for it to end.
  HangRescue rescue([&client] { DrainBlocking(client.get()); });
  EXPECT_TRUE(slot.Replace(MakeEventfd()));
  const bool returned = rescue.Finish();
  writer.join();
  EXPECT_TRUE(returned) << "Replace waited until the test drained the eventfd";
}

// IsEventfd accepts eventfds only.
TEST(EventfdSlotTest, IsEventfdTellsEventfdsApart) {
  UniqueFd event = MakeEventfd();
  EXPECT_TRUE(IsEventfd(event.get()));
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  EXPECT_FALSE(IsEventfd(write_end.get()));
  EXPECT_FALSE(IsEventfd(-1));
  const int closed = event.get();
  event.reset();
  EXPECT_FALSE(IsEventfd(closed));
}

}  // namespace
}  // namespace vfu
