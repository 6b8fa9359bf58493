#include "vfu/base/guarded_write.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "vfu/base/hang_rescue.h"
#include "vfu/base/unique_fd.h"

namespace vfu {
namespace {

constexpr uint64_t kFullCount = 0xfffffffffffffffe;  // an eventfd's maximum
// A blocking eventfd whose counter is at its maximum: the next write of 1
// blocks until someone reads it.
UniqueFd FullBlockingEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::write(fd.get(), &kFullCount, sizeof(kFullCount)), 8);
  return fd;
}

void Drain(int fd) {
  uint64_t count;
  EXPECT_EQ(::read(fd, &count, sizeof(count)), 8);
}

// A write that does not block is just a write.
TEST(GuardedWriteTest, WritesWhenThereIsRoom) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t one = 1;
  GuardedWriteResult result = GuardedWrite(fd.get(), &one, sizeof(one));
  EXPECT_EQ(result.outcome, GuardedWriteOutcome::kWritten);
  EXPECT_EQ(result.bytes, 8);
  uint64_t count = 0;
  EXPECT_EQ(::read(fd.get(), &count, sizeof(count)), 8);
  EXPECT_EQ(count, 1u);
}

// A full non-blocking eventfd reports kWouldBlock (no signal involved).
TEST(GuardedWriteTest, FullNonBlockingEventfdWouldBlock) {
  UniqueFd fd = FullBlockingEventfd();
  ASSERT_EQ(::fcntl(fd.get(), F_SETFL, O_NONBLOCK), 0);
  const uint64_t one = 1;
  EXPECT_EQ(GuardedWrite(fd.get(), &one, sizeof(one)).outcome, GuardedWriteOutcome::kWouldBlock);
}

// The case the watchdog exists for: a blocking eventfd at its maximum.
// Without the watchdog the write blocks until the rescue drains it.
TEST(GuardedWriteTest, BlockedEventfdWriteIsInterrupted) {
  UniqueFd fd = FullBlockingEventfd();
  const uint64_t before = GuardedWriteInterruptions();
  HangRescue rescue([&fd] { Drain(fd.get()); });
  const uint64_t one = 1;
  GuardedWriteResult result = GuardedWrite(fd.get(), &one, sizeof(one));
  ASSERT_TRUE(rescue.Finish()) << "the write blocked until the test drained the eventfd";
  EXPECT_EQ(result.outcome, GuardedWriteOutcome::kInterrupted);
  EXPECT_EQ(result.error, EINTR);
  EXPECT_GT(GuardedWriteInterruptions(), before);
}

// Not only eventfds: a blocking write into a full pipe is cut short too.
TEST(GuardedWriteTest, BlockedPipeWriteIsInterrupted) {
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd read_end(ends[0]);
  UniqueFd write_end(ends[1]);
  char block[4096] = {};
  while (::write(write_end.get(), block, sizeof(block)) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_EQ(::fcntl(write_end.get(), F_SETFL, 0), 0);  // blocking again
  HangRescue rescue([&read_end] {
    char sink[sizeof(block)];
    while (::read(read_end.get(), sink, sizeof(sink)) == sizeof(sink)) {
    }
  });
  GuardedWriteResult result = GuardedWrite(write_end.get(), block, sizeof(block));
  ASSERT_TRUE(rescue.Finish()) << "the write blocked until the test emptied the pipe";
  EXPECT_EQ(result.outcome, GuardedWriteOutcome::kInterrupted);
}

// Many threads stuck at once (each on its own full eventfd) all get out,
// and each keeps working afterwards.
TEST(GuardedWriteTest, SeveralStuckThreadsAllReturn) {
  constexpr int kThreads = 4;
  std::vector<UniqueFd> fds;
  for (int i = 0; i < kThreads; ++i) fds.push_back(FullBlockingEventfd());
  HangRescue rescue([&fds] {
    for (UniqueFd& fd : fds) Drain(fd.get());
  });
  std::vector<GuardedWriteOutcome> outcomes(kThreads, GuardedWriteOutcome::kWritten);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const uint64_t one = 1;
      outcomes[i] = GuardedWrite(fds[i].get(), &one, sizeof(one)).outcome;
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(rescue.Finish()) << "a write blocked until the test drained its eventfd";
  for (GuardedWriteOutcome outcome : outcomes) {
    EXPECT_EQ(outcome, GuardedWriteOutcome::kInterrupted);
  }
}

// After a quiet spell the watchdog sleeps without a deadline; the next
// guarded write must wake it, or a write stuck then would never be cut.
TEST(GuardedWriteTest, WriteAfterIdleSpellIsStillInterrupted) {
  UniqueFd room(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t one = 1;
  GuardedWrite(room.get(), &one, sizeof(one));  // the watchdog runs now
  // It parks after two looks (tens of ms); the deadline is a failure bound.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!GuardedWriteWatchdogIdle() && absl::Now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(GuardedWriteWatchdogIdle()) << "the watchdog never went idle";

  UniqueFd fd = FullBlockingEventfd();
  HangRescue rescue([&fd] { Drain(fd.get()); });
  GuardedWriteResult result = GuardedWrite(fd.get(), &one, sizeof(one));
  ASSERT_TRUE(rescue.Finish()) << "the write blocked until the test drained the eventfd";
  EXPECT_EQ(result.outcome, GuardedWriteOutcome::kInterrupted);
}

// Options are fixed once the first guarded write has happened, and only a
// realtime signal is accepted.
TEST(GuardedWriteTest, OptionsAreFixedAfterFirstUse) {
  EXPECT_FALSE(SetGuardedWriteOptions({.signal = SIGUSR1}));
  EXPECT_FALSE(SetGuardedWriteOptions({.stall_bound = absl::ZeroDuration()}));
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t one = 1;
  GuardedWrite(fd.get(), &one, sizeof(one));
  EXPECT_FALSE(SetGuardedWriteOptions({.signal = SIGRTMIN + 7}));
  EXPECT_EQ(GetGuardedWriteOptions().signal, 0);  // the default is still in force
}

}  // namespace
}  // namespace vfu
